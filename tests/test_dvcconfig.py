"""cache.dir from DVC's config files, as DVC resolves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.dvcformat.config import cache_dir, read_section
from executor.errors import ConfigError


def test_default_cache_is_dot_dvc_cache(tmp_path: Path) -> None:
    assert cache_dir(tmp_path) == tmp_path / "cache"


def test_relative_cache_dir_is_relative_to_the_dvc_folder_and_local_overrides(
    tmp_path: Path,
) -> None:
    (tmp_path / "config").write_text(
        "[core]\n    analytics = false\n['remote \"s3\"']\n    url = s3://b/p\n"
        "[cache]\n    dir = ../../shared-cache\n"
    )
    assert cache_dir(tmp_path) == tmp_path.parent.parent / "shared-cache"
    (tmp_path / "config.local").write_text("[cache]\n    dir = /abs/cache\n")
    assert cache_dir(tmp_path) == Path("/abs/cache")


def test_sections_are_kept_apart_and_bad_lines_are_named(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[core]\n  dir = nope\n[cache]\n  type = copy\n")
    assert read_section(config, "cache") == {"type": "copy"}
    config.write_text("[cache]\n  what is this\n")
    with pytest.raises(ConfigError, match=r"config:2: expected `key = value`"):
        read_section(config, "cache")
