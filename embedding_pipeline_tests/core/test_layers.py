"""The code's shape, as a newcomer relies on it: the core runs without Dagster, and functions fit on a screen."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "embedding_pipeline"
# The Dagster face: assets, resources, jobs, sensors, definitions, Dagster's storage and instance state,
# and the entry points built on them. Every other module is plain Python, which any of these may import.
DAGSTER_FACE = {
    "assets", "resources", "definitions", "jobs", "sensors", "partitions", "run_workers", "instance", "cli", "search",
}  # fmt: skip
LONGEST_FUNCTION = 50  # lines, unless its docstring says why it is longer


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text())
    return found


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _face(module: str) -> bool:
    return module.split(".")[1] in DAGSTER_FACE if module.count(".") else False


def test_no_core_module_imports_dagster_or_a_dagster_resource_even_indirectly():
    modules = _modules()
    core = [name for name in modules if not _face(name)]
    assert {"embedding_pipeline.partition.run", "embedding_pipeline.content.database"} <= set(core)
    for name in core:
        seen, todo = set(), [name]
        while todo:  # every module it imports, and theirs
            for imported in _imports(modules[todo.pop()]):
                top = imported.split(".")[0]
                assert top not in ("dagster", "dagster_postgres"), f"{name} reaches {imported}"
                if imported in modules and imported not in seen:
                    assert not _face(imported), f"{name} reaches the Dagster face: {imported}"
                    seen.add(imported)
                    todo.append(imported)


def test_functions_fit_on_a_screen_or_say_why():
    long = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_FUNCTION and "Long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []
