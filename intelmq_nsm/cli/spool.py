"""``intelmq-nsm spool``: inspect a digest output's spool and act on failed digests and
unreachable contacts."""

import datetime

from intelmq_nsm.cli.terminal import fail, say, say_csv, say_json, say_lines, warn


def _time(value) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).isoformat(timespec="seconds")


def _open(args):
    from intelmq_nsm.digest.spool import DigestSpool

    return DigestSpool(args.spool_file)


def _resolve(spool, prefix: str) -> str:
    """A digest id from its full id or an unambiguous prefix."""
    matches = [d["id"] for d in spool.digests() if d["id"].startswith(prefix)]
    if len(matches) != 1:
        raise fail(f"{len(matches)} digests match {prefix!r}; give more of the id.")
    return matches[0]


def _contacts(spool):
    from intelmq_nsm.digest.contacts import ContactBook

    return ContactBook(spool.db)


def cmd_list(args) -> int:
    from intelmq_nsm.digest.health import refused_changes

    spool = _open(args)
    digests = spool.digests(args.state)
    unreachable = _contacts(spool).rows()
    refused = refused_changes(args.spool_file)
    if args.json:
        say_json({"counts": spool.counts(), "digests": digests, "unreachable": unreachable, "refused": refused})
        return 0
    counts = spool.counts()
    say(
        f"{counts['pending']} pending, {counts['attempting']} attempting, {counts['delivered']} delivered,"
        f" {counts['failed']} failed digests;"
        f" {counts['waiting_findings']} findings not yet in a digest."
    )
    if counts.get("failed_arrivals"):
        say(f"{counts['failed_arrivals']} arrived events could not be filed (the output's log says why).")
    for d in digests:
        say(
            f"{d['id'][:16]}  {d['state']:<9}  {d['org_id']:<10} {d['constituency']:<8} {d['event_count']:>5} findings"
            f"  attempts {d['attempts']}  created {_time(d['created'])}  next {_time(d['next_attempt'])}"
            + (f"  attempt started {_time(d['attempt_started'])}" if d["state"] == "attempting" else "")
        )
        if d["last_error"]:
            say(f"    last error: {d['last_error']}")
    if unreachable:
        say(f"{len(unreachable)} unreachable contact(s), who get no digests until cleared (spool FILE contacts):")
        _print_contacts(unreachable)
    if refused:
        say(f"{len(refused)} change(s) the hub refused; kept here, not sent again:")
        for r in refused:
            say(
                f"  {_time(r['at'])}  {r['change_id']}  finding {r['upstream_finding_id']} ({r['finding_id']})"
                f"  {r['state']}  to {r['upstream']}  HTTP {r['status']}: {r['reason']}"
            )
    return 0


def _print_contacts(rows) -> None:
    for c in rows:
        say(
            f"  {c['address']}  of {c['org_id'] or '-'}  since {_time(c['since'])}  last {_time(c['last_failure'])}"
            f"  ({c['source']}, {c['failures']} failure(s)): {c['reason']}"
        )


def cmd_contacts(args) -> int:
    book = _contacts(_open(args))
    if args.clear:
        cleared = [address for address in args.clear if book.clear(address)]
        say(f"{len(cleared)} contact(s) cleared; digests go to them again: {', '.join(cleared) or '-'}.")
        return 0 if len(cleared) == len(args.clear) else 1
    rows = book.rows()
    if args.json:
        say_json(rows)
    elif rows:
        say(f"{len(rows)} unreachable contact(s):")
        _print_contacts(rows)
    else:
        say("No unreachable contacts.")
    return 0


def cmd_bounces(args) -> int:
    from intelmq_nsm.digest import bounces

    if not args.files and not args.maildir:
        raise fail("Give the bounce mails as files, or --maildir DIR.")
    book = _contacts(_open(args))
    marked = bounces.read_files(book, args.files)
    if args.maildir:
        marked += bounces.read_maildir(book, args.maildir)
    for bounce in marked:
        say(f"{bounce.recipient}: unreachable ({bounce.reason}; digest {bounce.digest_id[:16] or 'unknown'})")
    say(f"{len(marked)} contact(s) marked unreachable.")
    return 0


def cmd_show(args) -> int:
    from intelmq_nsm.digest import render

    spool = _open(args)
    digest = spool.load(_resolve(spool, args.digest))
    if args.format == "json":
        say_json(render.as_document(digest), ensure_ascii=False)
    elif args.format == "csv":
        say_csv(render.to_csv(digest))
    else:
        # As the organisation reads it: its own language unless one is asked for.
        say_lines(render.to_text(digest, args.language or digest.organisation.get("language") or "nl"))
    warn(f"# state {digest.state}, attempts {digest.attempts}, last error: {digest.last_error or '-'}")
    return 0


def cmd_retry(args) -> int:
    spool = _open(args)
    ids = [d["id"] for d in spool.digests("failed")] if args.all_failed else [_resolve(spool, args.digest)]
    done = [i for i in ids if spool.retry(i)]
    say(f"{len(done)} digest(s) queued for delivery again; the running bot sends them within its delivery interval.")
    return 0 if done or args.all_failed else 1


def cmd_purge(args) -> int:
    spool = _open(args)
    ids = [_resolve(spool, d) for d in args.digest]
    count = spool.purge(older_than=args.older_than_days * 86400, state=args.state, digest_ids=ids)
    say(f"Purged {count} {args.state} digest(s) and their findings.")
    return 0


def cmd_flush(args) -> int:
    spool = _open(args)
    formed = spool.form_digests(max_events=args.max_events, max_age=0, flush=True)
    say(f"Formed {len(formed)} digest(s) from the waiting findings; the running bot delivers them.")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("spool", help="inspect a digest output's spool and act on failed digests")
    parser.add_argument("spool_file", help="the spool file (the bot's spool_file parameter)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="digests with state, attempts and last error")
    p.add_argument("--state", choices=("pending", "attempting", "delivered", "failed"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("show", help="one digest rendered as text, JSON or CSV")
    p.add_argument("digest", help="digest id or an unambiguous prefix")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.add_argument("--language", choices=("nl", "en"), help="default: the organisation's, else nl")
    p.set_defaults(func=cmd_show)

    p = actions.add_parser("retry", help="send a failed digest again")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("digest", nargs="?", help="digest id or an unambiguous prefix")
    group.add_argument("--all-failed", action="store_true", help="every failed digest")
    p.set_defaults(func=cmd_retry)

    p = actions.add_parser("purge", help="delete delivered (or failed) digests and their findings")
    p.add_argument("digest", nargs="*", help="only these digests (ids or prefixes)")
    p.add_argument("--state", choices=("delivered", "failed"), default="delivered")
    p.add_argument("--older-than-days", type=float, default=30.0)
    p.set_defaults(func=cmd_purge)

    p = actions.add_parser("contacts", help="contacts marked unreachable (refused or bounced); clear a mark")
    p.add_argument("--clear", nargs="+", metavar="ADDRESS", help="digests go to these addresses again")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contacts)

    p = actions.add_parser("bounces", help="read delivery status notifications (RFC 3464): mark who bounced")
    p.add_argument("files", nargs="*", metavar="FILE", help="bounce mails, one per file (.eml)")
    p.add_argument("--maildir", metavar="DIR", help="a Maildir: its new mails are read and moved to cur")
    p.set_defaults(func=cmd_bounces)

    p = actions.add_parser("flush", help="form digests now from every waiting finding")
    p.add_argument("--max-events", type=int, default=500, help="findings per digest at most (as the bot's max_events)")
    p.set_defaults(func=cmd_flush)
