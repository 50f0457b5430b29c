"""Enough of `kustomize build` to build deploy/k8s offline, for tests/test_deploy_k8s.py.

It follows kustomize's order: a kustomization's `resources` (a folder is built on its own,
with its own transformers), then its `components` (applied to what was accumulated so
far, like kustomize does), then its generators, then its transformers (patches, namespace,
images). It knows only the fields deploy/k8s uses and refuses any other, so a manifest
can never rely on something this builder silently skips; those it knows it applies as
kustomize does: JSON patches (RFC 6902, with `test`), secretGenerator from env files
without a hash suffix, `namespace:` and `images:`.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

Resource = dict[str, Any]

KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")
COMPONENT = ("kustomize.config.k8s.io/v1alpha1", "Component")
FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "components",
    "secretGenerator",
    "patches",
    "images",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KustomizeError(Exception):
    """What `kustomize build` would refuse, or what this builder does not know."""


@dataclass
class Build:
    resources: list[Resource] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)  # every file the build named


def load_documents(path: Path) -> list[Any]:
    """The YAML documents of a file, as plain dicts and lists."""
    yaml = YAML(typ="safe", pure=True)
    return [doc for doc in yaml.load_all(path.read_text()) if doc is not None]


def build(directory: Path, *, examples: bool = True) -> Build:
    """The resources `kustomize build directory` makes. With `examples`, a generator's env
    file is read from its `.example` beside it (the real one is never committed)."""
    out = Build()
    _accumulate(directory.resolve(), out, KUSTOMIZATION, examples)
    seen: set[tuple[str, str, str]] = set()
    for resource in out.resources:
        meta = resource.get("metadata") or {}
        key = (resource.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        if key in seen:
            raise KustomizeError(f"{directory}: two resources are {key}")
        seen.add(key)
    return out


def _inside(root: Path, path: Path) -> Path:
    """kustomize's default load restrictor: a file must be under its kustomization."""
    if not path.is_relative_to(root):
        raise KustomizeError(f"{path} is outside {root}: kustomize refuses to load it")
    return path


def _accumulate(directory: Path, out: Build, expect: tuple[str, str], examples: bool) -> None:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    out.files.add(path)
    (spec,) = load_documents(path)
    if (spec.get("apiVersion"), spec.get("kind")) != expect:
        raise KustomizeError(f"{path}: expected {expect}, found {spec.get('kind')}")
    if unknown := set(spec) - FIELDS:
        raise KustomizeError(f"{path}: this builder does not know {sorted(unknown)}")
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            sub = Build()
            _accumulate(target, sub, KUSTOMIZATION, examples)
            out.resources += sub.resources
            out.files |= sub.files
        else:
            out.files.add(_inside(directory, target))
            out.resources += load_documents(target)
    for entry in spec.get("components", []):
        _accumulate((directory / entry).resolve(), out, COMPONENT, examples)
    for generator in spec.get("secretGenerator", []):
        out.resources.append(_secret(directory, generator, out, examples))
    for patch in spec.get("patches", []):
        _patch(directory, patch, out)
    if "namespace" in spec:
        _set_namespace(out.resources, spec["namespace"])
    for image in spec.get("images", []):
        _retag(out.resources, image)


def parse_env_file(text: str, where: str) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads an env file: # comments and blank lines skipped,
    the value kept as written (quotes included)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name) or name in values:
            raise KustomizeError(f"{where}:{number}: not a new KEY=VALUE line")
        values[name] = value
    return values


def _secret(directory: Path, generator: dict[str, Any], out: Build, examples: bool) -> Resource:
    if set(generator) != {"name", "envs", "options"} or generator["options"] != {
        "disableNameSuffixHash": True
    }:
        raise KustomizeError(
            f"{directory}: secretGenerator needs name, envs and disableNameSuffixHash: "
            "this builder does not rewrite references to a hashed name"
        )
    data: dict[str, str] = {}
    for name in generator["envs"]:
        path = _inside(directory, (directory / name).resolve())
        out.files.add(path)
        source = path.with_name(path.name + ".example") if examples else path
        data.update(parse_env_file(source.read_text(), str(source)))
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": generator["name"]},
        "type": "Opaque",
        "data": encoded,
    }


def _patch(directory: Path, entry: dict[str, Any], out: Build) -> None:
    target = entry.get("target") or {}
    if set(entry) != {"path", "target"} or set(target) != {"kind", "name"}:
        raise KustomizeError(f"{directory}: a patch here is a path and a target kind and name")
    path = _inside(directory, (directory / entry["path"]).resolve())
    out.files.add(path)
    (operations,) = load_documents(path)
    if not isinstance(operations, list):
        raise KustomizeError(f"{path}: only JSON patches (a list of operations) are known here")
    matched = [
        r
        for r in out.resources
        if r.get("kind") == target["kind"] and r["metadata"].get("name") == target["name"]
    ]
    if not matched:
        raise KustomizeError(f"{path}: no {target['kind']} {target['name']} to patch")
    for resource in matched:
        apply_json_patch(resource, operations, str(path))


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"{path!r} is not a JSON pointer")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _child(node: Any, key: str, where: str) -> Any:
    try:
        return node[int(key)] if isinstance(node, list) else node[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise KustomizeError(f"{where}: no {key!r} on the way") from None


def apply_json_patch(document: Resource, operations: list[Any], where: str) -> None:
    """RFC 6902's add, remove, replace and test, as kustomize applies them."""
    for operation in operations:
        op, parts = operation["op"], _pointer(operation["path"])
        parent: Any = document
        for step in parts[:-1]:
            parent = _child(parent, step, f"{where}: {operation['path']}")
        last, value = parts[-1], copy.deepcopy(operation.get("value"))
        here = f"{where}: {op} {operation['path']}"
        if op == "test":
            if _child(parent, last, here) != value:
                raise KustomizeError(f"{here}: found {_child(parent, last, here)!r}")
        elif op in ("remove", "replace"):
            _child(parent, last, here)  # must exist
            key: Any = int(last) if isinstance(parent, list) else last
            if op == "remove":
                del parent[key]
            else:
                parent[key] = value
        elif op == "add":
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if not 0 <= index <= len(parent):
                    raise KustomizeError(f"{here}: index out of range")
                parent.insert(index, value)
            elif isinstance(parent, dict):
                parent[last] = value
            else:
                raise KustomizeError(f"{here}: not a container")
        else:
            raise KustomizeError(f"{here}: operation not known here")


def _set_namespace(resources: list[Resource], namespace: str) -> None:
    for resource in resources:
        if resource["kind"] == "Namespace" and resource["metadata"]["name"] != namespace:
            raise KustomizeError(f"namespace {namespace!r} and a Namespace of another name")
        if resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = namespace


def split_image(reference: str) -> tuple[str, str]:
    """`name` and `:tag` or `@digest` (a registry's :port is part of the name)."""
    if "@" in reference:
        name, digest = reference.split("@", 1)
        return name, "@" + digest
    slash, colon = reference.rfind("/"), reference.rfind(":")
    return (reference[:colon], reference[colon:]) if colon > slash else (reference, "")


def pod_spec(resource: Resource) -> dict[str, Any] | None:
    """The pod template's spec of a workload, if the resource has one."""
    if resource.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: dict[str, Any] = resource["spec"]["template"]["spec"]
        return spec
    return None


def _retag(resources: list[Resource], image: dict[str, Any]) -> None:
    if not set(image) <= {"name", "newName", "newTag", "digest"} or "name" not in image:
        raise KustomizeError(f"images: {image} has fields not known here")
    for resource in resources:
        spec = pod_spec(resource)
        for container in [
            *(spec or {}).get("initContainers", []),
            *(spec or {}).get("containers", []),
        ]:
            name, tail = split_image(container["image"])
            if name != image["name"]:
                continue
            if "digest" in image:
                tail = "@" + image["digest"]
            elif "newTag" in image:
                tail = ":" + image["newTag"]
            container["image"] = image.get("newName", name) + tail
