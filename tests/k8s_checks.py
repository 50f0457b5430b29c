"""What a schema cannot see in a built deploy/k8s overlay, for tests/test_deploy_k8s.py:
that its parts agree with each other and with the worker itself. A worker pool's settings
are read by the worker's own code (its CLI's flags, WorkerConfig, Settings), so a value the
worker would refuse is a problem here too. Each check returns problems as sentences."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import click
from rq.queue import Queue
from rq.registry import StartedJobRegistry

from executor.errors import ConfigError
from executor.fleet.keys import DEFAULT_GPU_QUEUE
from executor.settings import Settings
from tests.k8s_resources import (
    Resource,
    container_env,
    expand,
    find,
    limit,
    matches,
    parse_quantity,
    secret_data,
)
from worker.config import WorkerConfig
from worker.gpurouting import check_gpu_queue

DRAIN_MARGIN = 30  # seconds beyond drain + stop grace: outputs pushed, the stage handed over
GPU = "nvidia.com/gpu"


@dataclass
class Pool:
    """A worker Deployment, as the worker in it would read its settings."""

    deployment: Resource
    spec: dict[str, Any]  # the pod template's spec
    worker: dict[str, Any]  # the `worker` container
    engine: dict[str, Any] | None  # the Docker-in-Docker sidecar, if any
    env: dict[str, str]
    queues: tuple[str, ...]
    config: WorkerConfig
    settings: Settings

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    def containers(self) -> list[dict[str, Any]]:
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]


def served_queues(args: list[str]) -> tuple[str, ...]:
    """The queues `executor-worker` with these arguments serves, as its CLI parses them."""
    from worker.service import main

    required = ["--redis", "redis://unused", "--store", "s3://unused/prefix"]
    context = main.make_context("executor-worker", [*args, *required])
    return tuple(context.params["queues"])


def pools(resources: list[Resource]) -> tuple[list[Pool], list[str]]:
    found, problems = [], []
    for deployment in find(resources, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        where = deployment["metadata"]["name"]
        workers = [c for c in spec["containers"] if c["name"] == "worker"]
        if len(workers) != 1:
            problems.append(f"Deployment {where} has no single container named worker")
            continue
        engines = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
        env = container_env(workers[0], resources, problems, where)
        try:
            args = [expand(str(a), env, problems, f"{where} args") for a in workers[0]["args"]]
            queues = served_queues(args)
            config = WorkerConfig.from_env(env)
            settings = Settings.from_env(env)
        except (click.UsageError, ConfigError) as exc:
            problems.append(f"Deployment {where}: the worker would refuse it: {exc}")
            continue
        engine = engines[0] if engines else None
        found.append(Pool(deployment, spec, workers[0], engine, env, queues, config, settings))
    return found, problems


def check_scalers(resources: list[Resource], found: list[Pool]) -> list[str]:
    """Each Deployment has exactly one autoscaler; a ScaledObject counts the queue its
    Deployment serves (RQ's list of queued jobs and registry of started ones) in the
    database its Redis URL names; an HPA's Deployment has CPU requests everywhere."""
    problems: list[str] = []
    by_name = {pool.name: pool for pool in found}
    auths = {r["metadata"]["name"] for r in find(resources, "TriggerAuthentication")}
    scaled: Counter[str] = Counter()
    for scaler in [*find(resources, "ScaledObject"), *find(resources, "HorizontalPodAutoscaler")]:
        ref = scaler["spec"]["scaleTargetRef"]
        pool = by_name.get(ref["name"])
        if ref.get("kind", "Deployment") != "Deployment" or pool is None:
            problems.append(f"{scaler['kind']} {scaler['metadata']['name']} scales nothing here")
            continue
        scaled[pool.name] += 1
        if scaler["kind"] == "ScaledObject":
            problems += _scaledobject_problems(scaler, pool, auths)
        else:
            counted = [*pool.spec["containers"], *([pool.engine] if pool.engine else [])]
            problems += [
                f"HPA on {pool.name}: container {c['name']} has no CPU request"
                for c in counted
                if "cpu" not in c.get("resources", {}).get("requests", {})
            ]
    problems += [
        f"Deployment {pool.name} has {scaled[pool.name]} autoscalers, not one"
        for pool in found
        if scaled[pool.name] != 1
    ]
    return problems


def _scaledobject_problems(scaler: Resource, pool: Pool, auths: set[str]) -> list[str]:
    name, spec = scaler["metadata"]["name"], scaler["spec"]
    triggers = spec["triggers"]
    keys = {Queue.redis_queue_namespace_prefix + q for q in pool.queues}
    keys |= {StartedJobRegistry.key_template.format(q) for q in pool.queues}
    listed = {t["metadata"].get("listName") for t in triggers}
    problems = []
    if listed != keys:
        problems.append(
            f"ScaledObject {name} counts {sorted(map(str, listed))} but {pool.name} serves "
            f"{list(pool.queues)}: expected {sorted(keys)}"
        )
    database = urlparse(pool.env["EXECUTOR_REDIS_URL"]).path.strip("/") or "0"
    for trigger in triggers:
        if trigger["metadata"].get("databaseIndex", "0") != database:
            problems.append(f"ScaledObject {name}: not the database {database} of the workers")
        if trigger.get("authenticationRef", {}).get("name") not in auths:
            problems.append(f"ScaledObject {name}: its TriggerAuthentication is missing")
    if spec.get("minReplicaCount", 0) != 0:
        problems.append(f"ScaledObject {name} does not scale from zero")
    modifiers = spec.get("advanced", {}).get("scalingModifiers")
    if modifiers:
        names = set(re.findall(r"[A-Za-z_]\w*", modifiers["formula"])) - {"float", "min", "max"}
        if not names <= {t.get("name") for t in triggers}:
            problems.append(f"ScaledObject {name}: its formula names no trigger {sorted(names)}")
        if float(modifiers["target"]) <= 0 or modifiers.get("metricType") == "Utilization":
            problems.append(f"ScaledObject {name}: KEDA refuses its scalingModifiers' target")
    return problems


def check_grace(found: list[Pool]) -> list[str]:
    """The pod outlives the worker's drain: drain grace, stop grace, and a margin."""
    problems = []
    for pool in found:
        needed = pool.config.drain_grace + pool.settings.stop_grace + DRAIN_MARGIN
        period = pool.spec.get("terminationGracePeriodSeconds", 30)
        if period < needed:
            problems.append(
                f"Deployment {pool.name}: terminationGracePeriodSeconds {period} < drain grace "
                f"{pool.config.drain_grace:g} + stop grace {pool.settings.stop_grace:g} "
                f"+ {DRAIN_MARGIN}"
            )
    return problems


def check_secrets(resources: list[Resource], found: list[Pool]) -> list[str]:
    """What names a Secret's key finds it, and every key of a Secret is used by something."""
    data = secret_data(resources)
    used: set[tuple[str, str]] = set()
    problems: list[str] = []
    for pool in found:
        for container in pool.containers():
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    used.add((ref["name"], ref["key"]))
                    if ref["name"] not in data:
                        problems.append(f"{pool.name}: no Secret {ref['name']}")
    for auth in find(resources, "TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            used.add((ref["name"], ref["key"]))
            if ref["key"] not in data.get(ref["name"], {}):
                problems.append(f"TriggerAuthentication: Secret {ref['name']} has no {ref['key']}")
    problems += [
        f"Secret {name}: key {key} is used by nothing (misspelt?)"
        for name, values in data.items()
        for key in values
        if (name, key) not in used
    ]
    return problems


def check_gpu(found: list[Pool]) -> list[str]:
    """One GPU queue everywhere (executor's default); the pool serving it asks for GPUs,
    declares them and runs on GPU nodes; no other pool holds a GPU."""
    problems = []
    if {pool.config.gpu_queue for pool in found} != {DEFAULT_GPU_QUEUE}:
        problems.append(f"EXECUTOR_GPU_QUEUE is not {DEFAULT_GPU_QUEUE!r} in every pool")
    for pool in found:
        gpus = sum(limit(c, GPU) for c in pool.containers())
        try:
            check_gpu_queue(pool.queues, pool.config)
        except ConfigError as exc:
            problems.append(f"Deployment {pool.name}: {exc}")
        if pool.config.gpu_queue not in pool.queues:
            if gpus:
                problems.append(f"Deployment {pool.name} holds GPUs but serves no GPU queue")
        elif not gpus or not pool.spec.get("nodeSelector") or len(pool.queues) != 1:
            problems.append(
                f"Deployment {pool.name} serves the GPU queue: it needs a {GPU} limit, "
                "a nodeSelector, and no other queue"
            )
    return problems


def check_labels(resources: list[Resource], found: list[Pool]) -> list[str]:
    """Selectors select their own pods only; the NetworkPolicy selects every worker pod."""
    problems = []
    accounts = {r["metadata"]["name"] for r in find(resources, "ServiceAccount")}
    policies = find(resources, "NetworkPolicy")
    for pool in found:
        labels = pool.deployment["spec"]["template"]["metadata"]["labels"]
        if not matches(pool.deployment["spec"]["selector"], labels):
            problems.append(f"Deployment {pool.name}: its selector misses its own pods")
        problems += [
            f"Deployment {other.name}'s selector also takes {pool.name}'s pods"
            for other in found
            if other is not pool and matches(other.deployment["spec"]["selector"], labels)
        ]
        if not any(matches(p["spec"]["podSelector"], labels) for p in policies):
            problems.append(f"no NetworkPolicy selects the pods of {pool.name}")
        if pool.spec.get("serviceAccountName") not in accounts:
            problems.append(f"Deployment {pool.name}: its ServiceAccount is missing")
        for term in (
            pool.spec.get("affinity", {})
            .get("podAntiAffinity", {})
            .get("requiredDuringSchedulingIgnoredDuringExecution", [])
        ):
            if not matches(term["labelSelector"], labels):
                problems.append(f"Deployment {pool.name}: its anti-affinity misses its pods")
    return problems


def check_namespaces(resources: list[Resource]) -> list[str]:
    """Everything in the overlay's one Namespace (kustomize sets it only where told)."""
    names = [r["metadata"]["name"] for r in find(resources, "Namespace")]
    if len(names) != 1:
        return [f"{len(names)} Namespaces, not one"]
    return [
        f"{r['kind']} {r['metadata']['name']} is in namespace "
        f"{r['metadata'].get('namespace')!r}, not {names[0]!r}"
        for r in resources
        if r["kind"] != "Namespace" and r["metadata"].get("namespace") != names[0]
    ]


def quantity_problems(found: list[Pool]) -> list[str]:
    """Requests within limits, a stage's ceilings within its engine, the cache within the
    worker's home volume."""
    problems = []
    for pool in found:
        for container in pool.containers():
            resources = container.get("resources", {})
            for key, request in resources.get("requests", {}).items():
                cap = resources.get("limits", {}).get(key)
                if cap is not None and parse_quantity(request) > parse_quantity(cap):
                    problems.append(f"{pool.name}/{container['name']}: {key} request > limit")
        ceilings = pool.config.ceilings
        if pool.engine is not None and (
            (ceilings.memory or float("inf")) > limit(pool.engine, "memory")
            or (ceilings.cpus or float("inf")) > limit(pool.engine, "cpu")
        ):
            problems.append(f"{pool.name}: a stage's ceilings are above its engine's limits")
        home = [v for v in pool.spec["volumes"] if v["name"] == "workspace"]
        size = home[0].get("emptyDir", {}).get("sizeLimit") if home else None
        if size is not None and parse_quantity(size) < pool.config.cache_bytes:
            problems.append(f"{pool.name}: the cache is larger than the workspace volume")
    return problems
