"""The import graph of runtime/ and harness/, built from the source: no circles, no runtime -> harness.

Every ``import`` and ``from ... import`` statement counts, at module level *and* inside functions
and methods: a lazy import still makes one module depend on the other at run time, and a circle
through lazy imports is still a circle of responsibilities (the shim's cli <-> daemon <-> template
circle, and the harness's actions <-> checks <-> engines.systemd one, were both made of lazy
imports). Imports that never run are not counted: those under ``if TYPE_CHECKING:``. An import of
``a.b.c`` is an edge to the module ``a.b.c`` (for ``from a.b import c``: to ``a.b.c`` when that is
a module, else to ``a.b``). The packages above it (``a``, ``a.b``) are not edges: Python runs
their ``__init__`` first, but a package importing its own submodules (``harness.engines``) and
them importing each other is not a circle of responsibilities; what an ``__init__`` imports is
counted as that package's own edges. Relative imports are resolved against the importing
module's package. Only edges between modules of runtime/ and harness/ are
kept. Pure: reads files, runs as any user.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("runtime", "harness")


def _modules() -> dict[str, str]:
    """``{dotted name: path}`` of every .py file under the packages."""
    found = {}
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in filenames:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[:-3].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    found[".".join(rel)] = os.path.join(dirpath, name)
    return found


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _edges(modules: dict[str, str]) -> dict[str, dict[str, int]]:
    """``{importer: {imported: first line}}`` within *modules*."""
    graph: dict[str, dict[str, int]] = {}
    for mod, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        is_pkg = path.endswith("__init__.py")
        out = graph.setdefault(mod, {})
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin
                           for a in node.names]
            else:
                continue
            if _type_checking_only(node, parents):
                continue
            for target in targets:
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]  # `import a.b.c` of a name inside a.b
                if target in modules and target != mod:
                    out.setdefault(target, node.lineno)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one circle
    through all its modules' edges: the shortest cycle from its smallest module, then the rest."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # iterative Tarjan: the graph is deep enough to matter for recursion limits
        work = [(v, iter(sorted(graph.get(v, {}))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, {})))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(comps)


def _shortest_cycle(graph, comp: list[str]) -> list[str]:
    """The shortest import circle through ``comp[0]`` inside the component (breadth-first)."""
    start, members = comp[0], set(comp)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for w in sorted(graph.get(node, {})):
            if w == start:
                return paths[node] + [start]
            if w in members and w not in paths:
                paths[w] = paths[node] + [w]
                queue.append(w)
    return comp  # unreachable for a real component


def _describe(graph, modules, cycle: list[str]) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        rel = os.path.relpath(modules[a], ROOT)
        steps.append(f"    {a} -> {b}   ({rel}:{graph[a][b]})")
    return "\n".join(steps)


@pytest.fixture(scope="module")
def graph_and_modules():
    modules = _modules()
    return _edges(modules), modules


def test_the_graph_is_built_from_every_module(graph_and_modules):
    graph, modules = graph_and_modules
    assert {"runtime.shim.cli", "runtime.rfc3339", "harness.cli"} <= set(modules)
    # lazy, relative and dotted imports are all seen
    assert "runtime.shim.daemon" in graph["runtime.shim.cli"], "a function-level import is an edge"
    assert "runtime.errors" in graph["runtime.shim.cli"]
    assert sum(len(v) for v in graph.values()) > 200


def test_no_import_circles(graph_and_modules):
    graph, modules = graph_and_modules
    found = _cycles(graph)
    report = []
    for comp in found:
        cycle = _shortest_cycle(graph, comp)
        inside = [f"    {a} -> {b}   ({os.path.relpath(modules[a], ROOT)}:{line})"
                  for a in comp for b, line in sorted(graph[a].items()) if b in comp]
        report.append(f"  {len(comp)} modules in a circle: {', '.join(comp)}\n  e.g.:\n"
                      + _describe(graph, modules, cycle)
                      + "\n  every import inside it:\n" + "\n".join(inside))
    assert not found, "import circles (module- and function-level imports):\n" + "\n".join(report)


def test_runtime_never_imports_harness(graph_and_modules):
    graph, modules = graph_and_modules
    bad = [f"  {a} -> {b}   ({os.path.relpath(modules[a], ROOT)}:{line})"
           for a, targets in sorted(graph.items()) if a.split(".")[0] == "runtime"
           for b, line in sorted(targets.items()) if b.split(".")[0] == "harness"]
    assert not bad, "the engine imports the harness:\n" + "\n".join(bad)


def test_the_checker_finds_a_circle_and_names_the_lines(tmp_path):
    """The checks above can fail: a made-up graph with a circle through a lazy import."""
    graph = {"p.a": {"p.b": 3}, "p.b": {"p.c": 7}, "p.c": {"p.a": 12}, "p.d": {"p.a": 1}}
    modules = {m: f"{ROOT}/p/{m[2:]}.py" for m in ("p.a", "p.b", "p.c", "p.d")}
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]
    cycle = _shortest_cycle(graph, ["p.a", "p.b", "p.c"])
    assert cycle == ["p.a", "p.b", "p.c", "p.a"]
    assert "p.c -> p.a   (p/c.py:12)" in _describe(graph, modules, cycle)
    # and the source walker sees a function-level relative import
    pkg = tmp_path / "runtime"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "x.py").write_text("def f():\n    from . import y\n")
    (pkg / "sub" / "y.py").write_text("from runtime.sub.x import f\nfrom typing import TYPE_CHECKING\n"
                                      "if TYPE_CHECKING:\n    from runtime import z\n")
    (pkg / "z.py").write_text("")
    mods = {"runtime": str(pkg / "__init__.py"), "runtime.sub": str(pkg / "sub" / "__init__.py"),
            "runtime.sub.x": str(pkg / "sub" / "x.py"), "runtime.sub.y": str(pkg / "sub" / "y.py"),
            "runtime.z": str(pkg / "z.py")}
    g = _edges(mods)
    assert g["runtime.sub.x"] == {"runtime.sub.y": 2} and g["runtime.sub.y"] == {"runtime.sub.x": 1}
    assert _cycles(g) == [["runtime.sub.x", "runtime.sub.y"]]
