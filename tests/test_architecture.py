"""The shape of src/mtkd (issue 31): data flows one way and every piece reads in one sitting.

* No import cycle among the modules of src/mtkd, counting the imports inside functions (a late import
  hides a cycle from a reader; it does not remove it). The graph is built from the source (ast), not by
  importing anything:
  - every module is a node; a package's `__init__.py` is the node named after the package (`mtkd.analysis`);
  - `import a.b`, `from a.b import x` are edges to `a.b`; `from a import b` is an edge to `a.b` when `a/b.py`
    (or `a/b/`) exists, else to `a` (a name defined in `a/__init__.py`); relative imports are resolved;
  - the implicit import of the parent packages' `__init__`s (Python runs `mtkd/analysis/__init__.py` before
    `mtkd/analysis/load.py`) is NOT an edge. So a package's `__init__` may re-export its own submodules
    (`from .run import analyze`) without forming a cycle with them -- but a submodule that imports a name
    *from* its package's `__init__` (`from . import NAME`, NAME not a submodule) is an edge to the `__init__`,
    and with such a re-export that is a cycle: submodules import each other, never their `__init__`.
  - every import statement counts, at any depth (inside functions, `try`, `if TYPE_CHECKING`).
* No module over MAX_MODULE_LINES lines; no class over MAX_CLASS_LINES lines (decorators to last line).

On failure each test names what breaks the rule: the modules of every cycle (strongly connected
component of more than one module, or a module importing itself) with one import of each edge inside it,
the long modules and the long classes.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mtkd"
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 250


def modules() -> dict[str, Path]:
    """{dotted name: file} of every module of the package (a package's __init__ under the package's name)."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom, mods: dict[str, Path]) -> str:
    """The absolute module a `from ... import` reads from."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not _is_package(importer, mods):   # a module's package is its parent; a package's is itself
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(mods: dict[str, Path] | None = None) -> dict[str, dict[str, int]]:
    """{module: {module it imports: line of the first such import}}, within the package only."""
    mods = modules() if mods is None else mods
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}

    def add(src: str, dst: str, line: int) -> None:
        if dst in mods:
            graph[src].setdefault(dst, line)
            return
        while "." in dst:   # `import mtkd.x.y` of a name that is not a module: the nearest module above
            dst = dst.rsplit(".", 1)[0]
            if dst in mods:
                graph[src].setdefault(dst, line)
                return

    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                        add(name, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, mods)
                if base != PACKAGE and not base.startswith(PACKAGE + "."):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    add(name, sub if sub in mods else base, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (and modules importing themselves), sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v: str) -> None:   # Tarjan, iterative enough for a package of ~100 modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def describe_cycle(comp: list[str], graph: dict[str, dict[str, int]], mods: dict[str, Path]) -> str:
    inside = set(comp)
    edges = [f"    {a} -> {b} ({mods[a].relative_to(_root(mods[a]))}:{line})"
             for a in comp for b, line in sorted(graph[a].items()) if b in inside]
    return f"  cycle of {len(comp)} modules: {', '.join(comp)}\n" + "\n".join(edges)


def _root(path: Path) -> Path:
    """The folder holding the package (for short paths in messages)."""
    parts = path.parts
    return Path(*parts[:len(parts) - 1 - parts[::-1].index(PACKAGE)])


def long_modules(mods: dict[str, Path] | None = None) -> list[str]:
    mods = modules() if mods is None else mods
    out = []
    for name, path in mods.items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            out.append(f"  {path.relative_to(_root(path))}: {n} lines (max {MAX_MODULE_LINES})")
    return out


def long_classes(mods: dict[str, Path] | None = None) -> list[str]:
    mods = modules() if mods is None else mods
    out = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > MAX_CLASS_LINES:
                    out.append(f"  {path.relative_to(_root(path))}:{node.lineno} class {node.name}: {n} lines "
                               f"(max {MAX_CLASS_LINES})")
    return out


def test_no_import_cycle():
    mods = modules()
    graph = import_graph(mods)
    found = cycles(graph)
    assert not found, "import cycles in src/mtkd (function-level imports counted):\n" + "\n".join(
        describe_cycle(c, graph, mods) for c in found)


def test_no_module_over_the_limit():
    found = long_modules()
    assert not found, "modules too long to read in one sitting:\n" + "\n".join(found)


def test_no_class_over_the_limit():
    found = long_classes()
    assert not found, "classes too long to read in one sitting:\n" + "\n".join(found)


def top_level_names(path: Path) -> set[str]:
    """The names a module defines at its top level (functions, classes, assignments, imports, `if` blocks)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.col_offset == 0:
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.col_offset == 0:
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                out |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset == 0:
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def test_every_import_of_the_package_resolves():
    """`from .x import y` names a module that exists and a name it defines (or a submodule): a module moved
    into a package keeps no relative import that now points nowhere (a late one would fail only when run)."""
    mods = modules()
    names = {m: top_level_names(p) for m, p in mods.items()}
    bad = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _resolve(name, node, mods)
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            where = f"{path.relative_to(_root(path))}:{node.lineno}"
            if base not in mods:
                bad.append(f"  {where}: no module {base}")
                continue
            bad += [f"  {where}: {base} has no {a.name}" for a in node.names
                    if f"{base}.{a.name}" not in mods and a.name not in names[base] and a.name != "*"]
    assert not bad, "imports that point nowhere:\n" + "\n".join(bad)


def test_the_registries_name_what_is_implemented():
    """registry.py (read by the config without importing torch) and the modules implementing its names agree."""
    from mtkd import fusion, registry, runtime, sparsity
    assert tuple(fusion.STRATEGIES) == registry.STRATEGIES
    assert registry.LEARNABLE <= set(registry.STRATEGIES) and set(registry.OPTIONS) <= set(registry.STRATEGIES)
    assert all(isinstance(fusion.STRATEGIES[s], type) for s in registry.LEARNABLE)   # the gates are nn.Modules
    for p in registry.PRECISIONS:
        assert runtime.resolve_precision(p) == p
    for s in registry.SCHEDULES:   # each schedule reaches the target by the end
        assert sparsity.target_at(100, 100, 0.5, s, 0.0, 0.75) == 0.5
    assert set(runtime.TRACKER_MODULES) | {"none"} == set(registry.TRACKERS)


# ---------------------------------------------------------------- the checker itself, on a made-up package
def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    out = {}
    for path in sorted(tmp_path.rglob("*.py")):
        parts = list(path.relative_to(tmp_path).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    mods = _package(tmp_path, {
        "mtkd/__init__.py": "",
        "mtkd/a.py": "from .b import f\n",
        "mtkd/b.py": "def f():\n    from mtkd import c\n",
        "mtkd/c.py": "def g():\n    from . import a\n",
        "mtkd/d.py": "from .a import f\n",
    })
    graph = import_graph(mods)
    assert graph["mtkd.b"] == {"mtkd.c": 2} and graph["mtkd.c"] == {"mtkd.a": 2}
    assert cycles(graph) == [["mtkd.a", "mtkd.b", "mtkd.c"]]


def test_the_checker_resolves_packages_as_the_docstring_says(tmp_path):
    mods = _package(tmp_path, {
        "mtkd/__init__.py": "",
        "mtkd/p/__init__.py": "from .run import go\nNAME = 1\n",
        "mtkd/p/run.py": "from . import load\nfrom .load import x\ndef go():\n    from .. import q\n",
        "mtkd/p/load.py": "import mtkd.q\nx = 1\n",
        "mtkd/q.py": "from mtkd.p.load import x\n",
    })
    graph = import_graph(mods)
    assert graph["mtkd.p"] == {"mtkd.p.run": 1}                       # __init__ re-exporting: no cycle
    assert graph["mtkd.p.run"] == {"mtkd.p.load": 1, "mtkd.q": 4}
    assert cycles(graph) == [["mtkd.p.load", "mtkd.q"]]
    mods = _package(tmp_path, {"mtkd/p/load.py": "from . import NAME\n", "mtkd/q.py": ""})
    assert cycles(import_graph(mods)) == [["mtkd.p", "mtkd.p.load", "mtkd.p.run"]]   # a name from the __init__


def test_the_checker_measures_classes_from_their_decorators(tmp_path):
    def body(n):   # a decorated class of 2 + n lines
        return "import dataclasses\n@dataclasses.dataclass\nclass A:\n" + "".join(f"    x{i} = {i}\n" for i in range(n))
    mods = _package(tmp_path, {"mtkd/__init__.py": "", "mtkd/a.py": body(MAX_CLASS_LINES - 2)})
    assert long_classes(mods) == []
    (tmp_path / "mtkd/a.py").write_text(body(MAX_CLASS_LINES - 1))
    assert long_classes(mods) == [f"  mtkd/a.py:3 class A: {MAX_CLASS_LINES + 1} lines (max {MAX_CLASS_LINES})"]
