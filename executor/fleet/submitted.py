"""What a detached submission settled on its own host (skipped, checked out or restored
stages), kept beside the repository's DVC files: `executor fetch` in that clone takes these
entries from here rather than from Redis, where anyone who can write could change them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor.durable import publish
from executor.dvcformat.entry import Entry


def _path(root: Path, run_id: str) -> Path:
    return root / ".dvc" / "tmp" / "executor" / "runs" / f"{run_id}.json"


def template_digest(template: Mapping[str, Any]) -> str:
    """What a template was when it was recorded (fleet.templates.Template.to_dict)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Submitted:
    """What the submitting host kept of a run: the entries it settled, and a digest of each
    template it recorded."""

    entries: dict[str, Entry] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)


def keep_here(root: Path, run_id: str, kept: Submitted) -> None:
    path = _path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"entries": kept.entries, "templates": kept.templates}))
    publish(tmp, path, synced=False)


def submitted_here(root: Path, run_id: str) -> Submitted | None:
    """What was kept for run `run_id`, or None if it was not submitted from here."""
    try:
        value = json.loads(_path(root, run_id).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    entries, templates = value.get("entries"), value.get("templates")
    if not isinstance(entries, dict) or not isinstance(templates, dict):
        return None
    return Submitted(entries, {str(k): str(v) for k, v in templates.items()})
