"""The settings executor reads from DVC's own config files, at DVC's four levels.

DVC's config is configobj INI: `[section]` or `['remote "name"']` headers and indented
`key = value` lines. Levels, later ones winning: system, global (both per machine, moved by
DVC_SYSTEM_CONFIG_DIR / DVC_GLOBAL_CONFIG_DIR), the repository's `.dvc/config` and its
untracked `.dvc/config.local`. Read here: `cache.dir`, which moves the cache `dvc` and
`executor` share, `cache.type` (how checkouts link to it) and the remotes
(`executor.dvcformat.remotes`). A relative path in a config file
is relative to that file's folder, as DVC resolves it.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from executor.errors import ConfigError

CONFIG_FILES = ("config", "config.local")  # the repository's levels, in order
_URL = re.compile(r"\w+://")


@dataclass(frozen=True)
class Value:
    """One setting and the config file it came from."""

    text: str
    file: Path

    def path(self) -> str:
        """The value as DVC resolves a path: URLs as they are, `~` expanded, a relative
        path taken from the config file's folder."""
        if _URL.match(self.text):
            return self.text
        expanded = os.path.expanduser(self.text)
        return os.path.normpath(os.path.join(self.file.parent, expanded))


def config_files(dvc_dir: Path) -> list[Path]:
    """DVC's config files for this repository, lowest level first (missing ones included)."""
    return [
        _system_dir() / "config",
        _global_dir() / "config",
        *(dvc_dir / name for name in CONFIG_FILES),
    ]


def _global_dir() -> Path:
    configured = os.environ.get("DVC_GLOBAL_CONFIG_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "dvc"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "dvc"


def _system_dir() -> Path:
    configured = os.environ.get("DVC_SYSTEM_CONFIG_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "darwin":
        return Path("/Library/Application Support/dvc")
    first = (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")[0]
    return Path(first) / "dvc"


def read_sections(path: Path) -> dict[str, dict[str, str]]:
    """Every section of one configobj INI file: name -> {key: value} ({} if no file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read DVC's config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"DVC's config {path} is not UTF-8 text ({exc.reason})") from None
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            header = _value(line[1:].partition("]")[0].strip()) if "]" in line else ""
            if not header:
                raise ConfigError(f"{path}:{number}: unclosed section header {line!r}")
            # DVC lower-cases section names (remote names too) and keys.
            current = sections.setdefault(header.lower(), {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected `key = value`, got {line!r}")
        if current is not None:
            current[key.strip().lower()] = _value(value.strip())
    return sections


def _value(text: str) -> str:
    """A configobj value: a quoted string as it is inside its quotes, else the text before
    an inline `#` comment."""
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end > 0:
            return text[1:end]
    return text.partition("#")[0].strip()


def merged(dvc_dir: Path) -> dict[str, dict[str, Value]]:
    """Every section across the levels, key by key, a higher level's value winning."""
    result: dict[str, dict[str, Value]] = {}
    for file in config_files(dvc_dir):
        for name, values in read_sections(file).items():
            section = result.setdefault(name, {})
            section.update({key: Value(text, file) for key, text in values.items()})
    return result


def read_section(path: Path, section: str) -> dict[str, str]:
    """`key = value` pairs of one section of one config file ({} if absent)."""
    return read_sections(path).get(section, {})


def cache_dir(dvc_dir: Path) -> Path:
    """The cache folder DVC uses for this repository: `cache.dir`, else `.dvc/cache`."""
    configured = merged(dvc_dir).get("cache", {}).get("dir")
    if configured is None or not configured.text:
        return dvc_dir / "cache"
    return Path(configured.path())


def core_flag(dvc_dir: Path, name: str) -> bool:
    """A boolean of DVC's `core` section: `no_scm` (`dvc init --no-scm`: DVC keeps out of
    git, .gitignore included), `hardlink_lock` (locks for NFS, not flock)."""
    configured = merged(dvc_dir).get("core", {}).get(name)
    return configured is not None and configured.text.lower() in ("true", "yes", "on", "1")


LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
DEFAULT_TYPES = ("reflink", "copy")


def parse_types(text: str, where: str) -> tuple[str, ...]:
    """`cache.type` as DVC writes it: names separated by commas."""
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in types if t not in LINK_TYPES]
    if unknown or not types:
        raise ConfigError(
            f"{where}: cache.type {text!r} is not a list of {', '.join(LINK_TYPES)}; "
            "fix it with e.g. `dvc config cache.type reflink,copy`"
        )
    return types


def cache_types(dvc_dir: Path) -> tuple[str, ...]:
    """`cache.type`: the link types checkouts try, in order (DVC's default reflink,copy)."""
    configured = merged(dvc_dir).get("cache", {}).get("type")
    if configured is None or not configured.text:
        return DEFAULT_TYPES
    return parse_types(configured.text, str(configured.file))
