"""``intelmq-nsm ledger``: what became of the findings a digest output notified.

The database is the digest output's spool file (where the ledger lives by default) or the
``ledger_url`` it was given (``postgresql://user@host/db``).
"""

import datetime
import time
from pathlib import Path

from intelmq_nsm.cli.terminal import fail, say, say_json

DAY = 86400.0


def _time(value) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).isoformat(timespec="seconds")


def _url(database: str) -> str:
    from intelmq_nsm.digest.ledger import sqlite_url

    if "://" in database:
        return database
    path = Path(database)
    if not path.exists():
        raise fail(f"No such ledger file: {database} (give a spool file or a postgresql:// URL).")
    return sqlite_url(path)


def _open(args):
    from intelmq_nsm.digest.ledger import Ledger, LedgerUnavailable

    try:
        ledger = Ledger(_url(args.database), name=args.ledger or "")
        if not args.ledger:
            names = ledger.names()
            if len(names) > 1:
                raise fail(f"The database holds the ledgers {', '.join(names)}: choose one with --ledger.")
            ledger.name = names[0] if names else ""
    except LedgerUnavailable as exc:
        raise fail(f"The ledger cannot be reached: {exc}") from None
    return ledger


def _print_json(value) -> None:
    say_json(value, ensure_ascii=False, sort_keys=True)


def cmd_list(args) -> int:
    ledger = _open(args)
    now = time.time()
    records = ledger.records(
        state=args.state,
        org_id=args.organisation,
        case_id=args.case,
        older_than=None if args.older_than_days is None else args.older_than_days * DAY,
        now=now,
        limit=args.limit,
    )
    for r in records:
        r.pop("last_event", None)
        r.pop("last_kind", None)
    if args.json:
        _print_json({"ledger": ledger.name, "findings": records})
        return 0
    say(f"{len(records)} findings in ledger {ledger.name!r}.")
    for r in records:
        say(
            f"{r['finding_id']}  {r['state']:<14} {r['abuse']:<11} {r['org_id']:<10} {r['case_id']:<18}"
            f" {r['target']:<24} seen {r['times_seen']}x  first {_time(r['first_seen'])}"
            f"  last {_time(r['last_seen'])}  notified {r['notifications']}x"
        )
    return 0


def cmd_show(args) -> int:
    ledger = _open(args)
    records = ledger.history_of(args.finding_id)
    if not records:
        raise fail(f"No finding {args.finding_id!r} in ledger {ledger.name!r}.")
    for r in records:
        r.pop("last_event", None)
        r.pop("last_kind", None)
    if args.json:
        _print_json({"ledger": ledger.name, "finding_id": args.finding_id, "organisations": records})
        return 0
    for r in records:
        say(
            f"{args.finding_id} for {r['org_id']} ({r['org_name']}), {r['abuse']}, case {r['case_id'] or '-'},"
            f" {r['target']}"
        )
        say(
            f"  state {r['state']}; seen {r['times_seen']} times, first {_time(r['first_seen'])},"
            f" last {_time(r['last_seen'])}; notified {r['notifications']} times ({r['reminders']} reminders)"
        )
        say("  history:")
        for h in r["history"]:
            ref = f" [{h['reference']}]" if h["reference"] else ""
            # An answer kept in the history only: what was asked, and that the state stayed.
            asked = f" (asked {h['requested']}, kept in the history)" if h.get("requested") else ""
            change = f"{h['old_state'] or '-'} -> {h['state']}{asked}"
            say(f"    {_time(h['at'])}  {change}  ({h['source']}) {h['note']}{ref}")
        say("  digests:")
        for d in r["digests"]:
            say(f"    {_time(d['delivered_at'])}  {d['kind']:<9} {d['digest_id']}")
    return 0


def cmd_stats(args) -> int:
    from intelmq_nsm.digest.ledger.stats import stats

    ledger = _open(args)
    result = stats(ledger)
    if args.json:
        _print_json({"ledger": ledger.name, **result})
        return 0
    for level, column in (("cases", "case_id"), ("constituencies", "constituency"), ("organisations", "org_id")):
        say(f"{level.capitalize()}:")
        say(
            f"  {'':<20} {'findings':>8} {'notified':>8} {'open':>6} {'fixed':>6} {'not seen':>8} {'reopened':>8}"
            "  days to fix"
        )
        for entry in result[level]:
            days = entry["days_to_fix"]
            fix = "-" if not days["count"] else f"median {days['median']}, p90 {days['p90']} (n={days['count']})"
            say(
                f"  {entry[column] or '-':<20} {entry['findings']:>8} {entry['notified']:>8} {entry['open']:>6}"
                f" {entry['fixed_verified']:>6} {entry['no_longer_seen']:>8} {entry['reopened']:>8}  {fix}"
            )
            if set(entry["by_kind"]) - {"vulnerable"}:
                kinds = ", ".join(
                    f"{kind} {c['findings']} (open {c['open']}, fixed {c['fixed_verified']},"
                    f" not seen {c['no_longer_seen']})"
                    for kind, c in entry["by_kind"].items()
                )
                say(f"  {'':<20} by kind: {kinds}")
    return 0


def cmd_outbox(args) -> int:
    """At a CERT: how far its outbox went to each hub, what waits, what a hub refused."""
    ledger = _open(args)
    boxes, refused = ledger.outboxes(), ledger.refused_outgoing()
    if args.json:
        _print_json({"ledger": ledger.name, "outboxes": boxes, "refused": refused})
        return 0
    if not boxes:
        say("No outbox: no change went to a hub yet (the output's upstream_url).")
    for box in boxes:
        say(
            f"{box['upstream']}: sent up to history id {box['sent_to']} ({_time(box['updated_at'])});"
            f" {box['waiting']} waiting"
        )
    for r in refused:
        say(
            f"  refused {_time(r['at'])}  {r['change_id']}  finding {r['upstream_finding_id']}  {r['state']}"
            f"  HTTP {r['status']}: {r['reason']}"
        )
    return 0


def register(subparsers) -> None:
    from intelmq_nsm.digest.ledger import STATES

    parser = subparsers.add_parser("ledger", help="what became of the findings: list, show, stats, outbox")
    parser.add_argument("database", help="the digest output's spool file, or its ledger_url")
    parser.add_argument("--ledger", help="the ledger's name (the bot's ledger_name, else its bot id)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="findings with state, times seen and notifications")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--organisation", help="organisation id, e.g. GM0363")
    p.add_argument("--case", help="case id")
    p.add_argument("--older-than-days", type=float, help="first seen at least this many days ago")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("show", help="one finding's whole history, per organisation")
    p.add_argument("finding_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = actions.add_parser("stats", help="per case, constituency and organisation: counts and days to fix")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = actions.add_parser("outbox", help="at a CERT: what went back to each hub, what waits, what a hub refused")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_outbox)
