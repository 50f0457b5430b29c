"""The few settings executor reads from DVC's own config files (`.dvc/config`, `config.local`).

DVC's config is configobj INI: `[section]` or `['remote "name"']` headers and indented
`key = value` lines. Only `cache.dir` matters here: it moves the cache that `dvc` and
`executor` share. A relative `cache.dir` is relative to the config file's folder (`.dvc/`).
"""

from __future__ import annotations

import os
from pathlib import Path

from executor.errors import ConfigError

CONFIG_FILES = ("config", "config.local")  # later files override earlier ones


def read_section(path: Path, section: str) -> dict[str, str]:
    """`key = value` pairs of one section of a configobj INI file ({} if absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]").strip().strip("'\"")
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected `key = value`, got {raw.strip()!r}")
        if current == section:
            found[key.strip()] = value.strip().strip("'\"")
    return found


def cache_dir(dvc_dir: Path) -> Path:
    """The cache folder DVC uses for this repository: `cache.dir`, else `.dvc/cache`."""
    configured = None
    for name in CONFIG_FILES:
        configured = read_section(dvc_dir / name, "cache").get("dir", configured)
    if not configured:
        return dvc_dir / "cache"
    return Path(os.path.normpath(dvc_dir / os.path.expanduser(configured)))
