"""Import rules that keep the code's rooms apart, read from the source (nothing is imported).

1. Product code never imports the test bench (``catalogflow.testbench``). The one exception
   is ``catalogflow.cli`` registering the bench's commands (``demo``, ``simulator``).
2. No import circle among ``catalogflow`` modules. A function-local import counts: it only
   postpones the circle to the first call, as ``cli`` <-> ``demo`` once did. The exceptions
   are the lazy loads in ``LAZY_EDGES``, each with its reason. Imports under
   ``if TYPE_CHECKING:`` never run and do not count.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = "catalogflow.testbench"

#: (importer, imported) pairs product code may use to reach the test bench.
BENCH_EXCEPTIONS = frozenset({("catalogflow.cli", "catalogflow.testbench.commands")})

#: Function-local imports that close a circle on purpose, and why that is safe.
LAZY_EDGES = {
    ("catalogflow.streams.actions", "catalogflow.streams.actions.builtin"): (
        "load_registry loads the built-in action types when a registry is asked for; "
        "they import the package to implement its protocol"
    ),
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    runs: bool  # False under ``if TYPE_CHECKING:``


def module_files(root: Path) -> dict[str, Path]:
    """Every ``catalogflow`` module, named as installed (pyproject's ``package-dir``)."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs: Mapping[str, str] = setuptools["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in package_dirs.items():
        for path in sorted((root / folder).glob("*.py")):
            name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    """The ``catalogflow`` modules ``name`` imports, at module level or in a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def target(base: str, member: str) -> str:
        return f"{base}.{member}" if f"{base}.{member}" in known else base

    def visit(node: ast.AST, runs: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            child_runs = runs and not _is_type_checking(child)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, child_runs)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in child.names:
                    yield Import(name, target(base, alias.name), child.lineno, child_runs)
            elif isinstance(child, ast.Constant) and str(child.value).startswith(BENCH):
                # importlib.import_module("catalogflow.testbench...") is an import too
                yield Import(name, str(child.value), child.lineno, child_runs)
            yield from visit(child, child_runs)

    for found in visit(ast.parse(path.read_text(), str(path)), True):
        if found.imported == "catalogflow" or found.imported.startswith("catalogflow."):
            yield found


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def bench_imports(modules: Mapping[str, Path]) -> list[str]:
    """``file:line importer -> imported`` for each product import of the test bench."""
    found = []
    for name, path in modules.items():
        if name == BENCH or name.startswith(f"{BENCH}."):
            continue
        for imp in imports_of(name, path, modules):
            bench = imp.imported == BENCH or imp.imported.startswith(f"{BENCH}.")
            if bench and (imp.importer, imp.imported) not in BENCH_EXCEPTIONS:
                found.append(f"{path}:{imp.line} {imp.importer} -> {imp.imported}")
    return found


def circles(modules: Mapping[str, Path]) -> list[list[str]]:
    """The import circles (strongly connected modules), lazy edges of LAZY_EDGES left out."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imp in imports_of(name, path, modules):
            lazy = (imp.importer, imp.imported) in LAZY_EDGES
            if imp.runs and imp.imported in graph and not lazy:
                graph[name].add(imp.imported)
    return [sorted(group) for group in _strongly_connected(graph) if _is_circle(group, graph)]


def _is_circle(group: list[str], graph: Mapping[str, set[str]]) -> bool:
    return len(group) > 1 or group[0] in graph[group[0]]


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative, so a deep import chain needs no deep recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(group)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_product_code_never_imports_the_test_bench() -> None:
    assert bench_imports(module_files(ROOT)) == []


def test_no_import_circle_among_catalogflow_modules() -> None:
    assert circles(module_files(ROOT)) == []


def test_the_named_exceptions_still_exist() -> None:
    modules = module_files(ROOT)
    edges = {
        (imp.importer, imp.imported)
        for name, path in modules.items()
        for imp in imports_of(name, path, modules)
    }
    assert BENCH_EXCEPTIONS | set(LAZY_EDGES) <= edges


def test_the_checks_see_a_hidden_circle_and_a_bench_import(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"catalogflow" = "src"\n"catalogflow.testbench" = "bench"\n'
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "bench").mkdir()
    (tmp_path / "src" / "cli.py").write_text(
        "def parser() -> None:\n    from catalogflow.demo import add\n"
    )
    (tmp_path / "src" / "demo.py").write_text(
        "from catalogflow import cli\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from catalogflow import later\n"
    )
    (tmp_path / "src" / "later.py").write_text("from . import demo\n")
    (tmp_path / "src" / "sneaky.py").write_text(
        'import importlib\nimportlib.import_module("catalogflow.testbench.sim")\n'
    )
    (tmp_path / "bench" / "sim.py").write_text("from catalogflow import cli\n")
    modules = module_files(tmp_path)
    assert circles(modules) == [["catalogflow.cli", "catalogflow.demo"]]
    assert [line.split(" ", 1)[1] for line in bench_imports(modules)] == [
        "catalogflow.sneaky -> catalogflow.testbench.sim"
    ]
