"""What a detached submission settled on its own host (skipped, checked out or restored
stages), kept beside the repository's DVC files: `executor fetch` in that clone takes these
entries from here rather than from Redis, where anyone who can write could change them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executor.durable import publish
from executor.dvcformat.entry import Entry


def _path(root: Path, run_id: str) -> Path:
    return root / ".dvc" / "tmp" / "executor" / "runs" / f"{run_id}.json"


def keep_here(root: Path, run_id: str, entries: Mapping[str, Entry]) -> None:
    path = _path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(dict(entries)))
    publish(tmp, path, synced=False)


def submitted_here(root: Path, run_id: str) -> dict[str, Any] | None:
    """The entries kept for run `run_id`, or None if it was not submitted from here."""
    try:
        value = json.loads(_path(root, run_id).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
