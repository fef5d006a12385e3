"""The import graph: providers never import each other (only the shared ``providers.base``), and llmkit's modules
have no import cycle. Module-level imports count; imports inside functions and under ``TYPE_CHECKING`` are lazy by
design (they break what would otherwise be cycles, and keep ``import llmkit`` light)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def eager_imports(path: Path) -> set[str]:
    """llmkit modules imported at module level (not in functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in (
            ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else []
        ):
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("llmkit"):
                found.add(child.module)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name.startswith("llmkit"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in SRC.rglob("*.py")}
    return {name: {dep for dep in eager_imports(path) if dep in modules} for name, path in modules.items()}


def provider_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "providers" and parts[2] != "base":
        return parts[2]
    return None


def test_providers_never_import_each_other() -> None:
    offenders = [
        f"{module} -> {dep}"
        for module, deps in graph().items()
        for dep in deps
        if provider_of(module) and provider_of(dep) and provider_of(dep) != provider_of(module)
    ]
    assert offenders == []


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "llmkit.wire.openai" in edges["llmkit.providers.openai"]  # the checker sees real edges
