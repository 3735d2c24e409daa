"""The import-layer contract: no import cycle, and every module imports only its own layer or the layers below.

Every import counts, the ones inside functions too (they hid the cycles this test was written against).
"""

from __future__ import annotations

import ast
from pathlib import Path

from fraudtune.paths import PACKAGE_ROOT

# lowest first; a module belongs to the longest prefix that names it
LAYERS = (
    ("core", ("fraudtune.paths", "fraudtune.errors", "fraudtune.files", "fraudtune.config", "fraudtune.profile",
              "fraudtune.manifest", "fraudtune.runmeta", "fraudtune.dotted", "fraudtune.stats", "fraudtune.memory",
              "fraudtune.guides")),
    ("modeling", ("fraudtune.modeling",)),
    ("data", ("fraudtune.data",)),
    ("train", ("fraudtune.train",)),
    ("predict", ("fraudtune.predict",)),
    ("evaluate", ("fraudtune.evaluate", "fraudtune.forgetting", "fraudtune.study")),
    ("tune", ("fraudtune.tune",)),
    ("roi", ("fraudtune.roi",)),
    ("report", ("fraudtune.report",)),
    ("serve", ("fraudtune.serve",)),
    ("entry points", ("fraudtune", "fraudtune.cli", "fraudtune.demo")),
)  # fmt: skip


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for a package folder (its __init__.py names the package itself)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (absolute imports anywhere in the file)."""
    mods, package = modules(root), root.name
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]  # a submodule, or a name in the module
            for name in names:
                target = owner(name) if name.split(".")[0] == package else None
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    return best[0] if best else None


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph(PACKAGE_ROOT)) == []


def test_every_module_has_a_layer_and_imports_only_downward():
    graph = import_graph(PACKAGE_ROOT)
    assert [m for m in graph if layer_of(m) is None] == []
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m in sorted(graph)
        for t in sorted(graph[m])
        if layer_of(t) > layer_of(m)
    ]
    assert upward == []


def test_the_checker_sees_a_cycle_hidden_in_a_function(tmp_path):
    """The contract can fail: a function-level import that closes a loop is found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text("def thing():\n    from pkg import a\n    return a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
