"""``intelmq-nsm constituency``: validate, query, compare and export constituency registries.

Exit codes: 0 success (``lookup``: every value matched; ``diff``: no routing changes),
1 the registry is invalid (or ``diff``: routing changes; ``export``: the claims would be
invalid), 2 wrong usage or unreadable input, 3 (``lookup`` only) at least one value matched
nothing, 4 (``validate`` only) valid, but a CERT's claims among the files are stale: their
last download was not taken.
"""

import tempfile
from datetime import date
from pathlib import Path

from intelmq_nsm.cli.terminal import say, say_json, warn
from intelmq_nsm.constituency import RegistryError, load_registry
from intelmq_nsm.constituency.claims import read_status, stale
from intelmq_nsm.constituency.export import ORGANISATIONS, claims_document, claims_json
from intelmq_nsm.constituency.index import OWNERS
from intelmq_nsm.constituency.values import parse_asn, parse_ip, utc_today
from intelmq_nsm.storage import atomic_write

DEFAULT_DATABASE = "/opt/intelmq/var/lib/bots/nsm-constituency"


def _load(paths, args):
    """The registry, or None after printing why it is invalid."""
    try:
        registry = load_registry(paths, include_builtin=not args.no_builtin, today=args.date)
    except RegistryError as exc:
        for issue in exc.issues:
            warn(issue)
        errors = sum(1 for i in exc.issues if i.level == "error")
        warn(f"Invalid registry: {errors} error(s).")
        return None
    for issue in registry.issues:
        warn(issue)
    return registry


def validate(args) -> int:
    registry = _load(args.files, args)
    if registry is None:
        return 1
    stats = registry.stats()
    say(
        f"Valid: {stats['organisations']} organisations, {stats['networks']} networks, {stats['domains']} domains, "
        f"{stats['asns']} ASNs, {stats['exclusions']} exclusions; version {stats['version']}."
    )
    # A hub's claims files: the status its --update-database left beside each one.
    stale_claims = [message for claims in registry.claims.values() if (message := stale(read_status(claims["file"])))]
    for message in stale_claims:
        warn(f"Stale: {message}")
    return 4 if stale_claims else 0


def _field_for(value: str) -> str:
    """Which event field a command-line value stands for."""
    if "://" in value:
        return "source.url"
    if parse_ip(value) is not None:
        return "source.ip"
    try:
        parse_asn(value)
    except ValueError:
        return "source.fqdn"
    return "source.asn"


#: The event fields ``lookup`` takes one value of, as options.
EVENT_FIELDS = ("fqdn", "url", "ip", "asn")


def _route_dict(route) -> dict:
    return {
        "constituency": route.constituency,
        "organisations": route.organisation_dicts(),
        "matches": [m.as_event_dict() for m in route.matches],
        "tie": route.tie,
    }


def lookup(args) -> int:
    event = [(f"source.{name}", value) for name in EVENT_FIELDS if (value := getattr(args, name)) is not None]
    if event and args.values:
        warn("Give either values to look up one by one or the --fqdn/--url/--ip/--asn of one event.")
        return 2
    if not event and not args.values:
        warn("Nothing to look up: give values, or --fqdn/--url/--ip/--asn of one event.")
        return 2
    registry = _load(args.database or [DEFAULT_DATABASE], args)
    if registry is None:
        return 1
    # Values given alone are each an event of their own; the options together form one event.
    events = [event] if event else [[(_field_for(value), value)] for value in args.values]
    unmatched = 0
    results = []
    for values in events:
        routes = registry.index.decide(values, match_asn=True, day=args.date, owners=args.owners)
        unmatched += not routes
        label = " ".join(f"{field}={value}" for field, value in values) if event else values[0][1]
        result = {"value": label, "routes": [_route_dict(r) for r in routes]}
        if event:
            result["event"] = dict(values)
        else:
            result["field"] = values[0][0]
        results.append(result)
    if args.json:
        say_json({"registry_version": registry.version, "results": results}, ensure_ascii=False)
    else:
        for result in results:
            if not result["routes"]:
                say(f"{result['value']}: no match; the event would leave on path _default.")
            for route in result["routes"]:
                names = "; ".join(
                    f"{o['id']} {o['name']} ({o['kind']}, {o['role']} owner)" for o in route["organisations"]
                )
                say(f"{result['value']}: constituency {route['constituency']}: {names}")
                for m in route["matches"]:
                    note = f", note: {m['note']}" if m["note"] else ""
                    why = f"{m['kind']} {m['matched']} belongs to {m['organisation']}"
                    say(f"    because {why} (source {m['source']}{note})")
                if route["tie"]:
                    say(f"    tie between {', '.join(route['tie'])}: all of them are tagged")
    return 3 if unmatched else 0


def stats(args) -> int:
    registry = _load(args.database or [DEFAULT_DATABASE], args)
    if registry is None:
        return 1
    data = registry.stats()
    if args.json:
        say_json(data)
    else:
        for key, value in data.items():
            say(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


def diff(args) -> int:
    if args.events:
        if args.new is not None:
            warn("With --events, give one registry (the one in use), not two.")
            return 2
        return _diff_events(args)
    if args.old is None or args.new is None:
        warn("Give the registry in use and the new one, or --events FILE and the registry.")
        return 2
    from intelmq_nsm.constituency.diff import changes

    old = _load(args.old.split(","), args)
    new = _load(args.new.split(","), args)
    if old is None or new is None:
        return 2
    lines = changes(old, new, args.date or utc_today())
    for line in lines:
        say(line)
    say(f"{len(lines)} routing change(s) from {old.version} to {new.version}.")
    return 1 if lines else 0


def _diff_events(args) -> int:
    """How many of the events' routing decisions ``owners: all`` changes against ``most-specific``."""
    from intelmq_nsm.constituency.diff import owner_rule_changes

    registry = _load((args.old or DEFAULT_DATABASE).split(","), args)
    if registry is None:
        return 2
    try:
        handle = open(args.events, encoding="utf-8")  # closed by the with block below
    except OSError as exc:
        warn(f"Cannot read the events file {args.events}: {exc.strerror}.")
        return 2
    with handle:
        summary = owner_rule_changes(registry, handle, match_asn=args.match_asn, day=args.date or utc_today())
    for line, reason in summary.invalid:
        warn(f"{args.events}, line {line}: {reason}; the line is left out.")
    for line, before, after in summary.changed:
        say(f"line {line}: {before} -> {after}")
    say(
        f"{len(summary.changed)} of {summary.events} routing decision(s) change from owners most-specific to all "
        f"({summary.new_constituency} reach a constituency more, {summary.unrouted} matched nothing, "
        f"{len(summary.invalid)} line(s) left out); registry {registry.version}."
    )
    return 1 if summary.changed else 0


def export(args) -> int:
    registry = _load(args.database or [DEFAULT_DATABASE], args)
    if registry is None:
        return 1
    try:
        document = claims_document(registry, args.claims, args.organisations, args.date, version=args.version)
    except ValueError as exc:
        warn(f"Cannot export claims: {exc}.")
        return 2
    output = Path(args.output)
    content = claims_json(document)
    # The hub reads it with this loader: what the loader refuses is never written.
    with tempfile.TemporaryDirectory(prefix="nsm-claims-") as folder:
        candidate = Path(folder) / f"claims-{args.claims}.json"
        candidate.write_text(content, encoding="utf-8")
        try:
            load_registry([candidate], include_builtin=not args.no_builtin)
        except RegistryError as exc:
            for issue in exc.issues:
                warn(issue)
            warn(f"The claims of {args.claims} would be invalid; {output} is unchanged.")
            return 1
    atomic_write(output, content)
    counts = {"network": 0, "domain": 0, "asn": 0}
    for asset in document["assets"]:
        counts[next(kind for kind in counts if kind in asset)] += 1
    say(
        f"Wrote the claims of {args.claims} to {output}: {counts['network']} networks, {counts['domain']} domains, "
        f"{counts['asn']} ASNs, {len(document['exclusions'])} exclusions, "
        f"{len(document.get('organisations', []))} organisations; exported at {document['claims']['exported_at']}."
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "constituency",
        help="validate, query and compare constituency registries",
        description=__doc__.splitlines()[0],
        epilog=" ".join(__doc__.splitlines()[2:]),
    )
    commands = parser.add_subparsers(dest="constituency_command", metavar="ACTION", required=True)

    def common(sub, database=True):
        if database:
            sub.add_argument(
                "-d", "--database", action="append", metavar="PATH",
                help=f"registry file or directory, repeatable (default: {DEFAULT_DATABASE})",
            )  # fmt: skip
        sub.add_argument("--no-builtin", action="store_true", help="leave out the built-in 342 municipalities")
        sub.add_argument(
            "--date", type=date.fromisoformat, default=None,
            help="decide as on this day (YYYY-MM-DD), e.g. to check a registry before a merger",
        )  # fmt: skip

    sub = commands.add_parser(
        "validate",
        help="check registry files; print every problem with file, line and field, and CERTs' claims whose "
        "last download was not taken (exit 4)",
    )
    sub.add_argument("files", nargs="+", metavar="FILE")
    common(sub, database=False)
    sub.set_defaults(func=validate)

    sub = commands.add_parser(
        "lookup", help="who owns an IP, domain, URL or ASN, and why; or who gets one event of several values"
    )
    sub.add_argument("values", nargs="*", metavar="VALUE", help="values looked up one by one")
    for name in EVENT_FIELDS:
        sub.add_argument(f"--{name}", metavar="VALUE", help=f"the event's source.{name} (the options form one event)")
    sub.add_argument("--owners", choices=OWNERS, default="all", help="the expert's rule (default: all)")
    sub.add_argument("--json", action="store_true", help="print JSON")
    common(sub)
    sub.set_defaults(func=lookup)

    sub = commands.add_parser("stats", help="count the registry's organisations, networks, domains and ASNs")
    sub.add_argument("--json", action="store_true", help="print JSON")
    common(sub)
    sub.set_defaults(func=stats)

    sub = commands.add_parser(
        "diff",
        help="what routing a new registry would change, or (--events) what owners: all changes on events "
        "against most-specific (exit 1 if anything changes)",
    )
    sub.add_argument(
        "old", metavar="OLD", nargs="?", help="the registry in use (file or directory; several joined by commas)"
    )
    sub.add_argument("new", metavar="NEW", nargs="?", help="the new registry")
    sub.add_argument(
        "--events", metavar="FILE",
        help="IntelMQ events, one JSON object a line (a file output's file): route each under both owners rules "
        f"with the registry OLD (default: {DEFAULT_DATABASE}), whatever constituency it carries already",
    )  # fmt: skip
    sub.add_argument("--match-asn", action="store_true", help="with --events: as the expert's match_asn: true")
    common(sub, database=False)
    sub.set_defaults(func=diff)

    sub = commands.add_parser(
        "export",
        help="write a constituency's claims for the hub: networks, domains, ASNs, never contacts",
        description="Write, from the CERT's full registry, the claims file (JSON) of one constituency, checked with "
        "the loader the hub uses (harmonization/claims.md).",
    )
    sub.add_argument("--claims", required=True, metavar="KEY", help="the constituency whose claims to write, e.g. ibd")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the claims file to write (JSON)")
    sub.add_argument(
        "--organisations", choices=ORGANISATIONS, default="none",
        help="none (default): every asset is the constituency's own (cert:KEY); ids: with its organisations' ids; "
        "names: with their ids and names",
    )  # fmt: skip
    sub.add_argument("--version", metavar="LABEL", help="the claims' version label (default: the registry's version)")
    common(sub)
    sub.set_defaults(func=export)

    from intelmq_nsm.cli.constituency_import import add_import_parser  # the import actions live in their own module

    add_import_parser(commands)

    from intelmq_nsm.cli.disputes import add_disputes_parser

    add_disputes_parser(commands)

    from intelmq_nsm.cli.stale import add_stale_parser

    add_stale_parser(commands)
