"""The layer order of docs/design.md, enforced on the source: imports point down, no circle.

Every import in src/polytask counts, at module level or inside a function. A lazy import that
must run up (a registry filled by importing its members, an optional entry point) is allowed
only with the marker comment ``# layers: allow`` on the import's line, which a reviewer sees.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "polytask"
MARKER = "# layers: allow"

# Highest first; modules of one floor may import each other (but never in a circle).
FLOORS: list[tuple[str, ...]] = [
    ("__main__",),
    ("cli", "api"),
    ("serving", "monitoring", "federation", "tuning", "benchmarking", "analysis", "inference"),
    ("training",),
    ("evaluation",),
    ("models",),
    ("sharing", "weighting", "sampling", "data", "distributed"),
    ("tasks",),
    ("config", "dataset_config", "registry", "errors", "atomic", "swap", "manifest",
     "jsonlog", "yaml_io", "extras", "device", "__init__"),
]
FLOOR_OF = {name: len(FLOORS) - i for i, names in enumerate(FLOORS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def floor(module: str) -> int:
    """The floor of ``polytask.X...``; the package's own ``__init__`` is the ground."""
    top = module.split(".")[1] if "." in module else "__init__"
    if top not in FLOOR_OF:
        raise AssertionError(f"{module}: no floor for '{top}' in {__file__} FLOORS; add it")
    return FLOOR_OF[top]


def imported(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(polytask module, line) for every import of the file, relative ones resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
            found += [(n if _is_module(n) else base, node.lineno) for n in names]
    return [(m, line) for m, line in found if m.split(".")[0] == "polytask"]


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    graph: dict[str, set[str]] = {}
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        graph.setdefault(module, set())
        for target, line in imported(ast.parse(text), module, path.name == "__init__.py"):
            if MARKER in lines[line - 1] or target == module:
                continue
            if floor(target) > floor(module):
                upward.append(f"{path.relative_to(SRC.parent)}:{line}: {module} -> {target}")
            if not (path.name == "__init__.py" and target.startswith(module + ".")):
                graph[module].add(target)
    return graph, upward


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_import_points_down():
    _, upward = import_graph()
    assert not upward, "imports that run back up (move the code down, or mark a lazy import "\
        f"'{MARKER}' with the reason):\n" + "\n".join(upward)


def test_no_import_circle():
    graph, _ = import_graph()
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checker_sees_an_upward_lazy_import(tmp_path):
    tree = ast.parse("def f():\n    from ..training import trainer\n")
    assert imported(tree, "polytask.tasks.seq2seq", False) == [("polytask.training.trainer", 2)]
    assert floor("polytask.training.trainer") > floor("polytask.tasks.seq2seq")
    assert circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
