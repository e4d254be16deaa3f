"""The house's rules, read from the source: the engine imports no web framework, the faces (UI, API, CLI, server)
use only the engine's public modules, and no two modules import each other (counting imports inside functions)."""
from __future__ import annotations

import ast
from pathlib import Path

WEBUI = Path(__file__).resolve().parents[2] / "webui"
WEB_FRAMEWORKS = ("gradio", "fastapi", "starlette", "uvicorn")
PUBLIC = {"webui.engine", "webui.engine.requests", "webui.engine.infotext", "webui.engine.image_files",
          "webui.engine.samplers"}
FACES = ("webui.ui", "webui.api", "webui.cli", "webui.server", "webui.flags", "webui.extensions")


def module_name(path: Path) -> str:
    parts = path.relative_to(WEBUI.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, submodules: bool = False) -> set[str]:
    """Every module `path` imports, anywhere in the file; with `submodules`, also `pkg.name` of `from pkg import
    name` (it may be a module)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(
        block.test) for stmt in block.body for n in ast.walk(stmt)}  # annotations only: not imported when run
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            if submodules:
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in WEBUI.rglob("*.py")}
    return {name: {m for m in imports(path, submodules=True) if m in files and m != name}
            for name, path in files.items()}


def test_the_engine_imports_no_web_framework():
    for path in (WEBUI / "engine").rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in WEB_FRAMEWORKS}
        assert not bad, f"{path} imports {bad}"


def test_the_faces_use_only_the_public_engine_modules():
    for path in WEBUI.rglob("*.py"):
        name = module_name(path)
        if not name.startswith(FACES):
            continue
        private = {m for m in imports(path) if m.startswith("webui.engine") and m not in PUBLIC}
        assert not private, f"{name} imports engine internals: {sorted(private)}"


def test_no_import_cycles():
    edges = graph()
    cycles = []

    def visit(node, stack, on_stack, done):
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt in on_stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack, on_stack, done)
        on_stack.discard(node)
        stack.pop()
        done.add(node)

    done: set[str] = set()
    for node in sorted(edges):
        if node not in done:
            visit(node, [], set(), done)
    # a package's __init__ that re-exports its own submodules is not a cycle between modules
    real = [c for c in cycles if not any(c[i + 1].startswith(c[i] + ".") for i in range(len(c) - 1))]
    assert not real, "import cycles:\n" + "\n".join(" -> ".join(c) for c in real)
