"""``intelmq-nsm spool``: inspect a digest output's spool and act on failed digests."""

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


def cmd_list(args) -> int:
    spool = _open(args)
    digests = spool.digests(args.state)
    if args.json:
        say_json({"counts": spool.counts(), "digests": digests})
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
        say_lines(render.to_text(digest, args.language))
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
    p.add_argument("--language", choices=("nl", "en"), default="nl")
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

    p = actions.add_parser("flush", help="form digests now from every waiting finding")
    p.add_argument("--max-events", type=int, default=500, help="findings per digest at most (as the bot's max_events)")
    p.set_defaults(func=cmd_flush)
