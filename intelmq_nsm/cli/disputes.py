"""``intelmq-nsm constituency disputes``: findings an owner answered "niet van ons" (not ours),
the registry asset that routed them there, and the correction an operator accepts or rejects.

The ledger is the digest output's spool file (or its ``ledger_url``). ``--accept ID`` writes
the correction to ``--corrections FILE``, a registry document the constituency expert
reads like any of its registry files (give it among the expert's ``database`` paths).
"""

from intelmq_nsm.cli.ledger import _open, _time
from intelmq_nsm.cli.terminal import say, say_csv, say_json, warn

CSV_COLUMNS = ("id", "finding_id", "organisation", "target", "case_id", "matched", "source", "comment", "suggestion")


def _suggested(s: dict) -> str:
    if s["change"] == "exclusion":
        kind = "network" if "network" in s else "domain"
        return f"exclude {kind} {s[kind]}"
    if s["change"] == "reassignment":
        kind = "network" if "network" in s else "domain"
        return f"assign {kind} {s[kind]} to {s['organisation']}"
    return s.get("reason", s["change"])


def _text(disputes) -> list:
    lines = []
    for d in disputes:
        lines.append(f"{d['id']}  {d['finding_id']}  {d['organisation']} ({d['organisation_name']})  {d['target']}")
        by = f" by {d['reported_by']}" if d["reported_by"] else ""
        lines.append(f"  case {d['case_id'] or '-'}, disputed {_time(d['disputed_at'])}{by}: {d['comment'] or '-'}")
        for m in d["matches"]:
            lines.append(
                f"  matched {m['kind']} {m['matched']} ({m['field']} {m['value']}), source {m['source'] or 'manual'}"
                + (f", note: {m['note']}" if m["note"] else "")
            )
        lines.append(f"  suggested: {_suggested(d['suggestion'])}")
        if d["decision"]:
            lines.append(f"  {d['decision']['decision']} {_time(d['decision']['at'])}: {d['decision']['note'] or '-'}")
    return lines or ["No disputed findings."]


def _rows(disputes):
    """The CSV's rows, the header first (``say_csv`` makes the cells inert and formula-safe)."""
    yield CSV_COLUMNS
    for d in disputes:
        first = d["matches"][0] if d["matches"] else {}
        row = {
            **d,
            "matched": f"{first.get('kind', '')} {first.get('matched', '')}".strip(),
            "source": first.get("source", ""),
            "suggestion": _suggested(d["suggestion"]),
        }
        yield [row[c] for c in CSV_COLUMNS]


def disputes(args) -> int:
    from intelmq_nsm.feedback.disputes import DisputeError, Disputes

    ledger = _open(args)
    try:
        book = Disputes(ledger, args.corrections)
        if args.accept:
            change = book.accept(args.accept, assign_to=args.assign_to, note=args.note or "")
            say(f"Accepted {args.accept}: {_suggested(change)}; written to {args.corrections}.")
            return 0
        if args.reject:
            book.reject(args.reject, args.note or "")
            say(f"Rejected {args.reject}; the note is kept.")
            return 0
        found = book.list(include_decided=args.all)
    except DisputeError as exc:
        warn(exc)
        return 2
    finally:
        ledger.close()
    if args.json:
        say_json(found, ensure_ascii=False, sort_keys=True)
    elif args.csv:
        say_csv(_rows(found))
    else:
        for line in _text(found):
            say(line)
    return 0


def add_disputes_parser(commands) -> None:
    sub = commands.add_parser(
        "disputes",
        help="findings owners answered 'not ours': the matched asset, the suggested registry change",
        description=__doc__.splitlines()[0],
    )
    sub.add_argument("database", metavar="LEDGER", help="the digest output's spool file or a postgresql:// URL")
    sub.add_argument("--ledger", help="the ledger's name (the output's ledger_name) when the database holds several")
    sub.add_argument("--corrections", metavar="FILE", help="the registry corrections file --accept writes to")
    action = sub.add_mutually_exclusive_group()
    action.add_argument("--accept", metavar="ID", help="accept the dispute: write its correction")
    action.add_argument("--reject", metavar="ID", help="reject the dispute, keeping --note")
    sub.add_argument("--assign-to", metavar="ORG", help="with --accept: re-assign the asset to this organisation")
    sub.add_argument("--note", help="the operator's note with --accept or --reject")
    sub.add_argument("--all", action="store_true", help="also list decided disputes")
    output = sub.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print CSV (formula-safe cells)")
    sub.set_defaults(func=disputes)
