"""The shape of the code, checked from its imports (see ARCHITECTURE.md).

Every ``import`` and ``from ... import`` is read with the ast module, wherever it stands
(also inside functions), and resolved to a module of this tree or to a top-level
distribution (``intelmq``, ``yaml``, ...). Nothing is imported or run.
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "intelmq_nsm"
#: The mechanism: plain Python that needs no IntelMQ, under the bots and the commands.
MECHANISM = ("intake", "formats", "constituency", "digest", "web", "feedback")
#: What the mechanism must not reach: IntelMQ itself (also through the package's bots or
#: its one module of shortcuts past IntelMQ's Message API), the commands, the demo and
#: whatever stands beside the product.
NOT_FROM_MECHANISM = (
    "intelmq",
    "tests",
    "benchmarks",
    f"{PACKAGE}.bots",
    f"{PACKAGE}.cli",
    f"{PACKAGE}.demo",
    f"{PACKAGE}.intelmq_shortcuts",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict:
    """Module name → path, for the package, the benchmarks and the tests."""
    modules = {}
    for top in (PACKAGE, "benchmarks", "tests"):
        for path in sorted((REPO / top).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


MODULES = source_modules()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def resolve(name: str) -> str:
    """A module of this tree named by ``name`` or its nearest parent; else its top-level name."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return parts[0]


def imports_of(name: str) -> set:
    """What module ``name`` imports, resolved as ``resolve`` does."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))
    package = name if is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            # ``from package import submodule`` imports the submodule.
            found |= {resolve(f"{origin}.{alias.name}") for alias in node.names if alias.name != "*"}
            found.add(resolve(origin))
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def reaches(name: str, forbidden: str, through: bool = False) -> bool:
    """Whether ``name`` imports ``forbidden`` (or a module in it); ``through``: also by way of
    the tree's other modules."""
    targets = closure(name) if through else GRAPH[name]
    return any(target == forbidden or target.startswith(f"{forbidden}.") for target in targets)


def closure(name: str) -> set:
    """Everything ``name`` imports, directly or through the tree's own modules."""
    seen, todo = set(), [name]
    while todo:
        for target in GRAPH.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def cycles(graph: dict, names) -> list:
    """The strongly connected components of ``graph`` of more than one module among ``names``
    (Tarjan's algorithm)."""
    names = set(names)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node] & names:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(names):
        if name not in index:
            visit(name)
    return found


def under(*prefixes: str) -> list:
    return sorted(n for n in MODULES if any(n == p or n.startswith(f"{p}.") for p in prefixes))


def test_the_reader_sees_the_imports_it_must_judge():
    # The rules below are only as good as the graph: it holds known edges of each kind.
    assert "intelmq" in GRAPH[f"{PACKAGE}.intelmq_shortcuts"]  # import intelmq...
    assert f"{PACKAGE}.demo.pipeline" in GRAPH[f"{PACKAGE}.demo.run"]  # from package.module import name
    assert f"{PACKAGE}.constituency.loader" in GRAPH[f"{PACKAGE}.constituency"]  # from .loader import
    assert f"{PACKAGE}.demo.run" in GRAPH[f"{PACKAGE}.cli.demo"]  # an import inside a function
    # ...and the cycle finder finds what it should.
    graph = {"a": {"b"}, "b": {"c", "x"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph, graph) == [["a", "b", "c"]]


def test_the_import_graph_has_no_cycles():
    assert cycles(GRAPH, under(PACKAGE, "benchmarks")) == []


@pytest.mark.parametrize("name", under(*(f"{PACKAGE}.{part}" for part in MECHANISM)))
def test_the_mechanism_needs_no_intelmq_and_nothing_beside_the_product(name):
    bad = sorted(f for f in NOT_FROM_MECHANISM if reaches(name, f, through=True))
    assert bad == [], f"{name} imports {', '.join(bad)}."


@pytest.mark.parametrize("name", under(PACKAGE))
def test_the_package_imports_neither_tests_nor_benchmarks(name):
    assert not reaches(name, "tests") and not reaches(name, "benchmarks"), sorted(GRAPH[name])


#: The adapters to IntelMQ: the bots, their shortcuts past its API, and the commands that
#: list bots or read reports as the parser does.
ADAPTERS = (f"{PACKAGE}.bots", f"{PACKAGE}.intelmq_shortcuts", f"{PACKAGE}.cli")


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n not in under(*ADAPTERS)])
def test_only_the_bots_their_shortcuts_and_the_commands_import_intelmq(name):
    assert not reaches(name, "intelmq")


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n not in under(*ADAPTERS, f"{PACKAGE}.demo")])
def test_only_the_bots_the_commands_and_the_demo_import_the_bots(name):
    assert not reaches(name, f"{PACKAGE}.bots")


@pytest.mark.parametrize("name", under("benchmarks"))
def test_benchmarks_import_nothing_from_tests(name):
    assert not reaches(name, "tests"), sorted(t for t in GRAPH[name] if t.split(".")[0] == "tests")


@pytest.mark.parametrize("name", [n for n in under("tests.e2e") if MODULES[n].name.startswith("test_")])
def test_every_end_to_end_module_is_marked_e2e(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    marks = [
        ast.unparse(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
    ]
    # One assignment, the e2e mark alone or first in a list (e.g. with an xdist group).
    assert len(marks) == 1 and (marks[0] == "pytest.mark.e2e" or marks[0].startswith("[pytest.mark.e2e,")), (
        f"{name} needs pytestmark = pytest.mark.e2e (it starts servers)."
    )


# -- where SQL lives ----------------------------------------------------------------------

#: The digest spool's and the finding ledger's one module each: every statement on their
#: tables is a named constant there, run by their classes (DigestSpool and SpoolReader,
#: Ledger); everyone else asks those classes.
SPOOL_MODULE = f"{PACKAGE}.digest.spool"
LEDGER_MODULE = f"{PACKAGE}.digest.ledger.store"
LEDGER_SCHEMA = f"{PACKAGE}.digest.ledger.schema"
#: The modules that talk to SQLite or SQLAlchemy themselves: the storage idiom (WAL,
#: transactions, savepoints) and the two databases above. (The intake's submission spool
#: reaches SQLite through storage.)
DATABASE_MODULES = (f"{PACKAGE}.storage", SPOOL_MODULE, LEDGER_MODULE)
#: SQL text: a string that opens as a statement on a table does (keywords in capitals, as
#: the code writes them; prose that starts with "Select" is not SQL).
SQL = re.compile(
    r"^\s*(SELECT\b.*\bFROM\b|INSERT\b.*\bINTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|(CREATE|DROP)\s+(TABLE|INDEX)\b|ALTER\s+TABLE\b|PRAGMA\b)",
    re.DOTALL,
)


def strings_of(tree) -> list:
    """``(line, text)`` of every string in ``tree``; an f-string's parts joined with ``{}``."""
    found = []
    inside_fstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            found.append((node.lineno, "".join(str(p) for p in parts)))
            inside_fstrings |= {id(v) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside_fstrings:
            found.append((node.lineno, node.value))
    return found


def tree_of(name: str):
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


def spool_and_ledger_tables() -> set:
    """The tables' names, read from their modules: the spool's ``CREATE TABLE`` statements,
    the ledger's ``Table("name", ...)`` calls."""
    names = set()
    for _, text in strings_of(tree_of(SPOOL_MODULE)):
        names |= set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", text))
    for node in ast.walk(tree_of(LEDGER_SCHEMA)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Table":
            names.add(node.args[0].value)
    return names


TABLES = spool_and_ledger_tables()


def ledger_tables_and_metadata() -> set:
    """The names schema.py binds to its tables and its MetaData."""
    names = set()
    for node in tree_of(LEDGER_SCHEMA).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if getattr(node.value.func, "id", None) in ("Table", "MetaData"):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


LEDGER_OBJECTS = ledger_tables_and_metadata()


def test_the_sql_reader_sees_the_tables_and_the_statements_it_must_judge():
    assert {"events", "arrivals", "digests", "ledger_recorded"} <= TABLES
    assert {"ledger_findings", "ledger_history", "ledger_notifications", "ledger_disputes"} <= TABLES
    assert len(LEDGER_OBJECTS) == 5  # four tables and their MetaData
    for statement in (
        "SELECT row FROM events WHERE digest_id = ?",
        "INSERT OR IGNORE INTO digests (id) VALUES (?)",
        "UPDATE arrivals SET error = ?",
        "DELETE FROM ledger_recorded WHERE digest_id = ?",
        "ALTER TABLE ledger_findings ADD COLUMN matches TEXT",
    ):
        assert SQL.match(statement), statement
    for prose in ("DELETE", "Select the events from the spool", "Update the digests."):
        assert not SQL.match(prose), prose
    tree = ast.parse('X = f"SELECT {c} FROM digests"\ndef f():\n    return "DELETE FROM events"\n')
    assert sorted(text for _, text in strings_of(tree)) == ["DELETE FROM events", "SELECT {} FROM digests"]


def sql_on(tables: set, name: str) -> list:
    """The SQL texts in module ``name`` that name one of ``tables``."""
    return [
        f"line {line}: {text.strip()[:60]}"
        for line, text in strings_of(tree_of(name))
        if SQL.match(text) and set(re.findall(r"\w+", text)) & tables
    ]


@pytest.mark.parametrize("name", [n for n in under(PACKAGE, "benchmarks") if n not in (SPOOL_MODULE, LEDGER_MODULE)])
def test_only_the_spool_and_the_ledger_hold_sql_on_their_tables(name):
    assert sql_on(TABLES, name) == [], f"{name} holds SQL on the spool's or the ledger's tables: ask their classes."


@pytest.mark.parametrize("name", [SPOOL_MODULE, LEDGER_MODULE])
def test_the_spool_and_the_ledger_name_each_statement_once_at_the_top_of_their_module(name):
    tree = tree_of(name)
    inline = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inline += [f"line {line}: {text[:60]}" for line, text in strings_of(node) if SQL.match(text)]
    assert inline == [], f"{name}: SQL inside a function or class; make it a named constant of the module."


@pytest.mark.parametrize("name", under(PACKAGE, "benchmarks"))
def test_only_the_database_modules_use_sqlite3_and_sqlalchemy(name):
    used = {t for t in GRAPH[name] if t in ("sqlite3", "sqlalchemy")}
    allowed = {"sqlite3"} if name in DATABASE_MODULES else set()
    if name in (LEDGER_MODULE, LEDGER_SCHEMA):
        allowed.add("sqlalchemy")
    assert used <= allowed, (
        f"{name} imports {', '.join(sorted(used - allowed))}: ask the spool's or the ledger's class."
    )


@pytest.mark.parametrize("name", [n for n in under(PACKAGE, "benchmarks") if n not in (LEDGER_MODULE, LEDGER_SCHEMA)])
def test_only_the_ledgers_store_uses_its_tables(name):
    taken = []
    for node in ast.walk(tree_of(name)):
        if isinstance(node, ast.ImportFrom) and node.module == LEDGER_SCHEMA:
            taken += [alias.name for alias in node.names if alias.name in LEDGER_OBJECTS or alias.name == "*"]
        elif isinstance(node, ast.ImportFrom) and node.module == f"{PACKAGE}.digest.ledger":
            taken += [alias.name for alias in node.names if alias.name == "schema"]
        elif isinstance(node, ast.Import):
            taken += [alias.name for alias in node.names if alias.name == LEDGER_SCHEMA]
    assert taken == [], f"{name} takes {', '.join(taken)} from the ledger's schema: ask the Ledger instead."
