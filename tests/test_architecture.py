"""The package's structure, read from the source with ``ast`` (nothing is imported): no
import cycle between modules, no use of another module's private names, no module over 500
lines but the known ones, type hints on every public function. Every ``import`` statement counts, also those inside functions (an
import deferred to call time still ties the two modules together).

``python tests/test_architecture.py`` prints the cycles and the private names used across
modules.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path

PACKAGE = "prunebench"
ROOT = Path(importlib.util.find_spec(PACKAGE).submodule_search_locations[0]).resolve()

# Known cycles, each as a set of modules, with the reason it is still there. A cycle found
# passes only inside one of these sets (a cycle that grows to a new module fails); an entry
# no cycle needs any more fails too, so that it is removed. Package ``__init__`` modules are
# nodes like any other: none of the cycles below needs an ``__init__`` re-export to close.
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    # none left: the last (runtime <-> zoo <-> usermodel) was broken by moving the user-model
    # registry below both (zoo/user.py; usermodel installs the builder there)
}

#: Modules over ``MAX_LINES`` lines today, each with what would split it. A module not
#: listed must stay within the limit; a listed module that falls within it fails until it is
#: removed here. (Their growth is not capped: several are edited every day, and a cap by line
#: count would fail each of those edits rather than the next split.)
MAX_LINES = 500
LONG_MODULES: dict[str, str] = {
    "prunebench.kernels._simd": "LLVM-IR builders for the AVX-512 kernels, one per intrinsic",
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package in folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    """The parsed file (each test walks the same ~150 files: parsed once per session)."""
    return ast.parse(path.read_text(), str(path))


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
        for node in ast.walk(_tree(path)):
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


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_module_owner(module: str) -> str | None:
    """For a module path with a private part (``prunebench.kernels._checks``), the package
    that owns it (``prunebench.kernels``): only modules inside that package may import it.
    None when no part of the path is private."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            return ".".join(parts[:i])
    return None


#: an import written inside a string (a child process's ``python -c`` program)
_CODE_IMPORT = re.compile(rf"\bfrom\s+({PACKAGE}(?:\.\w+)*)\s+import\s+(\w+(?:\s*,\s*\w+)*)")


def private_uses(files: dict[str, Path]) -> list[str]:
    """Every use of another module's private name, one ``importer:line: what`` each:

    - ``from X import _name`` and ``import X._name`` / ``from X._mod import y`` where
      ``X._mod`` is a private module of another package;
    - ``X._name`` where ``X`` is a name bound to a module of the package (``from . import
      data as D`` then ``D._std``);
    - the same imports written in a string that is run as code (``python -c "from
      prunebench.x import _y"``).

    Allowed: dunder names (``__version__``), a module's use of its own names, and a private
    module imported by a module of the same package (``from . import _checks as chk`` inside
    ``kernels/``: the underscore says "not for other packages", and the package is its one
    user)."""
    found = []

    def module_ok(importer: str, target: str) -> bool:
        owner = _private_module_owner(target)
        return owner is None or importer == owner or importer.startswith(owner + ".")

    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = _tree(path)
        bound: dict[str, str] = {}   # local name -> the package module it names
        docstrings = {id(n.value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                        ast.AsyncFunctionDef))
                      for n in n.body[:1] if isinstance(n, ast.Expr)}

        def use(node: ast.AST, what: str) -> None:
            found.append((module, node.lineno, what))

        def check_from(node: ast.AST, source: str, names: list[str],
                       child: bool = False) -> None:
            """``child``: the import runs in another program (a string given to ``python
            -c``), so even the module's own private names are another module's there."""
            if not module_ok(module, source):
                use(node, f"imports from private module {source}")
            for name in names:
                sub = f"{source}.{name}"
                if sub in files:
                    if not module_ok(module, sub):
                        use(node, f"imports private module {sub}")
                elif _is_private(name) and (source != module or child):
                    use(node, f"imports {source}.{name}")

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != PACKAGE:
                        continue
                    if not module_ok(module, alias.name):
                        use(node, f"imports private module {alias.name}")
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[PACKAGE] = PACKAGE
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node)
                if source.split(".")[0] != PACKAGE:
                    continue
                check_from(node, source, [a.name for a in node.names])
                for alias in node.names:
                    if f"{source}.{alias.name}" in files:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings):
                for m in _CODE_IMPORT.finditer(node.value):
                    check_from(node, m.group(1), re.split(r"\s*,\s*", m.group(2)), child=True)

        def target(node: ast.AST) -> str | None:
            """The package module an expression names (``D``, ``prunebench.report.data``)."""
            if isinstance(node, ast.Name):
                return bound.get(node.id)
            if isinstance(node, ast.Attribute):
                base = target(node.value)
                if base and f"{base}.{node.attr}" in files:
                    return f"{base}.{node.attr}"
            return None

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                base = target(node.value)
                if base is None or base == module:
                    continue
                sub = f"{base}.{node.attr}"
                if sub in files:
                    if not module_ok(module, sub):
                        use(node, f"uses private module {sub}")
                else:
                    use(node, f"uses {sub}")
    return [f"{m}:{line}: {what}" for m, line, what in sorted(found)]


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


def test_private_name_finder_on_a_made_up_package(tmp_path):
    """Each way of reaching another module's private name is found once, at its line; the
    allowed uses (dunder names, own names, docstrings, a private module imported by its own
    package) are not."""
    pkg = tmp_path / PACKAGE
    (pkg / "kern").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "b.py").write_text("__version__ = '1'\n_hidden = 1\ndef _f(): pass\n")
    (pkg / "kern" / "__init__.py").write_text("from ._chk import helper\n")
    (pkg / "kern" / "_chk.py").write_text("def helper(): pass\n_inner = 2\n")
    (pkg / "kern" / "k.py").write_text(
        "from . import _chk as chk\n"                     # line 1: allowed (own package)
        "from ._chk import helper\n"                      # 2: allowed
        "chk.helper()\n"                                  # 3: allowed
        "x = chk._inner\n")                               # 4: _chk's private name
    (pkg / "a.py").write_text(
        '"""Docstring: from prunebench.b import _doc is not code."""\n'   # 1: allowed
        "from __future__ import annotations\n"            # 2: allowed
        "from .b import __version__, _hidden\n"           # 3: _hidden
        "from . import b as B\n"                          # 4: allowed
        "y = B._f()\n"                                    # 5: B._f
        "from .kern import _chk\n"                        # 6: another package's private module
        "import prunebench.kern._chk\n"                   # 7: the same, by dotted name
        "def _own(): return _own\n"                       # 8: allowed (own name)
        "CODE = 'import sys; from prunebench.a import _own; _own()'\n")  # 9: a child's import
    assert private_uses(module_files(pkg)) == [
        "prunebench.a:3: imports prunebench.b._hidden",
        "prunebench.a:5: uses prunebench.b._f",
        "prunebench.a:6: imports private module prunebench.kern._chk",
        "prunebench.a:7: imports private module prunebench.kern._chk",
        "prunebench.a:9: imports prunebench.a._own",
        "prunebench.kern.k:4: uses prunebench.kern._chk._inner",
    ]


def test_no_module_uses_another_modules_private_names():
    """Issue 19: a helper another module needs is public (or moves to the module that owns
    it). ``from . import _checks as chk`` inside ``kernels/`` stays: a private module used by
    its own package."""
    found = private_uses(module_files())
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_no_module_over_500_lines_but_the_known_ones():
    lines = {m: len(p.read_text().splitlines()) for m, p in module_files().items()}
    over = {m: n for m, n in lines.items() if n > MAX_LINES and m not in LONG_MODULES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
    stale = {m: lines.get(m) for m in LONG_MODULES if lines.get(m, 0) <= MAX_LINES}
    assert not stale, f"modules now within {MAX_LINES} lines (remove them from LONG_MODULES): {stale}"


def test_value_encodings_and_index_dtypes_have_one_home():
    """``prunebench.dtypes`` is the only module that writes out the value encodings or a dtype
    list; the formats, the kernels, the runtime and the CLI import theirs (the kernels' index
    dtypes are the formats' plus int64, said there). Read from the source: importing the
    kernels would cost seconds."""
    files = module_files()
    home = {t.id: node.value for node in _tree(files["prunebench.dtypes"]).body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    encodings = set(ast.literal_eval(home["VALUE_ENCODINGS"]))
    assert encodings == {"fp32", "fp16", "int8"}
    written = []
    for module, path in files.items():
        if module == "prunebench.dtypes":
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
                    isinstance(e, ast.Constant) for e in node.elts) \
                    and {e.value for e in node.elts} == encodings:
                written.append(f"{module}:{node.lineno}")
            # a dtype list written out (kernels._checks derives its numpy dtypes: allowed)
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Tuple, ast.List,
                                                                         ast.Set, ast.Dict)):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(n.endswith(("INDEX_DTYPES", "POINTER_DTYPES", "VALUE_DTYPES"))
                       or n == "VALUE_ENCODINGS" for n in names):
                    written.append(f"{module}:{node.lineno} ({', '.join(names)})")
    assert not written, f"value encodings or dtype lists written outside dtypes.py: {written}"


def _public_functions(body: list[ast.stmt], prefix: str = "", in_class: bool = False):
    """(qualified name, node, is a method) of each public function defined in ``body`` and of
    each method of its public classes, nested classes included; statement blocks (``if``,
    ``try``, ``with``) are looked into, function bodies are not (a local function is no API)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_"):
                yield prefix + node.name, node, in_class
        elif isinstance(node, ast.ClassDef):
            if not node.name.startswith("_"):
                yield from _public_functions(node.body, f"{prefix}{node.name}.", True)
        else:   # if / try / with / for: their blocks
            blocks = [getattr(node, f, []) for f in ("body", "orelse", "finalbody")]
            blocks += [h.body for h in getattr(node, "handlers", [])]
            for block in blocks:
                yield from _public_functions(block, prefix, in_class)


def _missing_hints(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    """The parameters of ``node`` without an annotation (a method's first one, self or cls,
    excepted unless it is a staticmethod), plus ``return`` when the return has none."""
    args = node.args
    positional = args.posonlyargs + args.args
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                 for d in node.decorator_list)
    if method and not static and positional:
        positional = positional[1:]
    params = positional + ([args.vararg] if args.vararg else []) + args.kwonlyargs \
        + ([args.kwarg] if args.kwarg else [])
    missing = [a.arg for a in params if a.annotation is None]
    if node.returns is None:
        missing.append("return")
    return missing


def unannotated(files: dict[str, Path]) -> list[str]:
    """``module:line: function (what lacks a hint)`` for every public function or method of
    a module that is not private (no part of its dotted name starts with ``_``) with a
    parameter (but self/cls) or its return not annotated."""
    found = []
    for module, path in files.items():
        if _private_module_owner(module) is not None:
            continue
        for name, node, method in _public_functions(_tree(path).body):
            missing = _missing_hints(node, method)
            if missing:
                found.append(f"{module}:{node.lineno}: {name} ({', '.join(missing)})")
    return found


def test_hint_finder_on_a_made_up_package(tmp_path):
    """Every kind of missing hint is found once, at its line; what needs none (self, cls,
    private names, private classes and modules, local functions) is not."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def main(argv: list[str]) -> int:\n    return 0\n")
    (pkg / "_private.py").write_text("def helper(x): pass\n")
    (pkg / "a.py").write_text(
        "def ok(x: int, *a: int, k: str = '', **kw: float) -> None:\n"   # 1: all hinted
        "    def local(y): pass\n"                                      # 2: local: no API
        "def no_return(x: int): pass\n"                                  # 3: return
        "def bare(x, y: int = 1, *rest, key=None, **kw) -> None: pass\n"  # 4: x, rest, key, kw
        "def _private(x): pass\n"                                        # 5: private
        "class C:\n"                                                     # 6
        "    def m(self, x) -> int: return x\n"                          # 7: x
        "    @classmethod\n"                                             # 8
        "    def make(cls) -> 'C': return cls()\n"                       # 9: cls needs none
        "    @staticmethod\n"                                            # 10
        "    def s(x) -> None: pass\n"                                   # 11: x (no self)
        "    def __init__(self, x): pass\n"                              # 12: dunder
        "    class Inner:\n"                                             # 13
        "        def f(self): pass\n"                                    # 14: return
        "class _Hidden:\n"                                               # 15
        "    def f(self, x): pass\n"                                     # 16: private class
        "try:\n"                                                         # 17
        "    def maybe(x: int): pass\n"                                  # 18: return
        "except ImportError:\n"                                          # 19
        "    def maybe(x): pass\n")                                      # 20: x, return
    assert unannotated(module_files(pkg)) == [
        "prunebench.a:3: no_return (return)",
        "prunebench.a:4: bare (x, rest, key, kw)",
        "prunebench.a:7: C.m (x)",
        "prunebench.a:11: C.s (x)",
        "prunebench.a:14: C.Inner.f (return)",
        "prunebench.a:18: maybe (return)",
        "prunebench.a:20: maybe (x, return)",
    ]


def test_every_public_function_has_type_hints():
    """Issue 19 item 5: every parameter (but self/cls) and the return of every public
    function and method carries a type hint, so that ``mypy src`` checks its body and its
    callers."""
    found = unannotated(module_files())
    assert not found, (f"{len(found)} public functions without full type hints:\n"
                       + "\n".join(found))


# ---------------------------------------------------------------- format names (issue 19)

#: packages that may compare a value with a storage format's name: the formats themselves and
#: the engines (each engine says which formats it hosts)
FORMAT_NAME_OWNERS = ("prunebench.formats", "prunebench.engines")
#: "dense" means unencoded, not a storage format: comparing with it is fine
NOT_A_STORAGE_FORMAT = {"dense"}
#: a format name that is also a pruning granularity ("nm") may be compared with these operands,
#: which hold a granularity or a method name, never a format
GRANULARITY_OPERANDS = {"kind", "pattern", "method", "spec.granularity", "method.name",
                        "self.name"}
GRANULARITY_NAMES = {"unstructured", "block", "nm", "channel"}


def registered_format_names(files: dict[str, Path]) -> set[str]:
    """The names in ``@FORMATS.register("name")`` decorators of ``formats/``, read from the
    source (the test must not depend on importing the package)."""
    names = set()
    for module, path in files.items():
        if not module.startswith("prunebench.formats"):
            continue
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "register" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "FORMATS" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def _strings(node: ast.AST) -> list[str]:
    """The string constants an operand is or holds (a tuple, list or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [v for e in node.elts for v in _strings(e)]
    return []


def format_name_comparisons(files: dict[str, Path], names: set[str]) -> list[str]:
    """Every ``==``, ``!=``, ``in``, ``not in`` or ``case`` against a storage format's name
    outside :data:`FORMAT_NAME_OWNERS`, one ``module:line: source`` each. A name that is also
    a pruning granularity is allowed against :data:`GRANULARITY_OPERANDS`."""
    names = set(names) - NOT_A_STORAGE_FORMAT
    found = []
    for module, path in files.items():
        if module.startswith(FORMAT_NAME_OWNERS):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for op, (a, b) in zip(node.ops, zip(operands, operands[1:])):
                    if not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                        continue
                    for const, other in ((a, b), (b, a)):
                        hit = set(_strings(const)) & names
                        if hit <= GRANULARITY_NAMES and ast.unparse(other) in GRANULARITY_OPERANDS:
                            continue
                        if hit:
                            found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.MatchValue) and set(_strings(node.value)) & names:
                found.append(f"{module}:{node.lineno}: case {ast.unparse(node.value)}")
    return sorted(set(found))


def test_format_name_finder_on_a_made_up_package(tmp_path):
    """Each way of asking a format's name is found once, at its line; "dense", a granularity
    name against a granularity operand, and the formats package itself are not."""
    pkg = tmp_path / PACKAGE
    (pkg / "formats").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "formats" / "__init__.py").write_text(
        "@FORMATS.register('csr')\nclass C: pass\n"
        "@FORMATS.register('nm')\nclass N: pass\n"
        "ok = fmt == 'csr'\n")                           # the owner: allowed
    (pkg / "a.py").write_text(
        "if fmt == 'csr': pass\n"                         # 1
        "x = fmt in ('bsr', 'csr')\n"                     # 2
        "y = 'csr' != f.name\n"                           # 3
        "z = fmt == 'dense'\n"                            # allowed
        "w = spec.granularity == 'nm'\n"                  # allowed: a granularity
        "v = want == 'nm'\n"                              # 6
        "match fmt:\n    case 'csr':\n        pass\n")   # 8
    files = module_files(pkg)
    names = registered_format_names(files)
    assert names == {"csr", "nm"}
    assert format_name_comparisons(files, names | {"bsr", "dense"}) == [
        "prunebench.a:1: fmt == 'csr'",
        "prunebench.a:2: fmt in ('bsr', 'csr')",
        "prunebench.a:3: 'csr' != f.name",
        "prunebench.a:6: want == 'nm'",
        "prunebench.a:8: case 'csr'",
    ]


def test_no_format_name_comparisons_outside_formats_and_engines():
    """Issue 19: what the code asks about a storage format it asks the format's class (its
    kernel arrays, options, fit check, byte model) or the kernels' registry, never its name;
    a new format then touches its own module only."""
    files = module_files()
    names = registered_format_names(files)
    assert {"csr", "bsr", "nm", "ell", "rcsr", "delta8", "bitmap", "lowrank"} <= names
    found = format_name_comparisons(files, names)
    assert not found, "comparisons with a format's name:\n" + "\n".join(found)

if __name__ == "__main__":
    files = module_files()
    for c in cycles(graph(files)):
        print("cycle:", " <-> ".join(c))
    uses = private_uses(files)
    print(f"{len(uses)} uses of another module's private names")
    for line in uses:
        print(" ", line)
    bare = unannotated(files)
    print(f"{len(bare)} public functions without full type hints")
    for line in bare:
        print(" ", line)
