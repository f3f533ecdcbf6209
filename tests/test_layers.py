"""The three layers import one way (protocols -> strategies -> mile_cl), with no import circle,
and no library or runner module edits sys.path. Read from the source (ast), imports inside
functions included."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("mile_cl", "strategies", "protocols")        # each may import only those before it
COMMAND_SCRIPTS = {"protocols.iirc_cifar", "protocols.iirc_imagenet"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in sorted((REPO / layer).rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names (``from X import Y`` gives X.Y
    too, which counts when it is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in imported_names(path, name) if m in modules and m != name}
    return graph


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_the_graph_sees_the_modules_and_their_imports():
    graph = import_graph()
    assert "protocols.runner" in graph and "mile_cl.plugin" in graph["protocols.runner"]
    assert "strategies.er" in graph["strategies"]


def test_imports_go_one_way_protocols_strategies_mile_cl():
    upward = sorted(f"{module} imports {target}" for module, targets in import_graph().items()
                    for target in targets if layer_of(target) > layer_of(module))
    assert upward == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_among_the_projects_modules():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def sys_path_edits(tree: ast.AST) -> list[ast.AST]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys"]


def under_main_guard(tree: ast.Module, target: ast.AST) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            if any(inner is target for inner in ast.walk(node)):
                return True
    return False


def test_no_library_or_runner_module_edits_sys_path():
    offenders = []
    for name, path in project_modules().items():
        tree = ast.parse(path.read_text())
        for node in sys_path_edits(tree):
            if not (name in COMMAND_SCRIPTS and under_main_guard(tree, node)):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
