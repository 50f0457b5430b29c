"""Offline schema validation of deploy/k8s's manifests, for tests/test_deploy_k8s.py.

Kubernetes' own kinds: the schemas the `kubernetes-validate` package ships, in its strict
form (an unknown field is an error), for the oldest version the manifests support (1.29:
native sidecar containers on by default) and the newest the package knows.
KEDA's kinds: the openAPIV3Schema of KEDA's CRDs (tests/data/k8s, see its README), made
strict the same way, with `metadata` checked as Kubernetes' ObjectMeta, plus the redis
scaler's parameter names (a trigger's metadata is an open map of strings in the CRD).
Each function returns the problems as sentences: none when the resource is valid.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

DATA = Path(__file__).parent / "data" / "k8s"
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
KEDA_SCHEMAS = {
    "ScaledObject": "keda-scaledobject-v1alpha1.schema.json",
    "TriggerAuthentication": "keda-triggerauthentication-v1alpha1.schema.json",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def plain(value: Any) -> Any:
    """JSON's types only, as the API server sees a manifest."""
    return json.loads(json.dumps(value))


def name_of(resource: dict[str, Any]) -> str:
    return f"{resource.get('kind')}/{(resource.get('metadata') or {}).get('name')}"


def schema_problems(resource: dict[str, Any]) -> list[str]:
    """The resource against its kind's schema: Kubernetes' or KEDA's."""
    if str(resource.get("apiVersion", "")).startswith("keda.sh/"):
        return keda_problems(resource)
    problems = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(plain(resource), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{name_of(resource)} (Kubernetes {version}) {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(exc.message)
    return problems


def strict_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A CRD schema that also refuses unknown fields: `additionalProperties: false` on each
    object that lists its properties and says nothing of others (the API server would
    prune such a field, `kubectl apply` with strict field validation refuses it)."""
    node = dict(node)
    if "properties" in node:
        node["properties"] = {k: strict_schema(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            node["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = strict_schema(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            node[key] = [strict_schema(s) for s in node[key]]
    return node


def _kubernetes_definitions() -> dict[str, Any]:
    """kubernetes-validate's shared definitions (ObjectMeta and the rest), strict form."""
    folder = f"v{K8S_VERSIONS[-1]}-local-strict"
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions: dict[str, Any] = json.loads((schemas / folder / "_definitions.json").read_text())
    return definitions


@functools.cache
def keda_validator(kind: str) -> Draft202012Validator:
    definitions = _kubernetes_definitions()
    schema = strict_schema(json.loads((DATA / KEDA_SCHEMAS[kind]).read_text()))
    schema["properties"]["metadata"] = {"$ref": f"{definitions['$id']}#/$defs/{OBJECT_META}"}
    registry: Registry = Resource.from_contents(definitions) @ Registry()
    return Draft202012Validator(schema, registry=registry)


@functools.cache
def redis_scaler_parameters() -> dict[str, frozenset[str]]:
    known = json.loads((DATA / "keda-redis-scaler.json").read_text())
    return {k: frozenset(v) for k, v in known.items() if isinstance(v, list)}


def keda_problems(resource: dict[str, Any]) -> list[str]:
    kind = resource.get("kind", "")
    if resource.get("apiVersion") != "keda.sh/v1alpha1" or kind not in KEDA_SCHEMAS:
        return [f"{name_of(resource)}: no KEDA schema here for {resource.get('apiVersion')}"]
    problems = [
        f"{name_of(resource)} (KEDA) {'.'.join(str(p) for p in error.absolute_path)}: "
        f"{error.message}"
        for error in keda_validator(kind).iter_errors(plain(resource))
    ]
    spec = resource.get("spec") or {}
    known = redis_scaler_parameters()
    for trigger in spec.get("triggers") or []:
        if trigger.get("type") != "redis":
            problems.append(f"{name_of(resource)}: only the redis scaler is known here")
            continue
        if unknown := set(trigger.get("metadata") or {}) - known["trigger_metadata"]:
            problems.append(f"{name_of(resource)}: the redis scaler reads no {sorted(unknown)}")
    for ref in spec.get("secretTargetRef") or []:
        if ref.get("parameter") not in known["auth_params"]:
            problems.append(
                f"{name_of(resource)}: the redis scaler reads no {ref.get('parameter')}"
            )
    # the CRD's one CEL rule (x-kubernetes-validations), which JSON Schema cannot say
    if kind == "ScaledObject" and spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        problems.append(f"{name_of(resource)}: minReplicaCount is over maxReplicaCount")
    return problems
