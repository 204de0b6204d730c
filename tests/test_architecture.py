"""The rules of the house, read from the source (``ast``; nothing is imported): no import circle
among ``vmenergy`` modules, and the pure core imports nothing of the I/O shell.

Every import counts, wherever it stands: at module level, inside a function (a "lazy" import
that only hides a circle) or under ``if TYPE_CHECKING`` (the type checker follows it).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "vmenergy"
CORE = ("flexoffer", "wire", "aggregation", "planning", "market", "settlement", "protocol")
SHELL = ("agents", "runtime", "store", "devices", "cli")


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def _modules(package: Path) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _imports(package: Path = PACKAGE) -> list[Import]:
    """Every import of one of the package's modules by another. ``from package import name``
    points at the submodule when ``name`` is one, else at the package."""
    modules = _modules(package)
    found: dict[Import, None] = {}  # in order, once
    for name, (path, is_package) in sorted(modules.items()):
        here = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    found[Import(name, target, node.lineno)] = None
    return list(found)


def _circles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_reader_finds_circles_hidden_in_functions_and_type_checking_blocks(tmp_path):
    # the rules below are only as good as this reader: build a package with both kinds of hiding
    pkg = tmp_path / "vmenergy"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "core" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    (pkg / "core" / "c.py").write_text("import vmenergy.core.a\n")
    imports = _imports(pkg)
    assert {str(i) for i in imports} == {"vmenergy.core.a -> vmenergy.core.b (line 2)",
                                        "vmenergy.core.b -> vmenergy.core.a (line 3)",
                                        "vmenergy.core.c -> vmenergy.core.a (line 1)"}
    assert _circles(imports) == [["vmenergy.core.a", "vmenergy.core.b"]]


def test_no_import_circle_among_vmenergy_modules():
    imports = _imports()
    circles = _circles(imports)
    detail = [[str(i) for i in imports if i.source in c and i.target in c] for c in circles]
    assert not circles, f"import circles: {detail}"


def test_the_core_imports_nothing_of_the_shell():
    bad = [str(i) for i in _imports() if _area(i.source) in CORE and _area(i.target) in SHELL]
    assert not bad, f"the core reaches into the shell: {bad}"


def test_only_the_entry_point_imports_the_command_line():
    bad = [str(i) for i in _imports() if i.target == "vmenergy.cli" and i.source != "vmenergy.__main__"]
    assert not bad, f"the command line is a leaf: {bad}"
