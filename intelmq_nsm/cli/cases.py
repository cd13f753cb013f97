"""``intelmq-nsm cases``: who owns which case, and with whom it is shared (list, show, assign,
share, unshare).

The case file is the intake collector's ``case_file`` (by default ``nsm-cases.sqlite`` in
IntelMQ's state folder, shared by every intake of the host). Researchers are named as the
token file names them; with ``--tokens FILE`` a name is checked against that file and a
token id stands for its researcher.
"""

import os
from contextlib import closing

from intelmq_nsm.auth.tokens import TokenFileError, read_entries
from intelmq_nsm.cli.terminal import say, say_json, warn
from intelmq_nsm.intake.cases import CASE_FILE_NAME, CaseBook, CaseTaken, UnknownCase, hand_over


def default_case_file() -> str:
    from intelmq import VAR_STATE_PATH

    return os.path.join(VAR_STATE_PATH, CASE_FILE_NAME)


class _Refused(Exception):
    pass


def _researcher(value: str, tokens_file) -> str:
    """The researcher ``value`` names: itself, or with a token file the researcher of the
    token id ``value``, and then a name the file knows."""
    value = value.strip()
    if not value:
        raise _Refused("The researcher's name is empty.")
    if not tokens_file:
        return value
    try:
        entries = read_entries(tokens_file)
    except TokenFileError as exc:
        raise _Refused(str(exc)) from None
    for entry in entries:
        if entry.id == value:
            return entry.researcher
    if value not in {entry.researcher for entry in entries}:
        raise _Refused(f"{tokens_file} has no token of researcher {value!r} and no token with that id.")
    return value


def _shown(case: dict) -> str:
    shared = f"; shared with {', '.join(case['shared_with'])}" if case["shared_with"] else ""
    return f"{case['case_id']}  owner {case['owner']} (by {case['assigned_by']}){shared}"


def _list(args, book: CaseBook) -> int:
    cases = book.cases()
    if args.json:
        say_json(cases)
    else:
        for case in cases:
            say(_shown(case))
    return 0


def _show(args, book: CaseBook) -> int:
    case = book.case(args.case)
    if case is None:
        raise _Refused(f"Case {args.case!r} has no owner yet.")
    if args.json:
        say_json(case)
    else:
        say(_shown(case))
    return 0


def _assign(args, book: CaseBook) -> int:
    researcher = _researcher(args.to, args.tokens)
    previous = book.assign(args.case, researcher, transfer=args.transfer)
    if previous and previous != researcher:
        say(f"Case {args.case} belongs to {researcher} now, no longer to {previous}.")
        warn(
            f"Findings the ledgers recorded from {previous}'s reports keep {previous} as their reporter: "
            f"only {previous}'s not-vulnerable results close them."
        )
    else:
        say(f"Case {args.case} belongs to {researcher}.")
    return 0


#: share and unshare: the change, and what is said when it changed and when it did not.
_SHARING = {
    "share": (
        CaseBook.share,
        "Case {case} is shared with {who}: they may report on it and read its figures.",
        "{who} could already report on case {case}.",
    ),
    "unshare": (
        CaseBook.unshare,
        "Case {case} is no longer shared with {who}.",
        "Case {case} was not shared with {who}.",
    ),
}


def _sharing(args, book: CaseBook) -> int:
    change, changed, unchanged = _SHARING[args.action]
    researcher = _researcher(args.with_, args.tokens)
    said = changed if change(book, args.case, researcher) else unchanged
    say(said.format(case=args.case, who=researcher))
    return 0


def _run(action):
    def run(args) -> int:
        path = args.file or default_case_file()
        if action in (_list, _show) and not os.path.exists(path):
            warn(f"intelmq-nsm cases {args.action}: {path} does not exist: no case has an owner yet.")
            return 0 if action is _list else 1
        try:
            with closing(CaseBook(path)) as book:
                return action(args, book)
        except CaseTaken:
            warn(
                f"intelmq-nsm cases {args.action}: case {args.case!r} belongs to another researcher; "
                "--transfer moves it (or share it instead)."
            )
            return 1
        except UnknownCase:
            warn(f"intelmq-nsm cases {args.action}: case {args.case!r} has no owner yet: assign it first.")
            return 1
        except _Refused as exc:
            warn(f"intelmq-nsm cases {args.action}: {exc}")
            return 1
        except OSError as exc:
            warn(f"intelmq-nsm cases {args.action}: the case file {path} cannot be used: {exc}.")
            return 2
        finally:
            if os.path.exists(path):
                hand_over(path)

    return run


def register(subparsers) -> None:
    parser = subparsers.add_parser("cases", help="who owns which researchers' case and with whom it is shared")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(sub, tokens=False):
        sub.add_argument("--file", help=f"the intake's case_file (default: {CASE_FILE_NAME} in IntelMQ's state folder)")
        if tokens:
            sub.add_argument(
                "--tokens", metavar="FILE", help="the intake's token file: check the researcher, or name it by token id"
            )

    listing = actions.add_parser("list", help="every case with its owner and shares")
    common(listing)
    listing.add_argument("--json", action="store_true", help="print the listing as JSON")
    listing.set_defaults(func=_run(_list))

    show = actions.add_parser("show", help="one case's owner and shares")
    common(show)
    show.add_argument("case", help="the case id, e.g. DIVD-2024-00012")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(func=_run(_show))

    assign = actions.add_parser("assign", help="give a case its owner (before its first submission, or to correct it)")
    common(assign, tokens=True)
    assign.add_argument("case", help="the case id")
    assign.add_argument(
        "--to", required=True, metavar="RESEARCHER", help="the researcher (or, with --tokens, token id)"
    )
    assign.add_argument("--transfer", action="store_true", help="take it from the researcher who owns it now")
    assign.set_defaults(func=_run(_assign))

    for name, verb in (("share", "let"), ("unshare", "no longer let")):
        sub = actions.add_parser(name, help=f"{verb} another researcher report on a case and read its figures")
        common(sub, tokens=True)
        sub.add_argument("case", help="the case id")
        sub.add_argument(
            "--with",
            dest="with_",
            required=True,
            metavar="RESEARCHER",
            help="the researcher (or, with --tokens, token id)",
        )
        sub.set_defaults(func=_run(_sharing))
