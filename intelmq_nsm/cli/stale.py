"""``intelmq-nsm constituency stale``: organisations whose contacts failed, or who answered
nothing, for N days (``intelmq_nsm.digest.stale``): candidates for a registry update."""

import time

from intelmq_nsm.cli.ledger import _open, _time
from intelmq_nsm.cli.terminal import say, say_json, warn


def cmd_stale(args) -> int:
    from intelmq_nsm.digest.contacts import ContactBook
    from intelmq_nsm.digest.stale import stale

    registry = None
    if args.registry:
        from intelmq_nsm.constituency import RegistryError, load_registry

        try:
            registry = load_registry(args.registry)
        except RegistryError as exc:
            warn(f"{exc} (intelmq-nsm constituency validate names every problem)")
            return 2
    book = ContactBook.open(args.spool_file)
    # The ledger is in the spool's file unless the output was given a ledger_url.
    args.database = args.ledger_url or args.spool_file
    ledger = _open(args)
    found = stale(book, ledger, args.days, now=time.time(), registry=registry)
    if args.json:
        say_json(found, ensure_ascii=False)
        return 1 if found else 0
    for org in found:
        say(f"{org['org_id']} {org['name']}")
        for contact in org["unreachable"]:
            say(f"  unreachable since {_time(contact['since'])}: {contact['address']} ({contact['reason']})")
        if org["silent"]:
            quiet = org["silent"]
            answered = _time(quiet["last_answer"]) if quiet["last_answer"] else "never"
            say(
                f"  silent: {quiet['findings']} finding(s) notified since {_time(quiet['since'])} without an answer"
                f" (last answer: {answered})"
            )
        if org["reachable"] is not None:
            say(f"  contacts in the registry still reachable: {', '.join(org['reachable']) or 'none'}")
    say(f"{len(found)} organisation(s) with contacts that failed or answered nothing for {args.days:g} days.")
    return 1 if found else 0


def add_stale_parser(commands) -> None:
    sub = commands.add_parser(
        "stale",
        help="organisations whose contacts failed (refused, bounced) or answered nothing for N days (exit 1 if any)",
    )
    sub.add_argument("spool_file", metavar="SPOOL", help="the digest output's spool file")
    sub.add_argument("--days", type=float, default=30.0, help="how long (default 30)")
    sub.add_argument("--ledger-url", help="the output's ledger_url, if its ledger is not in the spool's file")
    sub.add_argument(
        "--ledger", help="the ledger's name (the output's ledger_name or bot id), if the database has several"
    )
    sub.add_argument(
        "-d", "--database", dest="registry", action="append", metavar="PATH",
        help="the registry (file or directory, repeatable): names, and which registered contacts are still reachable",
    )  # fmt: skip
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(func=cmd_stale)
