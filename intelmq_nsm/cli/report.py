"""``intelmq-nsm check-report``: read a report as the parser would and list every problem."""

import json
from pathlib import Path

from intelmq_nsm.cli.terminal import say


def check_report(data: bytes, fmt: str = "auto", case=None, limit: int = 2000) -> tuple:
    """Parse a report's bytes as the report parser does, without a pipeline.

    Returns ``(format, counts, problems)``: how many findings would become events (after
    duplicates are merged), ``counts["not_vulnerable"]`` of them rescans that found the
    system fixed, and a list of sentences, one per problem.
    """
    from intelmq.lib.message import Event

    from intelmq_nsm import event_contract as ec
    from intelmq_nsm.bots.parsers.report.events import EVENT, FAILED, ReportEvents
    from intelmq_nsm.formats import NOT_VULNERABLE, ReportError, decode_report, detect_format, open_report

    text = decode_report(data)
    counts = {"events": 0, "not_vulnerable": 0}
    try:
        fmt = detect_format(text) if fmt == "auto" else fmt
        events = ReportEvents(open_report(fmt, text, None, case, limit), Event())
    except (ValueError, ReportError) as exc:
        return fmt, counts, [str(exc)]
    problems = []
    for outcome in events:
        if outcome.kind == FAILED:
            problems.append(f"Record {outcome.number}: field {outcome.field!r} {outcome.reason}.")
        elif outcome.kind == EVENT:
            counts["events"] += 1
            counts["not_vulnerable"] += outcome.event.get(ec.RESULT) == NOT_VULNERABLE
    return fmt, counts, problems


def run(args) -> int:
    case = json.loads(Path(args.case).read_text(encoding="utf-8")) if args.case else None
    fmt, counts, problems = check_report(Path(args.file).read_bytes(), args.format, case)
    for problem in problems:
        say(problem)
    fixed = f" ({counts['not_vulnerable']} of them not vulnerable)" if counts["not_vulnerable"] else ""
    say(f"{args.file}: {fmt}, {counts['events']} findings would become events{fixed}, {len(problems)} problems.")
    return 1 if problems else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-report", help="check a researcher's report (NSM report, nuclei JSONL, DIVD CSV) as the parser reads it"
    )
    parser.add_argument("file", help="the report file")
    parser.add_argument(
        "--format", default="auto", choices=["auto", "nsm-report/1", "nuclei", "divd-csv"], help="force a format"
    )
    parser.add_argument("--case", help="a JSON file with case metadata (keys of the NSM report's case block)")
    parser.set_defaults(func=run)
