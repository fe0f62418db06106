"""The package's import graph, read from the source with ``ast`` (nothing is imported): no
import cycle between modules. Every ``import`` statement counts, also those inside functions
(an import deferred to call time still ties the two modules together).

``python tests/test_architecture.py`` prints the cycles and the imports of another module's
private names (``from .x import _y``), the next thing issue 19 removes.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
from collections import Counter
from pathlib import Path

PACKAGE = "prunebench"
ROOT = Path(importlib.util.find_spec(PACKAGE).submodule_search_locations[0]).resolve()

# Known cycles, each as a set of modules, with the reason it is still there. A cycle found
# passes only inside one of these sets (a cycle that grows to a new module fails); an entry
# no cycle needs any more fails too, so that it is removed. Package ``__init__`` modules are
# nodes like any other: none of the cycles below needs an ``__init__`` re-export to close.
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    # Not part of the first slice of issue 19 (which broke study.runner <-> study.distributed).
    # Every edge here is a real import, most deferred into functions: runtime.compile imports
    # modelfile._nm_violation; modelfile and graphfile import each other; graphfile exports
    # through engines.onnx_engine, which imports runtime.compile.check_threads (runtime
    # reaching up into engines); zoo.models/zoo.tasks ask usermodel about user models, and
    # usermodel builds zoo specs. Breaking it means moving those helpers down (issue 19, items
    # 3-4), not an allow-list entry.
    frozenset({
        "prunebench.engines.onnx_engine", "prunebench.runtime", "prunebench.runtime.compile",
        "prunebench.runtime.graphfile", "prunebench.runtime.modelfile", "prunebench.usermodel",
        "prunebench.zoo", "prunebench.zoo.models", "prunebench.zoo.tasks",
    }): "runtime <-> engines <-> zoo <-> usermodel, to be broken by a later slice of issue 19",
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``node`` imports from (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(files: dict[str, Path]) -> list[tuple[str, str, str | None]]:
    """Every import inside the package as (importer, imported module, imported name or None);
    for ``from X import y`` with ``X.y`` a module the imported module is ``X.y``."""
    out = []
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        out.append((module, alias.name, None))
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node)
                if source.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in files:
                        out.append((module, sub, None))
                    else:
                        out.append((module, source, alias.name))
    return out


def graph(files: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in files}
    for importer, imported, _ in imports(files):
        if imported in files and imported != importer:
            edges[importer].add(imported)
    return edges


@functools.lru_cache(maxsize=None)
def package_graph() -> tuple[dict[str, Path], dict[str, set[str]]]:
    """(module files, import graph) of the package, parsed once for all the tests."""
    files = module_files()
    return files, graph(files)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_imports(files: dict[str, Path]) -> Counter:
    """(importer, source module, name) -> count, for names starting with one underscore that
    a module imports from another module (private submodules such as ``kernels._checks``
    imported by their own package are not counted: a module is not a name)."""
    return Counter((importer, source, name) for importer, source, name in imports(files)
                   if name and name.startswith("_") and not name.startswith("__")
                   and source != importer)


def test_the_graph_sees_the_package():
    files, edges = package_graph()
    assert "prunebench.study.runner" in files and "prunebench.cli" in files
    # a module-level relative import, a function-level one, and a package import resolved
    assert "prunebench.study.executor" in edges["prunebench.study.runner"]
    assert "prunebench.study.distributed" in edges["prunebench.study.runner"]  # in run_study
    assert "prunebench.study.stages" in edges["prunebench.study.executor"]  # from . import stages


def test_cycle_finder_on_a_known_graph():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(package_graph()[1])
    new = [c for c in found if not any(set(c) <= allowed for allowed in ALLOWED_CYCLES)]
    assert not new, "import cycles between modules:\n" + "\n".join(" <-> ".join(c)
                                                                    for c in new)
    stale = [sorted(a) for a in ALLOWED_CYCLES if not any(set(c) <= a for c in found)]
    assert not stale, f"allowed cycles that no longer exist (remove them): {stale}"


def test_study_runner_and_distributed_are_not_in_a_cycle():
    found = cycles(package_graph()[1])
    assert not [c for c in found if any(m.startswith("prunebench.study.") for m in c)]


if __name__ == "__main__":
    files = module_files()
    for c in cycles(graph(files)):
        print("cycle:", " <-> ".join(c))
    counts = private_imports(files)
    print(f"{sum(counts.values())} imports of private names across modules")
    for (importer, source, name), n in sorted(counts.items()):
        print(f"{n:3d}  {importer} <- {source}.{name}")
