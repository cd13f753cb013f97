"""The formats package stays plain Python with one direction of imports: no IntelMQ, no
tests or benchmarks, no cycles, and no module of it reaching back to its front door."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "intelmq_nsm" / "formats"
NAME = "intelmq_nsm.formats"
SUBMODULES = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def imports_of(path: Path) -> set:
    """The modules ``path`` imports, with ``from package import submodule`` as the submodule."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == NAME:
                found |= {f"{NAME}.{alias.name}" if alias.name in SUBMODULES else NAME for alias in node.names}
            else:
                found.add(node.module)
    return found


def test_no_module_of_formats_imports_intelmq_tests_or_benchmarks():
    for path in PACKAGE.glob("*.py"):
        roots = {module.split(".")[0] for module in imports_of(path)}
        assert not roots & {"intelmq", "tests", "benchmarks"}, path.name


def test_the_formats_modules_import_each_other_without_cycles_and_not_through_the_front_door():
    graph = {}
    for stem in SUBMODULES:
        imported = imports_of(PACKAGE / f"{stem}.py")
        assert NAME not in imported, f"{stem} imports from the package's front door"
        graph[stem] = {m[len(NAME) + 1 :] for m in imported if m.startswith(NAME + ".")}
    done, path = set(), []

    def visit(node):
        assert node not in path, f"import cycle: {' -> '.join([*path, node])}"
        if node in done:
            return
        path.append(node)
        for successor in graph[node]:
            visit(successor)
        path.pop()
        done.add(node)

    for node in graph:
        visit(node)
