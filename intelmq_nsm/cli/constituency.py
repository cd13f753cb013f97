"""``intelmq-nsm constituency``: validate, query and compare constituency registries.

Exit codes: 0 success (``lookup``: every value matched; ``diff``: no routing changes),
1 the registry is invalid (or ``diff``: routing changes), 2 wrong usage,
3 (``lookup`` only) at least one value matched nothing.
"""

import json
import sys
from datetime import date

from intelmq_nsm.constituency import RegistryError, load_registry
from intelmq_nsm.constituency.values import parse_asn, parse_ip, utc_today

DEFAULT_DATABASE = "/opt/intelmq/var/lib/bots/nsm-constituency"


def _load(paths, args):
    """The registry, or None after printing why it is invalid."""
    try:
        registry = load_registry(paths, include_builtin=not args.no_builtin, today=args.date)
    except RegistryError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        errors = sum(1 for i in exc.issues if i.level == "error")
        print(f"Invalid registry: {errors} error(s).", file=sys.stderr)
        return None
    for issue in registry.issues:
        print(issue, file=sys.stderr)
    return registry


def validate(args) -> int:
    registry = _load(args.files, args)
    if registry is None:
        return 1
    stats = registry.stats()
    print(
        f"Valid: {stats['organisations']} organisations, {stats['networks']} networks, {stats['domains']} domains, "
        f"{stats['asns']} ASNs, {stats['exclusions']} exclusions; version {stats['version']}."
    )
    return 0


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


def lookup(args) -> int:
    registry = _load(args.database or [DEFAULT_DATABASE], args)
    if registry is None:
        return 1
    unmatched = 0
    results = []
    for value in args.values:
        field = _field_for(value)
        routes = registry.index.decide([(field, value)], match_asn=True, day=args.date)
        unmatched += not routes
        results.append(
            {
                "value": value,
                "field": field,
                "routes": [
                    {
                        "constituency": r.constituency,
                        "organisations": r.organisation_dicts(),
                        "matches": [m.as_event_dict() for m in r.matches],
                        "tie": r.tie,
                    }
                    for r in routes
                ],
            }
        )
    if args.json:
        print(json.dumps({"registry_version": registry.version, "results": results}, indent=2, ensure_ascii=False))
    else:
        for result in results:
            if not result["routes"]:
                print(f"{result['value']}: no match; the event would leave on path _default.")
            for route in result["routes"]:
                names = ", ".join(f"{o['id']} {o['name']} ({o['kind']})" for o in route["organisations"])
                print(f"{result['value']}: constituency {route['constituency']}: {names}")
                for m in route["matches"]:
                    note = f", note: {m['note']}" if m["note"] else ""
                    why = f"{m['kind']} {m['matched']} belongs to {m['organisation']}"
                    print(f"    because {why} (source {m['source']}{note})")
                if route["tie"]:
                    print(f"    tie between {', '.join(route['tie'])}: all of them are tagged")
    return 3 if unmatched else 0


def stats(args) -> int:
    registry = _load(args.database or [DEFAULT_DATABASE], args)
    if registry is None:
        return 1
    data = registry.stats()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


def diff(args) -> int:
    from intelmq_nsm.constituency.diff import changes

    old = _load(args.old.split(","), args)
    new = _load(args.new.split(","), args)
    if old is None or new is None:
        return 2
    lines = changes(old, new, args.date or utc_today())
    for line in lines:
        print(line)
    print(f"{len(lines)} routing change(s) from {old.version} to {new.version}.")
    return 1 if lines else 0


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

    sub = commands.add_parser("validate", help="check registry files; print every problem with file, line and field")
    sub.add_argument("files", nargs="+", metavar="FILE")
    common(sub, database=False)
    sub.set_defaults(func=validate)

    sub = commands.add_parser("lookup", help="who owns an IP, domain, URL or ASN, and why")
    sub.add_argument("values", nargs="+", metavar="VALUE")
    sub.add_argument("--json", action="store_true", help="print JSON")
    common(sub)
    sub.set_defaults(func=lookup)

    sub = commands.add_parser("stats", help="count the registry's organisations, networks, domains and ASNs")
    sub.add_argument("--json", action="store_true", help="print JSON")
    common(sub)
    sub.set_defaults(func=stats)

    sub = commands.add_parser("diff", help="what routing a new registry would change (exit 1 if anything changes)")
    sub.add_argument("old", metavar="OLD", help="the registry in use (file or directory; several joined by commas)")
    sub.add_argument("new", metavar="NEW", help="the new registry")
    common(sub, database=False)
    sub.set_defaults(func=diff)

    from intelmq_nsm.cli.constituency_import import add_import_parser  # the import actions live in their own module

    add_import_parser(commands)
