"""The package's layering, read from the source with `ast` (nothing is imported): imports go
downwards only (docs/ARCHITECTURE.md, "Modules"). Function-level imports count: they run
too, only later."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tadsr"

def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool) -> set[str]:
    """Every module name imported anywhere in the file (`from a import b`: a, and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package the module is in
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


MODULES = _modules()
IMPORTS = {name: _imports(name, *where) for name, where in MODULES.items()}
GRAPH = {name: {m for m in found if m in MODULES and m != name} for name, found in IMPORTS.items()}


def _part(module: str) -> str:
    """The part a module belongs to: `tadsr` (the package's __init__), `cli`, `pipeline`,
    or a sub-package (`inference`, `commands`, ...)."""
    parts = module.split(".")
    return "tadsr" if len(parts) == 1 else parts[1]


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.add(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _part_graph() -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        parts.setdefault(_part(a), set()).update(
            _part(b) for b in targets if _part(b) != _part(a)
        )
    return parts


def test_the_graph_is_read():
    """The reader sees the imports (a broken reader would pass every other test)."""
    assert "tadsr.commands" in GRAPH["tadsr.cli"]
    assert "tadsr.inference.imageio" in GRAPH["tadsr.commands.upscale"]
    assert "tadsr.checkpoints.loading" in GRAPH["tadsr.checkpoints"]  # a function-level import
    assert {"inference", "checkpoints", "commands", "cli", "tadsr"} <= set(_part_graph())


def test_no_cycle_between_parts():
    assert _cycles(_part_graph()) == set()


def test_no_cycle_between_modules():
    assert _cycles(GRAPH) == set()


def test_no_import_runs_back_up():
    """The ones that did: the registry raised checkpoints' error while checkpoints resolved
    names through the registry; onnx_backend read the version from the package, whose
    __init__ imports inference; the command modules took UsageError from tadsr.cli."""
    was_up = {("models", "checkpoints"), ("inference", "tadsr")}
    back = {(a, b) for a, bs in GRAPH.items() for b in bs if (_part(a), _part(b)) in was_up}
    assert back == set()


def test_argparse_only_in_the_command_layer():
    users = {m for m, found in IMPORTS.items() if "argparse" in found}
    assert users and all(m == "tadsr.cli" or _part(m) == "commands" for m in users), users


def test_library_code_imports_no_command():
    """Domain packages import nothing from tadsr.commands or tadsr.cli; the commands do not
    import the entry point back."""
    top = ("commands", "cli")
    upward = {(a, b) for a, bs in GRAPH.items() for b in bs
              if _part(b) in top and _part(a) not in top
              or _part(a) == "commands" and _part(b) == "cli"}  # fmt: skip
    assert upward == set()
