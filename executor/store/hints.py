"""The `.dir` object each directory output last had in a store, remembered per store inside the
repository, so that pushing a big directory after a few of its files changed checks only
those files.

Sound because a `.dir` object in a store stands for all of its files (DVC and executor upload
it only after them): if the previous version's `.dir` is still there (one request says so),
every file the two versions share is there too. A lost or stale hint costs only speed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


class DirHints:
    """output path -> `.dir` md5 known to be in one store (empty, and never saved, without a
    file)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._dirs: dict[str, str] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError):
                loaded = {}
            if isinstance(loaded, dict):
                self._dirs = {str(k): str(v) for k, v in loaded.items()}

    @classmethod
    def for_store(cls, root: Path, url: str) -> DirHints:
        name = hashlib.sha256(url.encode()).hexdigest()[:20]
        return cls(root / ".dvc" / "tmp" / "executor" / "stores" / f"{name}.json")

    def previous(self, out_path: str) -> str | None:
        return self._dirs.get(out_path)

    def remember(self, out_path: str, md5: str) -> None:
        self._dirs[out_path] = md5

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self._dirs, f, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
