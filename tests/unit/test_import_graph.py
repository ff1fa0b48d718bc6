"""The package's import graph, computed from the source: acyclic and pointing one way.

cli -> app -> config -> server / proxy -> decision -> auth / keys / routing -> errors. Config
compiles YAML into the runtime types of the layers below it, so nothing below imports config;
the decision core does no I/O. Imports under `TYPE_CHECKING` count: a cycle that only the type
checker sees is still two modules that cannot be understood apart.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "m2mgate"

# Layers that config, app and cli are built from: none of them may import those three.
BELOW_CONFIG = ("server", "proxy", "decision", "auth", "keys", "routing", "request_path",
                "errors", "jose", "observability", "flow_control", "detail_text")  # fmt: skip
ABOVE = ("config", "app", "cli")
# The pure core that decides: plain synchronous functions, no network library.
PURE = ("auth", "routing", "decision", "request_path", "jose", "proxy.headers",
        "proxy.header_names", "proxy.forward_rules", "proxy.forwarded", "proxy.response_headers",
        "proxy.request_head", "server.request_head")  # fmt: skip
IO_LIBRARIES = ("aiohttp", "asyncio", "socket", "httptools", "uvloop")


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """module -> the m2mgate modules and the external top-level packages it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    graph[name].add(full if full in modules else target)
    return graph


def cycles(nodes: Iterable[str], edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges.get(child, ()))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


MODULES = module_names()
GRAPH = imports(MODULES)
INTERNAL = {
    name: {t for t in targets if t in MODULES and t != name} for name, targets in GRAPH.items()
}


def unit(module: str) -> str:
    """The package a module belongs to (`server`), or the top-level module itself (`decision`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def in_layer(module: str, layers: Iterable[str]) -> bool:
    inside = module.removeprefix("m2mgate.")
    return any(inside == layer or inside.startswith(layer + ".") for layer in layers)


def test_the_graph_is_read_from_the_source() -> None:
    # A guard for the guard: an empty or unparsed graph would make every test below pass.
    assert len(MODULES) > 60
    assert "m2mgate.auth.policy" in INTERNAL.get("m2mgate.decision", set())


def test_no_module_imports_itself_back() -> None:
    assert cycles(sorted(MODULES), INTERNAL) == []


def test_no_package_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for source, targets in INTERNAL.items():
        for target in targets:
            if unit(source) != unit(target):
                edges[unit(source)].add(unit(target))
    assert cycles(sorted({unit(name) for name in MODULES}), edges) == []


@pytest.mark.parametrize("layer", BELOW_CONFIG)
def test_lower_layers_never_import_config_app_or_cli(layer: str) -> None:
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in INTERNAL.items()
        if in_layer(source, [layer])
        for target in targets
        if in_layer(target, ABOVE)
    )
    assert wrong == []


def test_config_never_imports_app_or_cli() -> None:
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in INTERNAL.items()
        if in_layer(source, ["config"])
        for target in targets
        if in_layer(target, ["app", "cli"])
    )
    assert wrong == []


def test_the_decision_core_does_no_io() -> None:
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if in_layer(source, PURE)
        for target in targets
        if target.split(".")[0] in IO_LIBRARIES
    )
    assert wrong == []
