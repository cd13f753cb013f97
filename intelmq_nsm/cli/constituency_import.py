"""``intelmq-nsm constituency import ripe``: propose registry assets from the RIPE database's dumps.

Writes the imported registry file (only proposals at or above ``--min-confidence``, with
``source: ripe-<dump date>``, so manual entries keep precedence) and a review report of
every proposal (CSV and Markdown), and prints what the new import changes in routing
compared with the last one. Exit codes: 0 done, 1 the registry (or the registry with the
new import) is invalid, 2 wrong usage or unreadable dumps.
"""

import tempfile
from datetime import date
from pathlib import Path

from intelmq_nsm.cli.terminal import say, warn
from intelmq_nsm.constituency import RegistryError, builtin_municipalities, load_registry
from intelmq_nsm.constituency.diff import changes
from intelmq_nsm.constituency.paths import registry_files
from intelmq_nsm.constituency.ripe_import import (
    LEVELS,
    dump_date,
    dump_files,
    import_dumps,
    read_delegated,
    registry_csv,
    report_csv,
    report_markdown,
    review,
)
from intelmq_nsm.constituency.values import utc_today
from intelmq_nsm.storage import atomic_write


def _load(files, include_builtin: bool, what: str):
    try:
        registry = load_registry(files, include_builtin=include_builtin)
    except RegistryError as exc:
        for issue in exc.issues:
            warn(issue)
        warn(f"{what} is invalid; nothing was written.")
        return None
    return registry


def import_ripe(args) -> int:
    files = dump_files(args.dumps)
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing or not files:
        warn(f"No dump files found: {', '.join(missing or args.dumps)}.")
        return 2
    output = Path(args.output).resolve()
    database = [f for f in registry_files(args.database or []) if Path(f).resolve() != output]
    registry = None
    if database:
        registry = _load(database, not args.no_builtin, "The registry")
        if registry is None:
            return 1
        municipalities = [(o.id, o.name) for o in registry.organisations.values() if o.kind == "municipality"]
        others = [(o.id, o.name) for o in registry.organisations.values() if o.kind != "municipality"]
        names = {o.id: o.name for o in registry.organisations.values()}
    else:
        municipalities, others = ([] if args.no_builtin else builtin_municipalities()), []
        names = dict(municipalities)
    delegated = read_delegated(args.delegated) if args.delegated else None
    try:
        result = import_dumps(files, municipalities, others, args.country, delegated)
    except OSError as exc:
        warn(f"A dump cannot be read: {exc}.")
        return 2
    review(result.proposals, args.min_confidence, registry)
    source = f"ripe-{args.dump_date or dump_date(files)}"
    imported = registry_csv(result.proposals, source)
    report = Path(args.report)

    # What routing the new import changes against the last one, and whether the registry
    # with the new import is still valid: checked before anything is replaced.
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / output.name
        candidate.write_text(imported, encoding="utf-8")
        previous = database + ([output] if output.is_file() else [])
        old = _load(previous, not args.no_builtin, "The registry with the last import") if previous else None
        new = _load([*database, candidate], not args.no_builtin, "The registry with the new import")
        if new is None or (previous and old is None):
            return 1
        if old is not None:
            lines = changes(old, new, args.date or utc_today())
            for line in lines:
                say(line)
            say(f"{len(lines)} routing change(s) from the last import to this one.")

    if not args.dry_run:
        atomic_write(output, imported)
        atomic_write(report.with_suffix(".csv"), report_csv(result.proposals, names))
        atomic_write(
            report.with_suffix(".md"), report_markdown(result, names, source, args.min_confidence, files)
        )  # fmt: skip
    count = sum(p.status.startswith("imported") for p in result.proposals)
    where = "dry run, nothing written" if args.dry_run else f"{output}; review: {report.with_suffix('.md')}"
    say(
        f"{len(result.proposals)} proposal(s) from {result.objects} resource objects, {count} imported "
        f"as {source} ({where})."
    )
    for problem in result.problems:
        warn(f"Skipped {problem}.")
    return 0


def add_import_parser(commands) -> None:
    """``constituency import ripe …``, added to the ``constituency`` command's actions."""
    parser = commands.add_parser("import", help="propose registry assets from public data (the RIPE database)")
    sources = parser.add_subparsers(dest="import_source", metavar="SOURCE", required=True)
    sub = sources.add_parser(
        "ripe", help="read the RIPE database's split dumps", description=__doc__.splitlines()[0],
        epilog=" ".join(__doc__.splitlines()[2:]),
    )  # fmt: skip
    sub.add_argument("dumps", nargs="+", metavar="DIR|FILE", help="dump files (gzip or plain) or their directory")
    sub.add_argument(
        "-d", "--database", action="append", metavar="PATH",
        help="the registry in use, file or directory, repeatable: its organisations are matched and its manual "
        "entries checked; the output file is left out of it",
    )  # fmt: skip
    sub.add_argument("--no-builtin", action="store_true", help="leave out the built-in 342 municipalities")
    sub.add_argument("--country", metavar="CC", help="keep only resources of this country (e.g. NL)")
    sub.add_argument(
        "--delegated", metavar="FILE",
        help="an RIR's delegated statistics file (delegated-ripencc-extended-latest): the country of AS numbers",
    )  # fmt: skip
    sub.add_argument(
        "--min-confidence", choices=LEVELS, default="org",
        help="import proposals this strong or stronger (org > org-name > netname > mention; default org)",
    )  # fmt: skip
    sub.add_argument("-o", "--output", default="ripe-import.csv", help="the imported registry file (CSV)")
    sub.add_argument("--report", default="ripe-review", help="the review report, written as REPORT.csv and .md")
    sub.add_argument("--dump-date", type=date.fromisoformat, help="the dumps' date (default: newest file's)")
    sub.add_argument("--date", type=date.fromisoformat, help="compare routing as on this day")
    sub.add_argument("--dry-run", action="store_true", help="report and compare, but write nothing")
    sub.set_defaults(func=import_ripe)
