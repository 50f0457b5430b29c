"""The shape of the code, as the structure issue asks it to stay: small modules, small classes,
small functions, no import cycles, `executor` never importing the worker or Docker, and a
docs/architecture.md that names what exists."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("executor", "worker")
MAX_MODULE_LINES = 300
MAX_CLASS_METHODS = 20
MAX_FUNCTION_LINES = 60
WHOLE_MARK = "reads better whole"


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: list[str]
    imports: set[str] = field(default_factory=set)  # every import, wherever it stands
    top_imports: set[str] = field(default_factory=set)  # those run when the module loads


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if module.path.name != "__init__.py":
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(module: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The project's modules an import statement loads (a `from pkg import mod` loads mod)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = _resolve(module, node)
    submodules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    # `from pkg import mod` loads mod; pkg itself only if a name is taken from it
    return submodules if len(submodules) == len(node.names) else {base} | submodules


def _top_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body)


def _modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            module = Module(_module_name(path), path, ast.parse(text), text.splitlines())
            modules[module.name] = module
    known = set(modules)
    for module in modules.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                module.imports |= _imported(module, node, known)
        for node in _top_level(module.tree.body):
            module.top_imports |= _imported(module, node, known)
    return modules


MODULES = _modules()


def _where(module: Module, node: ast.AST | None = None) -> str:
    line = f":{node.lineno}" if node is not None and hasattr(node, "lineno") else ""
    return f"{module.path.relative_to(ROOT)}{line}"


def test_no_module_is_over_300_lines() -> None:
    long = [
        f"{_where(m)} has {len(m.lines)} lines"
        for m in MODULES.values()
        if len(m.lines) > MAX_MODULE_LINES
    ]
    assert not long, long


def test_no_class_has_over_20_methods() -> None:
    big = []
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                methods = [
                    n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
                if len(methods) > MAX_CLASS_METHODS:
                    big.append(f"{_where(module, node)} {node.name}: {len(methods)} methods")
    assert not big, big


def test_no_function_is_over_60_lines_unless_a_comment_says_why() -> None:
    long = []
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            above = "\n".join(module.lines[max(0, first - 4) : first - 1])
            if length > MAX_FUNCTION_LINES and WHOLE_MARK not in above:
                long.append(f"{_where(module, node)} {node.name}: {length} lines")
    assert not long, long


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_of(name: str) -> str:
    module = MODULES[name]
    return name if module.path.name == "__init__.py" else name.rpartition(".")[0]


def test_no_module_imports_another_that_imports_it_back() -> None:
    """A package's own modules importing names from its `__init__` count too; Python loading a
    module's parent packages first does not."""
    graph = {
        name: {
            other
            for other in m.top_imports
            if other in MODULES and other != name and not name.startswith(other + ".")
        }
        for name, m in MODULES.items()
    }
    assert not _cycles(graph)


def test_no_package_depends_on_a_package_that_depends_on_it() -> None:
    """Counted over every import, lazy ones included: a lazy import that closes a loop between
    two folders is a cycle in the design even when Python never sees it."""
    graph: dict[str, set[str]] = {}
    for name, module in MODULES.items():
        source = _package_of(name)
        for other in module.imports:
            if other not in MODULES:
                continue
            target = _package_of(other)
            # a package's __init__ gathering its own modules is no dependency
            if target != source and not target.startswith(source + "."):
                graph.setdefault(source, set()).add(target)
    assert not _cycles(graph)


def test_executor_never_imports_the_worker_or_docker() -> None:
    wrong = [
        f"{_where(m)} imports {other}"
        for name, m in MODULES.items()
        if name.split(".")[0] == "executor"
        for other in m.imports
        if other.split(".")[0] in ("worker", "docker")
    ]
    assert not wrong, wrong


def test_only_the_sandbox_talks_to_docker() -> None:
    wrong = [
        f"{_where(m)} imports {other}"
        for name, m in MODULES.items()
        if not name.startswith("worker.sandbox")
        for other in m.imports
        if other.split(".")[0] == "docker"
    ]
    assert not wrong, wrong


ARCHITECTURE = ROOT / "docs" / "architecture.md"
_PATH_IN_DOC = re.compile(r"`((?:executor|worker|[a-z_]+)(?:/[A-Za-z_][\w]*)*(?:/|\.py))`")


def test_every_module_the_architecture_page_names_exists() -> None:
    missing = []
    for match in _PATH_IN_DOC.finditer(ARCHITECTURE.read_text()):
        named = match.group(1)
        if "/" not in named or (named.endswith("/") and named.split("/")[0] not in PACKAGES):
            continue  # a bare `name.py` (the sentence says where), or a folder of a store
        candidates = [ROOT / named, *(ROOT / p / named for p in PACKAGES)]
        if not any(c.exists() for c in candidates):
            missing.append(named)
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_package_has_a_line_on_the_architecture_page() -> None:
    text = ARCHITECTURE.read_text()
    packages = sorted(
        str(m.path.parent.relative_to(ROOT)) + "/"
        for m in MODULES.values()
        if m.path.name == "__init__.py"
    )
    unnamed = [p for p in packages if f"`{p}`" not in text]
    assert not unnamed, f"docs/architecture.md has no line for the packages {unnamed}"


def test_the_cycle_finder_sees_a_loop_and_nothing_else() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "d": {"a"}}) == []
