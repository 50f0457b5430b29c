"""Reading built Kubernetes resources as the cluster would, for tests/test_deploy_k8s.py:
a container's environment (Kubernetes' $(VAR) expansion, Secret keys), label selectors,
quantities."""

from __future__ import annotations

import base64
import re
from typing import Any

Resource = dict[str, Any]

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_QUANTITY = re.compile(r"([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_SCALE: dict[str | None, float] = {
    None: 1.0,
    "m": 1e-3,
    **{s: 1000.0**i for i, s in enumerate("kMGTPE", 1)},
    **{s: 1024.0**i for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}


def find(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r.get("kind") == kind]


def secret_data(resources: list[Resource]) -> dict[str, dict[str, str]]:
    """Each Secret's values, decoded."""
    return {
        r["metadata"]["name"]: {
            **{k: base64.b64decode(v).decode() for k, v in r.get("data", {}).items()},
            **r.get("stringData", {}),
        }
        for r in find(resources, "Secret")
    }


def expand(text: str, env: dict[str, str], problems: list[str], where: str) -> str:
    """Kubernetes' $(VAR) expansion from the variables defined before; a name that is not
    is left as written by Kubernetes, and is a problem here."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(1) not in env:
            problems.append(f"{where}: $({match.group(1)}) names no variable defined before")
            return match.group(0)
        return env[match.group(1)]

    return _REF.sub(one, text)


def container_env(
    container: dict[str, Any], resources: list[Resource], problems: list[str], where: str
) -> dict[str, str]:
    """The environment the container starts with: values expanded, Secret keys read (a
    missing one is a problem unless optional), field references as <fieldPath>."""
    env: dict[str, str] = {}
    secrets = secret_data(resources)
    for var in container.get("env", []):
        name, here = var["name"], f"{where}/{container['name']} env {var['name']}"
        source = var.get("valueFrom", {})
        if "value" in var:
            env[name] = expand(str(var["value"]), env, problems, here)
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is not None:
                env[name] = value
            elif not ref.get("optional"):
                problems.append(f"{here}: Secret {ref['name']} has no key {ref['key']}")
        elif "fieldRef" in source:
            env[name] = f"<{source['fieldRef']['fieldPath']}>"
        else:
            problems.append(f"{here}: a source not read here")
    return env


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only: the manifests use nothing else) selects
    these labels."""
    if set(selector) - {"matchLabels"}:
        raise AssertionError(f"selector {selector}: only matchLabels is read here")
    wanted = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity (2Gi, 500m, 1), in bytes or cores."""
    match = _QUANTITY.fullmatch(str(value))
    if match is None:
        raise AssertionError(f"{value!r} is not a quantity")
    return float(match.group(1)) * _SCALE[match.group(2)]


def limit(container: dict[str, Any], key: str) -> float:
    """A container's limit of `key`, 0 if none."""
    value = container.get("resources", {}).get("limits", {}).get(key)
    return 0.0 if value is None else parse_quantity(value)
