"""The import graph, read from the source: the layers stay layers and nothing imports in a loop.

- `main` may import `pages`, `web` and `llm`; `pages` may import `web` and `llm`; `web` may
  import `llm`; `llm` imports neither `pages` nor `web`, nor Taipy or Flask (it is the library
  a notebook and the command line use).
- No cycle anywhere, imports inside functions included (only `if TYPE_CHECKING:` imports,
  which never run, are left out).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from support import PROJECT_DIR

ROOT = PROJECT_DIR
LAYERS = ("llm", "web", "pages", "main")
ALLOWED = {
    "main": {"main", "pages", "web", "llm"},
    "pages": {"pages", "web", "llm"},
    "web": {"web", "llm"},
    "llm": {"llm"},
}
WEB_FRAMEWORKS = ("taipy", "flask", "flask_socketio", "werkzeug")


def _modules() -> dict[str, Path]:
    found = {"main": ROOT / "main.py"}
    for package in ("llm", "web", "pages"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement but those under `if TYPE_CHECKING:`."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip:
            yield node


def _imported(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]
) -> list[str]:
    """The absolute names `node` (in module `name`) imports: `from pkg import sub` imports the
    submodule `pkg.sub` when there is one, `from mod import thing` the module `mod`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
        for alias in node.names
    ]


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between the project's modules, every top-level package each module imports)."""
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _runtime_imports(tree):
            for target in _imported(name, path, node, modules):
                if target in modules and target != name:
                    edges[name].add(target)
                elif target and target.split(".")[0] not in LAYERS:
                    external[name].add(target.split(".")[0])
    return edges, external


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_each_layer_imports_only_the_layers_below_it() -> None:
    edges, external = _graph()
    wrong = [
        f"{source} imports {target}"
        for source, targets in edges.items()
        for target in sorted(targets)
        if _layer(target) not in ALLOWED[_layer(source)]
    ]
    assert wrong == []
    web_in_library = [
        f"{module} imports {package}"
        for module, packages in external.items()
        if _layer(module) == "llm"
        for package in sorted(packages)
        if package in WEB_FRAMEWORKS
    ]
    assert web_in_library == []
    # The check sees the imports it must see (a broken parser would pass everything).
    assert "llm.engine" in edges["llm.engines"] and "web.context" in edges["pages.chat"]
    assert "taipy" in external["web.context"]


def test_no_module_imports_itself_through_others() -> None:
    edges, _ = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
