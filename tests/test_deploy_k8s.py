"""deploy/k8s (issue 13), offline: every manifest valid against its kind's schema
(Kubernetes' from kubernetes-validate, KEDA's from its CRDs), every overlay built as
kustomize would (tests/kustomize_lite.py) and consistent with itself and with the worker
(tests/k8s_checks.py, tests/k8s_pods.py), and each kind of check shown to fail on a
broken copy."""

from __future__ import annotations

import base64
import copy
import functools
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_checks import check_namespaces, check_scalers, pools
from tests.k8s_pods import all_problems
from tests.k8s_resources import Resource, find
from tests.k8s_schemas import schema_problems
from tests.kustomize_lite import (
    KustomizeError,
    apply_json_patch,
    build,
    load_documents,
    parse_env_file,
    split_image,
)

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
COMPONENTS = sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir())
NOT_BUILT = {"README.md", ".gitignore"}  # documentation, and what keeps fleet.env out of git
MANIFESTS = sorted(
    str(path.relative_to(K8S))
    for path in K8S.rglob("*.yaml")
    if path.name != "kustomization.yaml"
    and all(isinstance(doc, dict) and "kind" in doc for doc in load_documents(path))
)


@functools.cache
def _built(overlay: str) -> tuple[Resource, ...]:
    return tuple(build(K8S / "overlays" / overlay).resources)


def built(overlay: str) -> list[Resource]:
    """A fresh copy of an overlay's resources, free to break."""
    return copy.deepcopy(list(_built(overlay)))


def test_every_file_in_deploy_k8s_is_named_by_a_kustomization() -> None:
    named = set().union(*(build(K8S / "overlays" / o).files for o in OVERLAYS))
    unnamed = [
        str(path.relative_to(K8S))
        for path in sorted(K8S.rglob("*"))
        if path.is_file()
        and path.name not in NOT_BUILT
        and path not in named
        and not (path.suffix == ".example" and path.with_suffix("") in named)
    ]
    assert not unnamed, f"files no kustomization builds: {unnamed}"
    assert MANIFESTS, "no manifest found"


def test_the_readme_names_every_overlay_and_component() -> None:
    text = (K8S / "README.md").read_text()
    missing = [
        f"overlays/{o}" for o in OVERLAYS if f"kubectl apply -k deploy/k8s/overlays/{o}" not in text
    ]
    missing += [f"components/{c}" for c in COMPONENTS if f"components/{c}" not in text]
    assert not missing, f"deploy/k8s/README.md says nothing of {missing}"


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_every_manifest_is_valid_against_its_schema(manifest: str) -> None:
    problems = [p for doc in load_documents(K8S / manifest) for p in schema_problems(doc)]
    assert not problems, problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_built_resource_is_valid_against_its_schema(overlay: str) -> None:
    problems = [p for resource in built(overlay) for p in schema_problems(resource)]
    assert not problems, problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_is_consistent_with_itself_and_the_worker(overlay: str) -> None:
    resources = built(overlay)
    assert find(resources, "Deployment"), "no worker pool"
    assert not all_problems(resources)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_image_is_the_one_docker_builds(overlay: str) -> None:
    images = {
        c["image"]
        for d in find(built(overlay), "Deployment")
        for c in [
            *d["spec"]["template"]["spec"].get("initContainers", []),
            *d["spec"]["template"]["spec"]["containers"],
        ]
        if "worker" in c["image"]
    }
    assert images == {"executor/worker:latest"}


def test_the_secret_is_an_example_with_placeholders_and_the_real_file_is_ignored() -> None:
    folder = K8S / "components" / "fleet-secret"
    values = parse_env_file((folder / "fleet.env.example").read_text(), "fleet.env.example")
    assert all("CHANGE-ME" in values[k] for k in ("REDIS_PASSWORD", "AWS_SECRET_ACCESS_KEY"))
    assert "fleet.env" in (folder / ".gitignore").read_text().splitlines()


# Negative tests: the validators, the checks and the builder do fail on broken manifests.


def _set(resources: list[Resource], kind: str, name: str, path: str, value: object) -> Resource:
    """Set `value` at a dotted path in the resource (a list's item by index or by name)."""
    (resource,) = [r for r in find(resources, kind) if r["metadata"]["name"] == name]
    node: Any = resource
    *parents, last = path.split(".")
    for key in parents:
        if isinstance(node, list):
            node = node[int(key)] if key.isdigit() else next(i for i in node if i["name"] == key)
        else:
            node = node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return resource


# fmt: off
WORKER = "spec.template.spec.containers.worker"
DIND = "spec.template.spec.initContainers.dind"
BROKEN_SCHEMAS = [
    ("Deployment", "executor-worker", "spec.template.spec.terminationGracePeriodSecond", 960),
    ("Deployment", "executor-worker", f"{WORKER}.imagePullPolicyy", "Always"),
    ("Deployment", "executor-worker", "spec.replicas", "two"),
    ("NetworkPolicy", "executor-worker", "spec.egress.0.ports.0.protocl", "TCP"),
    ("Secret", "executor-fleet", "stringdata", {}),
    ("ScaledObject", "executor-worker", "spec.minReplicas", 0),
    ("ScaledObject", "executor-worker", "metadata.lables", {}),
    ("ScaledObject", "executor-worker", "spec.triggers.queued.metadata.listLength", 1),
    ("ScaledObject", "executor-worker", "spec.triggers.queued.metadata.listname", "rq:queue:x"),
    ("ScaledObject", "executor-worker", "spec.minReplicaCount", 30),
    ("TriggerAuthentication", "executor-redis", "spec.secretTargetRef.0.parameters", "x"),
]
# fmt: on


@pytest.mark.parametrize(
    "kind, name, path, value", BROKEN_SCHEMAS, ids=[f"{b[0]}.{b[2]}" for b in BROKEN_SCHEMAS]
)
def test_the_schemas_refuse_a_misspelt_or_mistyped_field(
    kind: str, name: str, path: str, value: object
) -> None:
    resource = _set(built("keda"), kind, name, path, value)
    assert schema_problems(resource), f"{kind} with {path}={value!r} was accepted"


# fmt: off
GPU = "executor-worker-gpu"
BROKEN_OVERLAYS = [
    ("ScaledObject", "executor-worker", "spec.triggers.queued.metadata.listName", "rq:queue:x", "counts"),
    ("ScaledObject", "executor-worker", "spec.triggers.running.metadata.databaseIndex", "1", "database"),
    ("ScaledObject", "executor-worker", "spec.scaleTargetRef.name", GPU, "autoscalers"),
    ("ScaledObject", "executor-worker", "spec.advanced.scalingModifiers.formula", "queued + runing", "formula"),
    ("TriggerAuthentication", "executor-redis", "spec.secretTargetRef.1.key", "REDIS_PASS", "no REDIS_PASS"),
    ("Deployment", "executor-worker", f"{WORKER}.args", ["--queue", "other"], "serves ['other']"),
    ("Deployment", "executor-worker", f"{WORKER}.args", ["--queues", "default"], "would refuse"),
    ("Deployment", "executor-worker", "spec.template.spec.terminationGracePeriodSeconds", 600, "drain grace"),
    ("Deployment", "executor-worker", f"{WORKER}.env.EXECUTOR_WORKER_DRAIN_GRACE.value", "soon", "would refuse"),
    ("Deployment", "executor-worker", f"{WORKER}.env.AWS_ACCESS_KEY_ID.valueFrom.secretKeyRef.key", "AWS_KEY", "no key AWS_KEY"),
    ("Deployment", "executor-worker", f"{WORKER}.env.EXECUTOR_REDIS_URL.value", "redis://:$(REDIS_PASSWORD)@$(REDIS_HOST)/0", "names no variable"),
    ("Deployment", "executor-worker", f"{WORKER}.env.EXECUTOR_WORKER_HOST_DIR.value", "/srv/worker", "EXECUTOR_WORKER_HOST_DIR"),
    ("Deployment", "executor-worker", f"{WORKER}.env.EXECUTOR_WORKER_MAX_MEMORY.value", "16g", "ceilings"),
    ("Deployment", "executor-worker", f"{WORKER}.env.EXECUTOR_WORKER_CACHE_SIZE.value", "100g", "cache"),
    ("Deployment", "executor-worker", f"{WORKER}.resources.limits.memory", "128Mi", "request > limit"),
    ("Deployment", "executor-worker", f"{WORKER}.securityContext.runAsUser", 0, "root"),
    ("Deployment", "executor-worker", f"{DIND}.volumeMounts.workspace.mountPath", "/workspace", "same path"),
    ("Deployment", "executor-worker", f"{DIND}.args.2", "--group=999", "group of dind's socket"),
    ("Deployment", "executor-worker", f"{DIND}.args.1", "--host=tcp://0.0.0.0:2375", "no TCP"),
    ("Deployment", GPU, f"{DIND}.resources.limits", {"cpu": "8", "memory": "32Gi"}, "serves the GPU queue"),
    ("Deployment", GPU, f"{WORKER}.env.EXECUTOR_GPU_QUEUE.value", "gpus", "EXECUTOR_GPU_QUEUE"),
    ("Deployment", GPU, f"{WORKER}.env.EXECUTOR_WORKER_GPUS.value", "", "--gpus"),
    ("Deployment", GPU, "spec.selector.matchLabels", {"app.kubernetes.io/name": "executor-worker"}, "also takes"),
    ("NetworkPolicy", "executor-worker", "spec.podSelector.matchLabels", {"app": "worker"}, "no NetworkPolicy"),
    ("NetworkPolicy", "executor-worker", "spec.egress.0.ports.0.port", 6380, "Redis (6379)"),
]
# fmt: on


@pytest.mark.parametrize(
    "kind, name, path, value, expected",
    BROKEN_OVERLAYS,
    ids=[f"{b[1]}.{b[2]}={b[3]}" for b in BROKEN_OVERLAYS],
)
def test_the_consistency_checks_see_a_broken_overlay(
    kind: str, name: str, path: str, value: object, expected: str
) -> None:
    resources = built("keda-gpu")
    _set(resources, kind, name, path, value)
    problems = all_problems(resources)
    assert any(expected in p for p in problems), problems


def test_a_json_patch_whose_test_fails_stops_the_build() -> None:
    document = {"spec": {"containers": [{"name": "worker"}, {"name": "dind"}]}}
    apply_json_patch(
        document, [{"op": "test", "path": "/spec/containers/1/name", "value": "dind"}], "t"
    )
    with pytest.raises(KustomizeError, match="found 'worker'"):
        apply_json_patch(
            document, [{"op": "test", "path": "/spec/containers/0/name", "value": "dind"}], "t"
        )
    apply_json_patch(document, [{"op": "remove", "path": "/spec/containers/0"}], "t")
    assert document == {"spec": {"containers": [{"name": "dind"}]}}


@pytest.fixture()
def k8s_copy(tmp_path: Path) -> Path:
    """A copy of deploy/k8s to break."""
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path / "k8s"


def _overlay(root: Path, name: str, text: str) -> Path:
    (root / "overlays" / name).mkdir()
    (root / "overlays" / name / "kustomization.yaml").write_text(text)
    return root / "overlays" / name


def test_the_builder_refuses_what_it_does_not_know(k8s_copy: Path) -> None:
    head = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    with pytest.raises(KustomizeError, match="commonLabels"):
        build(
            _overlay(k8s_copy, "labels", head + "resources: [../../base]\ncommonLabels: {a: b}\n")
        )
    (k8s_copy / "base" / "outside.yaml").write_text((K8S / "base" / "namespace.yaml").read_text())
    with pytest.raises(KustomizeError, match="outside"):
        build(_overlay(k8s_copy, "outside", head + "resources: [../../base/outside.yaml]\n"))
    with pytest.raises(KustomizeError, match="expected"):
        build(_overlay(k8s_copy, "component", head + "resources: [../../components/keda]\n"))


def test_a_namespace_in_base_alone_leaves_the_components_resources_outside(k8s_copy: Path) -> None:
    kustomization = k8s_copy / "overlays" / "keda" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("namespace: executor\n", ""))
    problems = check_namespaces(build(kustomization.parent).resources)
    assert any(p.startswith("ScaledObject executor-worker is in namespace None") for p in problems)
    assert any(p.startswith("Secret executor-fleet") for p in problems)


def test_keda_and_hpa_together_scale_one_pool_twice(k8s_copy: Path) -> None:
    both = (k8s_copy / "overlays" / "keda" / "kustomization.yaml").read_text()
    both = both.replace(
        "  - ../../components/keda\n", "  - ../../components/keda\n  - ../../components/hpa\n"
    )
    resources = build(_overlay(k8s_copy, "both", both)).resources
    found, _ = pools(resources)
    assert "Deployment executor-worker has 2 autoscalers, not one" in check_scalers(
        resources, found
    )


def test_images_and_the_real_env_file_are_used_as_kustomize_would(k8s_copy: Path) -> None:
    assert split_image("registry:5000/executor/worker:1.0") == (
        "registry:5000/executor/worker",
        ":1.0",
    )
    assert split_image("executor/worker@sha256:ab") == ("executor/worker", "@sha256:ab")
    secret_folder = k8s_copy / "components" / "fleet-secret"
    real = (secret_folder / "fleet.env.example").read_text().replace("CHANGE-ME", "s3cret")
    (secret_folder / "fleet.env").write_text(real)
    kustomization = k8s_copy / "overlays" / "keda" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace(
            "newTag: latest", "newName: registry:5000/w\n    newTag: '1.0'"
        )
    )
    resources = build(kustomization.parent, examples=False).resources
    (worker,) = [d for d in find(resources, "Deployment")]
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == "registry:5000/w:1.0"
    assert not all_problems(resources)
    secret = find(resources, "Secret")[0]["data"]
    assert base64.b64decode(secret["AWS_SECRET_ACCESS_KEY"]).decode() == "s3cret"
