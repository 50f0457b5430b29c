"""A worker pod's engine, security and network, checked in a built deploy/k8s overlay for
tests/test_deploy_k8s.py (the pools come from tests/k8s_checks.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from tests.k8s_checks import (
    Pool,
    check_gpu,
    check_grace,
    check_labels,
    check_namespaces,
    check_scalers,
    check_secrets,
    pools,
    quantity_problems,
)
from tests.k8s_resources import Resource, find, matches

DNS = {("UDP", 53), ("TCP", 53)}


def _mount_for(container: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The container's mount that holds `path` (the deepest)."""
    holding = [
        m
        for m in container.get("volumeMounts", [])
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    return max(holding, key=lambda m: len(m["mountPath"]), default=None)


def check_engine(found: list[Pool]) -> list[str]:
    """The engine finds the worker's home at the path the worker has it (the same volume
    at the same path in dind, or a hostPath at its own path on the node), and the worker
    reaches the engine through a unix socket on a volume they share; dind opens no TCP."""
    problems = []
    for pool in found:
        home = pool.env.get("EXECUTOR_WORKER_DIR", "")
        if pool.env.get("EXECUTOR_WORKER_HOST_DIR") != home:
            problems.append(f"{pool.name}: EXECUTOR_WORKER_HOST_DIR is not the home's path")
        socket = pool.env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if not socket.startswith("unix:///"):
            problems.append(f"{pool.name}: the engine is not reached through a unix socket")
            continue
        for path in (home, socket.removeprefix("unix://")):
            problems += _shared(pool, path)
        for container in pool.containers():
            value = {v["name"]: v.get("value") for v in container.get("env", [])}
            if "DOCKER_HOST" in value and value["DOCKER_HOST"] != socket:
                problems.append(f"{pool.name}/{container['name']}: another DOCKER_HOST")
        if pool.engine is not None:
            args = [*pool.engine.get("command", []), *pool.engine.get("args", [])]
            if f"--host={socket}" not in args or any("tcp://" in a for a in args):
                problems.append(f"{pool.name}: dind must serve {socket} and no TCP address")
    return problems


def _shared(pool: Pool, path: str) -> list[str]:
    mount = _mount_for(pool.worker, path)
    volumes = {v["name"]: v for v in pool.spec["volumes"]}
    if mount is None or mount["name"] not in volumes:
        return [f"{pool.name}: the worker has no volume at {path}"]
    volume = volumes[mount["name"]]
    if pool.engine is None:
        if volume.get("hostPath", {}).get("path") != mount["mountPath"]:
            return [f"{pool.name}: {path} is not at the same path on the node and in the pod"]
        return []
    there = [m for m in pool.engine.get("volumeMounts", []) if m["name"] == mount["name"]]
    if "emptyDir" not in volume or not there or there[0]["mountPath"] != mount["mountPath"]:
        return [f"{pool.name}: dind does not see {path} at the same path, on a shared emptyDir"]
    return []


def _gid_of_socket(pool: Pool) -> str | None:
    for arg in (pool.engine or {}).get("args", []):
        if str(arg).startswith("--group="):
            return str(arg).removeprefix("--group=")
    return None


def check_security(found: list[Pool]) -> list[str]:
    """No API token; every container but the engine unprivileged, with no capability (a
    root one may chown, nothing else), a read-only root and no escalation; the worker not
    root, and in the group of the engine's socket; dind pods with no hostPath."""
    problems = []
    for pool in found:
        pod = pool.spec.get("securityContext", {})
        if pool.spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{pool.name}: the service account token is mounted")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{pool.name}: no RuntimeDefault seccomp profile")
        for container in pool.containers():
            if container is not pool.engine:
                problems += _unprivileged(pool.name, container)
        worker = pool.worker.get("securityContext", {})
        groups = {worker.get("runAsGroup"), pod.get("fsGroup"), *pod.get("supplementalGroups", [])}
        if worker.get("runAsNonRoot") is not True or worker.get("runAsUser", 0) == 0:
            problems.append(f"{pool.name}: the worker may run as root")
        gid = _gid_of_socket(pool)
        if pool.engine is not None and (gid is None or int(gid) not in groups):
            problems.append(f"{pool.name}: the worker is not in the group of dind's socket")
        if pool.engine is not None and any("hostPath" in v for v in pool.spec["volumes"]):
            problems.append(f"{pool.name}: a dind pod mounts a hostPath")
    return problems


def _unprivileged(pool: str, container: dict[str, Any]) -> list[str]:
    context = container.get("securityContext", {})
    capabilities = context.get("capabilities", {})
    root = context.get("runAsNonRoot") is not True
    if (
        context.get("privileged")
        or context.get("allowPrivilegeEscalation") is not False
        or context.get("readOnlyRootFilesystem") is not True
        or capabilities.get("drop") != ["ALL"]
        or set(capabilities.get("add", [])) - {"CHOWN"}
        or (root and capabilities.get("add") != ["CHOWN"])
    ):
        return [f"{pool}/{container['name']}: not as tight as a container here must be"]
    return []


def _port(url: str) -> int:
    parsed = urlparse(url)
    return parsed.port or (80 if parsed.scheme == "http" else 443)


def check_network(resources: list[Resource], found: list[Pool]) -> list[str]:
    """The worker pods' NetworkPolicy: nothing in, and out only on the ports of Redis, the
    object store and DNS (each rule naming its ports)."""
    problems = []
    for pool in found:
        labels = pool.deployment["spec"]["template"]["metadata"]["labels"]
        for policy in find(resources, "NetworkPolicy"):
            spec = policy["spec"]
            if not matches(spec["podSelector"], labels):
                continue
            if set(spec.get("policyTypes", [])) != {"Ingress", "Egress"} or spec.get("ingress"):
                problems.append(f"NetworkPolicy {policy['metadata']['name']}: not ingress-free")
            ports = {
                (p.get("protocol", "TCP"), p["port"])
                for r in spec["egress"]
                for p in r.get("ports", [])
            }
            if not all(rule.get("ports") for rule in spec["egress"]):
                problems.append("a NetworkPolicy egress rule is open to every port")
            redis = int(pool.env["REDIS_ADDRESS"].rsplit(":", 1)[1])
            store = _port(pool.env.get("EXECUTOR_S3_ENDPOINT_URL") or "https://s3.amazonaws.com")
            if not DNS | {("TCP", redis), ("TCP", store)} <= ports:
                problems.append(
                    f"NetworkPolicy {policy['metadata']['name']} lets {pool.name} reach no "
                    f"Redis ({redis}), store ({store}) or DNS: it allows {sorted(ports)}"
                )
    return problems


def all_problems(resources: list[Resource]) -> list[str]:
    """Every check of this module and of tests/k8s_checks.py, on a built overlay."""
    found, problems = pools(resources)
    return [
        *problems,
        *check_scalers(resources, found),
        *check_grace(found),
        *check_secrets(resources, found),
        *check_gpu(found),
        *check_labels(resources, found),
        *check_namespaces(resources),
        *quantity_problems(found),
        *check_engine(found),
        *check_security(found),
        *check_network(resources, found),
    ]
