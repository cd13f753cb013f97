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
MECHANISM = ("intake", "formats", "constituency", "digest", "web", "feedback", "auth", "federation")
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
    f"{PACKAGE}.testbed",
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
    assert f"{PACKAGE}.testbed.chain" in GRAPH[f"{PACKAGE}.demo.run"]  # from package.module import name
    assert f"{PACKAGE}.feedback.service" in GRAPH[f"{PACKAGE}.cli.serve"]
    assert f"{PACKAGE}.constituency.loader" in GRAPH[f"{PACKAGE}.constituency"]  # from .loader import
    assert f"{PACKAGE}.demo.example" in GRAPH[f"{PACKAGE}.cli.demo"]  # an import inside a function
    # ...and the cycle finder finds what it should.
    graph = {"a": {"b"}, "b": {"c", "x"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph, graph) == [["a", "b", "c"]]
    # ...and so does the package graph: two modules of two packages importing each other's.
    assert package_of(f"{PACKAGE}.demo.run") == f"{PACKAGE}.demo" == package_of(f"{PACKAGE}.demo")
    assert package_of(f"{PACKAGE}.storage") == PACKAGE and package_of("benchmarks.chain") == "benchmarks"
    modules = {"p.a": {"q.b"}, "q.b": set(), "q.c": {"p.d"}, "p.d": set()}
    assert cycles(package_graph(modules, lambda name: name.split(".")[0]), {"p", "q"}) == [["p", "q"]]


def package_of(name: str) -> str:
    """The package a module of the tree belongs to: itself if it is one, else its folder."""
    return name if is_package(name) else name.rpartition(".")[0]


def package_graph(graph: dict, package=package_of) -> dict:
    """Package → the packages its modules import (of those in ``graph``), itself left out."""
    packages = {}
    for name, targets in graph.items():
        own = package(name)
        packages.setdefault(own, set()).update(package(t) for t in targets if t in graph)
    return {own: targets - {own} for own, targets in packages.items()}


def test_the_import_graph_has_no_cycles():
    assert cycles(GRAPH, under(PACKAGE, "benchmarks")) == []


def test_no_two_packages_import_each_other():
    # Between packages too, not only modules: cli/ may import the demo, never the demo cli/
    # (a module of each importing one of the other's is a cycle the module graph misses).
    names = under(PACKAGE, "benchmarks")
    graph = package_graph({name: GRAPH[name] & set(names) for name in names})
    assert cycles(graph, graph) == []


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


#: Beside the product: the demo runs on the test bed, the commands start the demo.
BESIDE = (f"{PACKAGE}.demo", f"{PACKAGE}.testbed")


@pytest.mark.parametrize("name", under(PACKAGE))
def test_nothing_of_the_product_imports_the_demo_or_the_test_bed(name):
    if name in under(*BESIDE, f"{PACKAGE}.cli.demo"):
        return
    bad = sorted(f for f in BESIDE if reaches(name, f, through=True))
    assert bad == [], f"{name} imports {', '.join(bad)}."


@pytest.mark.parametrize("name", under(f"{PACKAGE}.testbed"))
def test_the_test_bed_imports_neither_the_demo_nor_the_commands(name):
    # The demo imports the test bed, never the reverse: the benchmarks and tests take the
    # bed without the demo.
    bad = sorted(f for f in (f"{PACKAGE}.demo", f"{PACKAGE}.cli") if reaches(name, f, through=True))
    assert bad == [], f"{name} imports {', '.join(bad)}."


@pytest.mark.parametrize("name", under(f"{PACKAGE}.demo"))
def test_the_demo_imports_no_command(name):
    assert not reaches(name, f"{PACKAGE}.cli", through=True), sorted(GRAPH[name])


@pytest.mark.parametrize("name", [n for n in under("tests") if n != "tests.test_architecture"])
def test_tests_use_the_demo_and_never_extend_it(name):
    # A test runs the demo as it is, or the test bed's chain and client: it subclasses no
    # class of the demo.
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    demo_names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}.demo")
        for alias in node.names
    }
    subclassed = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base).split(".")[-1] in demo_names for base in node.bases)
    ]
    assert subclassed == [], f"{name} subclasses the demo's {subclassed}."


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


HARNESS = "tests.harness"


@pytest.mark.parametrize("name", under("tests.e2e"))
def test_the_end_to_end_tests_kill_a_pipelines_bots_through_the_harness(name):
    # A bot SIGKILLed (at once, or part way through its batch, with what it held read from its
    # internal queue) is HarnessPipeline's: no end-to-end module sends a signal or defines
    # a kill of its own.
    tree = tree_of(name)
    signals = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.kill", "os.killpg", "kill")
    ]
    assert signals == [], f"{name} sends a signal itself at line(s) {signals}: use {HARNESS}.HarnessPipeline."
    kills = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("kill")]
    assert kills == [], f"{name} defines {kills}: {HARNESS}.HarnessPipeline kills a pipeline's bots."


# -- the web layer: one home per mechanism ------------------------------------------------------

WEB = f"{PACKAGE}.web"
#: Names of the web layer and the credentials, each importable from its one home only (no
#: copy under another module, no re-export): the limits, the rate limiter, the token check,
#: the token file and its verifier.
HOMES = {
    "Limits": f"{WEB}.limits",
    "PARAMETERS": f"{WEB}.limits",
    "RateLimiter": f"{WEB}.ratelimit",
    "Throttle": f"{WEB}.ratelimit",
    "retry_after": f"{WEB}.ratelimit",
    "TokenCheck": f"{WEB}.bearer",
    "bearer_token": f"{WEB}.bearer",
    "nesting": WEB,
    "max_depth": f"{WEB}.nesting",
    "TokenVerifier": f"{PACKAGE}.auth.tokens",
    "TokenEntry": f"{PACKAGE}.auth.tokens",
    "TokenFileError": f"{PACKAGE}.auth.tokens",
    "VerifierBusy": f"{PACKAGE}.auth.tokens",
    "add_token": f"{PACKAGE}.auth.tokens",
    "revoke_token": f"{PACKAGE}.auth.tokens",
    "read_entries": f"{PACKAGE}.auth.tokens",
    # Across installations: the token a CERT presents to its hub is read in one place; the
    # state a record takes is decided by one function; a CERT's report, its outbox and the
    # hub's endpoint have one home each.
    "read_token": f"{PACKAGE}.auth.client",
    "token_problem": f"{PACKAGE}.auth.client",
    "decide": f"{PACKAGE}.digest.ledger.precedence",
    "Reported": f"{PACKAGE}.digest.ledger.downstream",
    "OutboxPusher": f"{PACKAGE}.digest.outbox",
    "OutcomesAPI": f"{PACKAGE}.feedback.outcomes",
}
#: Request headers that carry framing, sizes, the client's address or credentials: read
#: by the web layer only (a service declares what it takes and gets the result).
WEB_HEADERS = {"authorization", "content-length", "content-type", "transfer-encoding", "x-forwarded-for"}


def tree_of(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


@pytest.mark.parametrize("name", under(PACKAGE, "benchmarks", "tests"))
def test_the_web_layer_s_names_and_the_tokens_come_from_their_one_home(name):
    wrong = []
    for node in ast.walk(tree_of(name)):
        if isinstance(node, ast.ImportFrom) and not node.level:
            wrong += [
                f"{a.name} from {node.module}" for a in node.names if HOMES.get(a.name, node.module) != node.module
            ]
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in HOMES and node.name[0].isupper():
            if HOMES[node.name] != name and not name.startswith("tests."):
                wrong.append(f"class {node.name} defined here")
    assert wrong == [], f"{name}: {', '.join(wrong)} (see HOMES)."


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n not in under(WEB) and reaches(n, WEB)])
def test_only_the_web_layer_reads_framing_limit_and_credential_headers(name):
    # A service's module (one that uses the web layer) neither reads these headers nor
    # writes Retry-After itself: Endpoint declarations, TokenCheck and Throttle do.
    read = []
    for node in ast.walk(tree_of(name)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "get_list")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).lower() in WEB_HEADERS
        ):
            read.append(node.args[0].value)
        elif isinstance(node, ast.Constant) and node.value == "Retry-After":
            read.append("Retry-After (written)")
    assert read == [], f"{name} handles {', '.join(read)} itself."


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n != f"{WEB}.limits"])
def test_the_defaults_of_the_web_limits_are_spelled_in_one_place(name):
    from intelmq_nsm.web.limits import PARAMETERS

    # A bot's parameter or a configuration field named as a limit takes its default from
    # Limits (``max_connections: int = Limits.max_connections``), never a literal of its own.
    literal = [
        target.id
        for node in ast.walk(tree_of(name))
        if isinstance(node, ast.ClassDef)
        for statement in node.body
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and isinstance(statement.value, ast.Constant)
        for target in (statement.targets if isinstance(statement, ast.Assign) else [statement.target])
        if isinstance(target, ast.Name) and target.id in PARAMETERS
    ]
    assert literal == [], f"{name} spells the default of {', '.join(literal)}."


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n not in under(WEB)])
def test_only_the_web_layer_imports_tornado(name):
    assert not reaches(name, "tornado")


@pytest.mark.parametrize("name", under(PACKAGE))
def test_only_the_openpgp_module_drives_gnupg(name):
    # One home for gpg: the key's checks, signing and encrypting (python-gnupg is imported
    # lazily there, so that the bots list and run without it).
    assert name == f"{PACKAGE}.digest.openpgp" or "gnupg" not in GRAPH[name], sorted(GRAPH[name])


def test_a_cert_s_report_changes_the_hub_s_ledger_only_through_the_store():
    # What a reported change does to a record (downstream.py) is applied by the store alone,
    # in its one transaction per request, as the notification policy is; the endpoint and
    # everyone else call Ledger.apply_reported.
    users = sorted(n for n in under(PACKAGE, "benchmarks") if f"{PACKAGE}.digest.ledger.downstream" in GRAPH[n])
    assert set(users) <= {LEDGER_MODULE, f"{PACKAGE}.feedback.outcomes"}, users
    outcomes_imports = {
        alias.name
        for node in ast.walk(tree_of(f"{PACKAGE}.feedback.outcomes"))
        if isinstance(node, ast.ImportFrom) and node.module == f"{PACKAGE}.digest.ledger.downstream"
        for alias in node.names
    }
    assert outcomes_imports == {"Reported"}, outcomes_imports


def test_the_precedence_of_states_is_a_leaf():
    # Every writer that must choose a state asks it; it asks nothing of the package.
    name = f"{PACKAGE}.digest.ledger.precedence"
    assert not any(target.startswith(f"{PACKAGE}.") for target in GRAPH[name]), GRAPH[name]


#: The programs of Debian's gnupg package the product runs (through python-gnupg or itself).
GPG_PROGRAMS = {"gpg", "gpg2", "gpgconf", "gpg-agent", "gpgv"}


def runs_a_gpg_program(node: ast.AST) -> bool:
    """A call given a gpg program's name, alone (``shutil.which("gpg")``) or first in a
    command line (``subprocess.run(["gpgconf", ...])``)."""
    if not isinstance(node, ast.Call):
        return False
    for arg in node.args:
        first = arg.elts[0] if isinstance(arg, (ast.List, ast.Tuple)) and arg.elts else arg
        if isinstance(first, ast.Constant) and first.value in GPG_PROGRAMS:
            return True
    return False


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n != f"{PACKAGE}.digest.openpgp"])
def test_only_the_openpgp_module_runs_the_gpg_programs(name):
    # The demo's check of a signed mail and the test bed's keys call openpgp's functions:
    # one module knows the programs, their options and their limits.
    calls = [ast.unparse(node) for node in ast.walk(tree_of(name)) if runs_a_gpg_program(node)]
    assert calls == [], f"{name} runs gpg itself: {calls}"


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n != f"{PACKAGE}.digest.pgp_mime"])
def test_pgp_mime_s_layout_is_written_and_read_in_one_module(name):
    # Signed or not is asked of pgp_mime's names; its bytes are split by pgp_mime only.
    text = MODULES[name].read_text(encoding="utf-8")
    assert "multipart/signed" not in text and "application/pgp-signature" not in text, name


@pytest.mark.parametrize("name", under(PACKAGE))
def test_only_the_test_bed_makes_signing_keys(name):
    # The product signs with the key an operator made; the test bed makes keys for the
    # examples it lays out (the demo's among them).
    allowed = {f"{PACKAGE}.digest.openpgp", f"{PACKAGE}.testbed.signing"}
    if name in allowed:
        return
    names = {getattr(node, "attr", getattr(node, "id", None)) for node in ast.walk(tree_of(name))}
    names |= {
        alias.name for node in ast.walk(tree_of(name)) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert "new_signing_key" not in names, f"{name} makes a signing key; the test bed's signing module does."


@pytest.mark.parametrize(
    "name", [f"{PACKAGE}.tlp", f"{PACKAGE}.constituency.preferences", f"{PACKAGE}.controls", f"{PACKAGE}.cert_ids"]
)
def test_the_shared_rules_of_tlp_and_of_an_organisations_wishes_import_nothing_of_the_package(name):
    # Read by the parser, the registry and the digest output alike: a leaf, like finding_id.
    assert not any(target.startswith(f"{PACKAGE}.") or target == PACKAGE for target in GRAPH[name]), GRAPH[name]


@pytest.mark.parametrize("name", [n for n in under(PACKAGE) if n != f"{PACKAGE}.controls"])
def test_the_characters_that_act_are_listed_in_one_module(name):
    # The commands and the service's pages show the same characters as escapes: from
    # controls.py, the one list (a bidi override spelled as a number elsewhere is a copy).
    spelled = [
        node.value
        for node in ast.walk(tree_of(name))
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in (0x202A, 0x202E, 0x2066)
    ]
    assert spelled == [], f"{name} spells bidi controls itself: use intelmq_nsm.controls."


def test_the_kinds_of_abuse_and_the_precedence_of_states_are_leaves():
    # Read by the digest output, the ledger, the feedback service and (next) the hub's
    # return leg alike: the kinds see only the event contract, the precedence nothing.
    assert {t for t in GRAPH[f"{PACKAGE}.abuse_kinds"] if t.startswith(PACKAGE)} <= {
        PACKAGE,
        f"{PACKAGE}.event_contract",
    }
    assert not any(t.startswith(PACKAGE) for t in GRAPH[f"{PACKAGE}.digest.ledger.precedence"])


def test_every_change_of_a_findings_state_is_decided_by_the_precedence_table():
    # The policy (observations, deliveries, quiet periods) and the store (answers, every
    # other writer's record_change) ask precedence.decide; the schema takes its states there.
    for name in ("policy", "store", "schema"):
        assert f"{PACKAGE}.digest.ledger.precedence" in GRAPH[f"{PACKAGE}.digest.ledger.{name}"], name


def test_intelmqs_classification_is_read_as_kinds_of_abuse_in_one_module():
    # Which RSIT type is which kind of abuse is abuse_kinds' table; nobody keeps a second
    # (``vulnerable-system`` is the researchers' default type of the report formats too).
    from intelmq_nsm.abuse_kinds import BY_TYPE

    spelled = [t for t in BY_TYPE if t not in ("vulnerable-system", "other", "test", "malware", "proxy", "tor")]
    for name in under(PACKAGE):
        if name == f"{PACKAGE}.abuse_kinds":
            continue
        text = MODULES[name].read_text(encoding="utf-8")
        assert not [t for t in spelled if f'"{t}"' in text or f"'{t}'" in text], f"{name} classifies abuse itself."


def test_tlp_labels_are_spelled_in_one_module():
    # The parser and the digest output take the names and the order from intelmq_nsm.tlp.
    for name in under(PACKAGE):
        if name == f"{PACKAGE}.tlp":
            continue
        text = MODULES[name].read_text(encoding="utf-8")
        assert '"AMBER+STRICT"' not in text and "'AMBER+STRICT'" not in text, f"{name} spells a TLP label itself."


#: What a loaded registry is made of, in ``constituency/``: none of it reads files.
REGISTRY_DATA = ("fields", "index", "model", "registry", "values")
#: How a registry is read: files, documents, CSV rows, records, the checks across records.
REGISTRY_READING = ("builtin", "claims", "csv_file", "documents", "loader", "paths", "records", "references")


@pytest.mark.parametrize("name", [f"{PACKAGE}.constituency.{module}" for module in REGISTRY_DATA])
def test_the_registry_and_its_index_know_nothing_of_how_a_registry_is_read(name):
    reading = sorted(m for m in REGISTRY_READING if reaches(name, f"{PACKAGE}.constituency.{m}", through=True))
    assert reading == [], f"{name} imports {', '.join(reading)}."


def _texts(name: str) -> set:
    """The string constants of module ``name`` (also the literal parts of its f-strings)."""
    return {
        node.value for node in ast.walk(tree_of(name)) if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


@pytest.mark.parametrize("name", under(f"{PACKAGE}.constituency", f"{PACKAGE}.cli", f"{PACKAGE}.bots"))
def test_a_certs_claims_source_and_organisation_are_spelled_in_the_model_only(name):
    # ``claims:<key>`` and ``cert:<key>`` say which assets are a CERT's claims and who stands
    # for its constituency: a second spelling would be a second rule of what a claim is.
    if name != f"{PACKAGE}.constituency.model":
        spelled = sorted(text for text in _texts(name) if text.startswith(("claims:", "cert:")))
        assert spelled == [], f"{name} spells {spelled}; use claims_source, claimed_by, cert_organisation."


@pytest.mark.parametrize("name", under(PACKAGE))
def test_a_certs_claims_status_is_written_by_the_update_and_said_by_the_claims_module(name):
    # One writer of a download's status, one sentence for stale claims (log, check, validate).
    if name != f"{PACKAGE}.constituency.update":
        assert "write_status" not in imported_names(name) or name == f"{PACKAGE}.constituency.claims", name
    if name != f"{PACKAGE}.constituency.claims":
        assert not any("were not taken" in text for text in _texts(name)), f"{name} words stale claims itself."


def imported_names(name: str) -> set:
    """The names ``from ... import`` brings into module ``name``."""
    return {alias.name for node in ast.walk(tree_of(name)) if isinstance(node, ast.ImportFrom) for alias in node.names}


@pytest.mark.parametrize("name", under(PACKAGE, "benchmarks"))
def test_networks_enter_a_registry_only_through_registry_add_networks(name):
    # The network tables and their one insertion are the index's; the registry alone
    # pairs them with the stored rows (Registry.add_networks). A reader that filled them
    # itself would be a second add to keep in step.
    if name != f"{PACKAGE}.constituency.registry":
        assert not imported_names(name) & {"NetworkTables", "add_entry"}, name


def _writes_to_the_terminal(node) -> bool:
    """A call that prints, writes to standard output or error, or exits with a message."""
    if not isinstance(node, ast.Call):
        return False
    function = node.func
    if isinstance(function, ast.Name):
        return function.id == "print" or (function.id == "SystemExit" and bool(node.args))
    return (
        isinstance(function, ast.Attribute)
        and function.attr == "write"
        and isinstance(function.value, ast.Attribute)
        and function.value.attr in ("stdout", "stderr")
    )


@pytest.mark.parametrize("name", [n for n in under(f"{PACKAGE}.cli") if n != f"{PACKAGE}.cli.terminal"])
def test_the_commands_print_only_through_the_terminal_module(name):
    # Outside text (comments, names, registry values, report fields) reaches the operator's
    # terminal: cli/terminal.py writes it inert, and it is the only way out.
    lines = [node.lineno for node in ast.walk(tree_of(name)) if _writes_to_the_terminal(node)]
    assert lines == [], f"{name} prints past intelmq_nsm/cli/terminal.py at line(s) {lines}."


# -- where SQL lives ----------------------------------------------------------------------

#: The digest spool's and the finding ledger's one module each: every statement on their
#: tables is a named constant there, run by their classes (DigestSpool and SpoolReader,
#: Ledger); everyone else asks those classes.
SPOOL_MODULE = f"{PACKAGE}.digest.spool"
LEDGER_MODULE = f"{PACKAGE}.digest.ledger.store"
LEDGER_SCHEMA = f"{PACKAGE}.digest.ledger.schema"
#: The unreachable contacts: one table in the spool's file with a module of its own.
CONTACTS_MODULE = f"{PACKAGE}.digest.contacts"
#: The researchers' cases, their owners and shares: the CaseBook, for every intake of a host.
CASES_MODULE = f"{PACKAGE}.intake.cases"
#: The modules that talk to SQLite or SQLAlchemy themselves: the storage idiom (WAL,
#: transactions, savepoints) and the modules of the tables above. (The intake's
#: submission spool reaches SQLite through storage.)
DATABASE_MODULES = (f"{PACKAGE}.storage", SPOOL_MODULE, LEDGER_MODULE, CONTACTS_MODULE)
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


def table_homes() -> dict:
    """Table → the one module that may hold SQL naming it: the module whose ``CREATE TABLE``
    makes it, and for the ledger's tables (``Table("name", ...)`` in its schema) the store."""
    homes = {}
    for name in under(PACKAGE):
        for _, text in strings_of(tree_of(name)):
            for table in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", text):
                homes.setdefault(table, name)
    for node in ast.walk(tree_of(LEDGER_SCHEMA)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Table":
            homes[node.args[0].value] = LEDGER_MODULE
    return homes


TABLE_HOMES = table_homes()


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
    spool = {"events", "arrivals", "digests", "ledger_recorded"}
    assert {TABLE_HOMES[t] for t in spool} == {SPOOL_MODULE}
    ledger = {
        "ledger_findings",
        "ledger_history",
        "ledger_notifications",
        "ledger_disputes",
        "ledger_outbox",
        "ledger_outbox_refused",
        "ledger_received",
        "ledger_downstream",
    }
    assert {TABLE_HOMES[t] for t in ledger} == {LEDGER_MODULE}
    assert TABLE_HOMES["unreachable_contacts"] == CONTACTS_MODULE
    assert TABLE_HOMES["submissions"] == f"{PACKAGE}.intake.spool"
    assert {TABLE_HOMES[t] for t in ("cases", "case_shares")} == {CASES_MODULE}
    assert len(LEDGER_OBJECTS) == 9  # eight tables and their MetaData
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


@pytest.mark.parametrize("name", under(PACKAGE, "benchmarks"))
def test_sql_on_a_table_stands_only_in_the_module_that_makes_it(name):
    # The spool's tables in digest/spool.py, the ledger's in digest/ledger/store.py, the
    # unreachable contacts in digest/contacts.py, the intake's in intake/spool.py.
    elsewhere = [
        f"line {line}: {text.strip()[:60]} ({', '.join(sorted(tables))})"
        for line, text in strings_of(tree_of(name))
        if SQL.match(text) and (tables := {t for t in re.findall(r"\w+", text) if TABLE_HOMES.get(t, name) != name})
    ]
    assert elsewhere == [], f"{name} holds SQL on another module's tables: ask that module's class."


@pytest.mark.parametrize("name", [SPOOL_MODULE, LEDGER_MODULE, CONTACTS_MODULE, CASES_MODULE])
def test_the_spool_and_the_ledger_name_each_statement_once_at_the_top_of_their_module(name):
    inline = []
    for node in ast.walk(tree_of(name)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inline += [f"line {line}: {text[:60]}" for line, text in strings_of(node) if SQL.match(text)]
    assert inline == [], f"{name}: SQL inside a function or class; make it a named constant of the module."


@pytest.mark.parametrize("name", under(PACKAGE, "benchmarks"))
def test_only_the_database_modules_use_sqlite3_and_sqlalchemy(name):
    used = {t for t in GRAPH[name] if t in ("sqlite3", "sqlalchemy")}
    allowed = {"sqlite3"} if name in DATABASE_MODULES else set()
    if name in (LEDGER_MODULE, LEDGER_SCHEMA):
        allowed.add("sqlalchemy")
    unwanted = ", ".join(sorted(used - allowed))
    assert used <= allowed, f"{name} imports {unwanted}: ask the class of the database it needs."


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


# -- between installations: one home each ------------------------------------------------------

FORWARDED_MODULE = f"{PACKAGE}.federation.forwarded"


@pytest.mark.parametrize("name", under(PACKAGE))
def test_the_forwarded_event_schema_and_the_hubs_routing_keys_are_read_in_one_module(name):
    # What a hub may send, and what of it a CERT drops, is decided in federation/forwarded.py:
    # the forwarded-event parser asks it, nothing reads the schema or lists the keys itself.
    if name == FORWARDED_MODULE:
        return
    text = MODULES[name].read_text(encoding="utf-8")
    assert "forwarded-event-1.schema.json" not in text, f"{name} reads the forwarded-event schema itself."
    assert not re.search(r"\bROUTING\s*=", text), f"{name} lists the hub's routing keys itself."


@pytest.mark.parametrize("name", under(PACKAGE))
def test_the_organisation_of_a_forward_is_spelled_in_the_ledgers_policy(name):
    # ``cert:<key>`` names a CERT as a whole (its claims' owner at the hub, the hub's records of
    # what it forwarded to it, the source of what it reports back): made and read by cert_ids.
    if name == f"{PACKAGE}.cert_ids":
        return
    spelled = [line for line, text in strings_of(tree_of(name)) if text.startswith("cert:")]
    assert spelled == [], f"{name} spells cert:<key> at line(s) {spelled}: use intelmq_nsm.cert_ids."


TIERS_MODULE = f"{PACKAGE}.testbed.tiers"


@pytest.mark.parametrize("name", under(PACKAGE, "benchmarks", "tests"))
def test_a_hub_and_cert_instances_are_put_together_in_one_home(name):
    # Both legs' tests, their benchmarks and the two-tier demo run a hub and CERT instances on
    # testbed/tiers.py: nothing else runs the operator's script that joins a CERT to the hub's
    # node, wires a hub's outcomes service to CERT tokens, or defines a hub or CERT of its own.
    if name == TIERS_MODULE or name.startswith(f"{PACKAGE}.feedback") or name.startswith("tests."):
        return
    spelled = [line for line, text in strings_of(tree_of(name)) if text in ("rabbitmq-add-cert.sh", "cert_tokens_file")]
    assert spelled == [], f"{name} joins a hub and a CERT itself at line(s) {spelled}: use intelmq_nsm.testbed.tiers."
    classes = {n.name for n in ast.walk(tree_of(name)) if isinstance(n, ast.ClassDef)}
    assert not classes & {"ForwardLeg", "Hub", "Cert", "Tiers"}, f"{name} defines its own hub or CERT."


@pytest.mark.parametrize("name", under("tests", "benchmarks"))
def test_the_tests_and_benchmarks_of_both_legs_take_their_hub_and_certs_from_the_test_bed(name):
    if name == "tests.test_architecture":
        return  # this test names them
    text = MODULES[name].read_text(encoding="utf-8")
    for gone in ("testbed.federation", "testbed.two_tiers"):
        assert gone not in text, f"{name} imports {gone}, which is now intelmq_nsm.testbed.tiers."


LAYOUT_MODULE = f"{PACKAGE}.testbed.layout"


def moves_the_intelmq_prefix(node) -> bool:
    """``x.removeprefix(INTELMQ_PREFIX)``, ``x.replace("/opt/intelmq/", …)``, ``len(INTELMQ_PREFIX)``:
    code that takes the prefix off a path to put another in its place."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    first = node.args[0]
    is_prefix = (isinstance(first, ast.Name) and first.id == "INTELMQ_PREFIX") or (
        isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("/opt/intelmq")
    )
    if isinstance(node.func, ast.Attribute):
        return is_prefix and node.func.attr in ("removeprefix", "replace", "split", "partition")
    return is_prefix and isinstance(node.func, ast.Name) and node.func.id == "len"


@pytest.mark.parametrize("name", [n for n in under(PACKAGE, "benchmarks", "tests") if n != LAYOUT_MODULE])
def test_an_examples_paths_move_into_a_working_directory_in_one_function(name):
    # An example's runtime.yaml and its feedback.yaml are laid out alike: every path under
    # /opt/intelmq/ (and a sqlite:/// URL of one) moves by testbed/layout.py's localise_value.
    moved = [node.lineno for node in ast.walk(tree_of(name)) if moves_the_intelmq_prefix(node)]
    assert moved == [], f"{name} moves /opt/intelmq/ paths itself at line(s) {moved}: use layout.localise_value."


def test_the_layout_rule_sees_a_prefix_moved():
    source = 'a = p.removeprefix(INTELMQ_PREFIX)\nb = p[len(INTELMQ_PREFIX):]\nc = p.replace("/opt/intelmq/", w)\n'
    assert sum(moves_the_intelmq_prefix(node) for node in ast.walk(ast.parse(source))) == 3
    assert sum(moves_the_intelmq_prefix(node) for node in ast.walk(tree_of(LAYOUT_MODULE))) >= 1


def picks_bots_by_module(node) -> bool:
    """``bot.get("module") == …`` or ``bot["module"] in …``: code that picks a runtime's bots
    by their module itself."""
    if not isinstance(node, ast.Compare):
        return False
    left = node.left
    if isinstance(left, ast.Call) and isinstance(left.func, ast.Attribute) and left.func.attr == "get":
        key = left.args[0] if left.args else None
    elif isinstance(left, ast.Subscript):
        key = left.slice
    else:
        return False
    return isinstance(key, ast.Constant) and key.value == "module"


RUNTIME_READERS = under(f"{PACKAGE}.testbed", f"{PACKAGE}.demo", "benchmarks", "tests")


@pytest.mark.parametrize("name", [n for n in RUNTIME_READERS if n != LAYOUT_MODULE])
def test_a_runtimes_bots_of_a_module_are_picked_in_one_function(name):
    # Where the test bed, the demo, the benchmarks and the tests read an example's runtime:
    # testbed/layout.py's bots_of (the "global" entry left out, a bot without a module too).
    # The bots read IntelMQ's own runtime with IntelMQ's functions, not the test bed's.
    picked = [node.lineno for node in ast.walk(tree_of(name)) if picks_bots_by_module(node)]
    assert picked == [], f"{name} picks a runtime's bots by module itself at line(s) {picked}: use layout.bots_of."


def test_the_bots_of_rule_sees_a_pick():
    source = 'a = [b for b, bot in r.items() if bot.get("module") == M]\nc = bot["module"] in (M, N)\n'
    assert sum(picks_bots_by_module(node) for node in ast.walk(ast.parse(source))) == 2
