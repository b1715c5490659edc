"""No import cycles in the recovery package: each module can be read (and imported) on its
own, and a screen never needs the app that shows it. Built from the source with ast. Every
import that runs counts: at module level (also inside `try`/`if`/`with`) and inside
functions, since an import moved into a function to dodge a cycle is still the same cycle,
only found later; `if TYPE_CHECKING:` blocks do not count (types only, never executed)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "recovery"


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt], types: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run (`types`: also those for the type checker only)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not types:
            found += _imports(node.orelse, types)
            continue
        for block in ("body", "orelse", "finalbody"):
            found += _imports(getattr(node, block, []), types)
        for handler in getattr(node, "handlers", []):  # try/except; match has cases
            found += _imports(handler.body, types)
        for case in getattr(node, "cases", []):
            found += _imports(case.body, types)
    return found


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool,
             modules: set[str]) -> set[str]:
    """The recovery modules an import statement loads (a name imported from a package is
    that submodule when there is one, else the package itself)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:
        anchor = here.split(".") if is_package else here.split(".")[:-1]
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.add(sub if sub in modules else base)
    return found & modules


def import_graph(package: Path = PACKAGE, types: bool = False) -> dict[str, set[str]]:
    files = {_module_name(path, package): path for path in package.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set()
        for node in _imports(tree.body, types):
            graph[name] |= _targets(node, name, path.name == "__init__.py", modules)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) through each strongly connected group (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_cycle(graph, group) for group in groups]


def _one_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest way from the group's first module back to itself (breadth first)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")


def test_the_recovery_package_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_store_and_the_tui_have_no_cycle_even_for_the_type_checker() -> None:
    """ChunkStore builds on images and prune, the app on its screens: those name a protocol
    (store.access.StoreAccess, ui.tui.tuiapp.TuiApp), not the module that imports them."""
    graph = import_graph(types=True)
    inside = {name: {m for m in targets if m.startswith(("recovery.store.", "recovery.ui.tui."))}
              for name, targets in graph.items()
              if name.startswith(("recovery.store.", "recovery.ui.tui."))}
    found = cycles(inside)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_a_cycle_is_found_and_named(tmp_path: Path) -> None:
    package = tmp_path / "recovery"
    (package / "store").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "store" / "__init__.py").write_text("")
    (package / "store" / "images.py").write_text("from recovery.store import objects\n")
    (package / "store" / "objects.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import locks\n"
        "def later() -> None:\n    from recovery.store import prune\n"
        "from .images import X\n")
    (package / "store" / "prune.py").write_text("import recovery.store.files\n")
    (package / "store" / "locks.py").write_text("from recovery.store.objects import Y\n")
    (package / "store" / "files.py").write_text("")
    graph = import_graph(package)
    # TYPE_CHECKING's locks is left out; the import inside a function counts.
    assert graph["recovery.store.objects"] == {"recovery.store.images", "recovery.store.prune"}
    assert cycles(graph) == [["recovery.store.images", "recovery.store.objects",
                              "recovery.store.images"]]
    (package / "store" / "files.py").write_text(
        "def f() -> None:\n    from .objects import Z\n")
    assert cycles(import_graph(package)) == [
        ["recovery.store.files", "recovery.store.objects", "recovery.store.prune",
         "recovery.store.files"]]
