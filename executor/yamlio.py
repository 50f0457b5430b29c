"""The project's one YAML library, configured the way DVC configures it.

DVC reads params and dvc.yaml with ruamel's YAML 1.2 safe loader and writes dvc.lock and
run-cache entries with ruamel's round-trip dumper (block style, width 80, no indented
sequence dashes). PyYAML differs on both sides.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from executor.errors import PipelineError


def _safe() -> YAML:
    return YAML(typ="safe", pure=True)


def _roundtrip() -> YAML:
    yaml = YAML()
    yaml.default_flow_style = False
    return yaml


def yaml_error(exc: YAMLError, where: str) -> PipelineError:
    """A one-line PipelineError naming the file and, where known, the line."""
    line = None
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        line = exc.problem_mark.line + 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return PipelineError(f"invalid YAML: {problem}", path=where, line=line)


def load_text(text: str, where: str) -> Any:
    """Parse YAML 1.2 text into plain Python values, as DVC does."""
    try:
        return _safe().load(text)
    except YAMLError as exc:
        raise yaml_error(exc, where) from None


def read_text(path: Path, where: str | None = None) -> str:
    """A YAML file's text; PipelineError naming `where` if it is not UTF-8 (FileNotFoundError
    passes through)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})",
            path=where or str(path),
        ) from None


def load_file(path: Path, where: str | None = None) -> Any:
    """Parse a YAML file into plain Python values; errors name `where` (default: the path)."""
    return load_text(read_text(path, where), where or str(path))


def load_roundtrip(text: str, where: str) -> Any:
    """Parse YAML keeping layout and order, for rewriting a file in place."""
    try:
        return _roundtrip().load(text)
    except YAMLError as exc:
        raise yaml_error(exc, where) from None


def dump(data: Any) -> str:
    """Serialise with DVC's round-trip dumper settings (byte-identical to DVC's files)."""
    buffer = io.StringIO()
    _roundtrip().dump(data, buffer)
    return buffer.getvalue()
