"""No import circles between relaygate's top-level parts (packages and modules).

Every import in a file counts, lazy ones inside functions included: a circle hidden behind a function-level
import is still a circle. The parts form strongly connected components of the import graph; any component
of more than one part fails, unless it is on :data:`ALLOWED`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import relaygate

ROOT = Path(relaygate.__file__).parent

#: circles tolerated: none (frontends/ implement ``pipeline.Frontend``; the pipeline never imports them)
ALLOWED: set[frozenset[str]] = set()


def _part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 and bits[0] == "relaygate" else None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _part(module)
        if src is None:
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                dst = _part(target)
                if dst and dst != src:
                    edges.setdefault(src, set()).add(dst)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[frozenset[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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
                found.append(frozenset(comp))

    for v in list(edges):
        if v not in index:
            strong(v)
    return found


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_parts() -> None:
    found = cycles(import_graph())
    unexpected = [sorted(c) for c in found if c not in ALLOWED]
    assert not unexpected, f"import cycles: {unexpected}"


def test_config_and_upstream_do_not_import_providers() -> None:
    edges = import_graph()
    assert "providers" not in edges.get("config", set())
    assert "providers" not in edges.get("upstream", set())
