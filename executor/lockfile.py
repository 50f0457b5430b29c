"""Reading dvc.lock files and rewriting one stage's entry at a time, atomically, as DVC does."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from executor import yamlio
from executor.errors import PipelineError
from executor.lockentry import Entry, plain

SCHEMA = "2.0"


def read_lock(root: Path, lockfile: str) -> dict[str, Entry]:
    """Stage name -> entry (plain values) of one dvc.lock; {} if there is none."""
    path = root / lockfile
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = yamlio.load_text(text, lockfile)
    if not data:
        return {}
    if not isinstance(data, Mapping) or not isinstance(data.get("stages", {}), Mapping):
        raise PipelineError("not a dvc.lock file (expected `schema` and `stages`)", path=lockfile)
    return {str(name): plain(entry) for name, entry in (data.get("stages") or {}).items()}


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LockWriter:
    """Writes stage entries into dvc.lock files, one rewrite per stage, never half-written.

    Like DVC's Lockfile.dump_stages: the file is re-read round-trip, the stage's entry replaced
    in place or appended, and the file written back; a new file starts with `schema: '2.0'`.
    """

    def __init__(self, root: Path, log: Callable[[str], None] = lambda _msg: None) -> None:
        self.root = root
        self.log = log
        self._lock = threading.Lock()

    def write(self, lockfile: str, name: str, entry: Mapping[str, Any]) -> bool:
        """Record `entry` for stage `name`; True if the file changed."""
        path = self.root / lockfile
        with self._lock:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            data = yamlio.load_roundtrip(text, lockfile) if text.strip() else None
            if not data:
                from ruamel.yaml.comments import CommentedMap

                data = CommentedMap()
                data["schema"] = SCHEMA
                self.log(f"Generating lock file '{lockfile}'")
            stages = data.get("stages")
            if stages is None:
                data["stages"] = stages = {}
            if plain(stages.get(name)) == plain(entry):
                return False
            self.log(f"Updating lock file '{lockfile}'")
            stages[name] = dict(entry)
            _write_atomic(path, yamlio.dump(data))
            return True
