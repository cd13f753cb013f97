"""``intelmq-nsm tokens``: manage the intake collector's researcher tokens (add, list, revoke), and
the feedback service's: its ticket system's, its operators', and at a hub its CERTs'."""

from intelmq_nsm.auth.tokens import TokenFileError, add_token, read_entries, revoke_token
from intelmq_nsm.cli.terminal import say, say_json, warn


def _add(args) -> int:
    codes = [code.strip() for value in args.feed_code or [] for code in value.split(",") if code.strip()]
    try:
        entry, token = add_token(
            args.file,
            args.researcher,
            codes,
            feed_name=args.feed_name,
            comment=args.comment,
            expires=args.expires,
            constituency=args.constituency,
        )
    except (ValueError, TokenFileError) as exc:
        warn(f"intelmq-nsm tokens add: {exc}")
        return 2
    if args.json:
        shown = {
            "id": entry.id,
            "researcher": entry.researcher,
            "feed_codes": entry.feed_codes,
            "expires": entry.expires,
            "constituency": entry.constituency,
            "token": token,
        }
        say_json(shown, indent=None)
    else:
        until = f", expires {entry.expires}" if entry.expires else ""
        bound = f", for constituency {entry.constituency}" if entry.constituency else ""
        say(f"Token {entry.id} for {entry.researcher} (feed codes: {', '.join(entry.feed_codes)}{bound}{until}):")
        say(token)
        warn("Hand it to the researcher now over a safe channel: it is stored only as a hash.")
    return 0


def _list(args) -> int:
    try:
        entries = read_entries(args.file)
    except TokenFileError as exc:
        warn(f"intelmq-nsm tokens list: {exc}")
        return 2
    rows = [
        {
            "id": e.id,
            "researcher": e.researcher,
            "feed_name": e.feed_name,
            "feed_codes": e.feed_codes,
            "created": e.created,
            "revoked": e.revoked,
            "expires": e.expires,
            "expired": e.expired(),
            "constituency": e.constituency,
            "comment": e.comment,
        }
        for e in entries
    ]
    if args.json:
        say_json(rows)
        return 0
    for row in rows:
        if row["revoked"]:
            state = f"revoked {row['revoked']}"
        elif row["expired"]:
            state = f"expired {row['expires']}"
        else:
            state = f"active until {row['expires']}" if row["expires"] else "active"
        codes = f"[{', '.join(row['feed_codes'])}]" + (
            f"  constituency {row['constituency']}" if row["constituency"] else ""
        )
        say(f"{row['id']}  {row['researcher']}  {codes}  created {row['created']}  {state}")
    return 0


def _revoke(args) -> int:
    try:
        entry = revoke_token(args.file, args.id)
    except (KeyError, TokenFileError) as exc:
        warn(f"intelmq-nsm tokens revoke: {exc.args[0]}")
        return 1
    say(f"Token {entry.id} of {entry.researcher} is revoked since {entry.revoked}.")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("tokens", help="manage the intake collector's researcher tokens")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create a token for a researcher organisation and print it once")
    add.add_argument("--file", required=True, help="the token file (JSON, or YAML if it ends in .yaml/.yml)")
    add.add_argument("--researcher", required=True, help="the organisation, becomes feed.provider, e.g. DIVD")
    add.add_argument(
        "--feed-code",
        action="append",
        help="feed code(s) it may use (repeat or comma-separate); required unless --constituency",
    )
    add.add_argument("--feed-name", help="feed.name of its reports (default: the researcher's name)")
    add.add_argument("--comment", default="", help="a note for operators, e.g. who holds the token")
    add.add_argument(
        "--expires", help="when the token stops working: ISO 8601 date or time, e.g. 2027-01-31 (UTC unless given)"
    )
    add.add_argument(
        "--constituency",
        metavar="KEY",
        help="a downstream CERT's token for a hub's POST /v1/outcomes, bound to this constituency key (e.g. ibd)",
    )
    add.add_argument("--json", action="store_true", help="print id and token as JSON")
    add.set_defaults(func=_add)

    listing = actions.add_parser("list", help="list tokens (ids, researchers, feed codes; never secrets)")
    listing.add_argument("--file", required=True, help="the token file")
    listing.add_argument("--json", action="store_true", help="print the listing as JSON")
    listing.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("--file", required=True, help="the token file")
    revoke.add_argument("id", help="the token id (8 hex digits, the part after nsm_)")
    revoke.set_defaults(func=_revoke)
