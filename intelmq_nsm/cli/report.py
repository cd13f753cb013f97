"""``intelmq-nsm check-report``: read a report as the parser would and list every problem."""

import json
from pathlib import Path


def check_report(data: bytes, fmt: str = "auto", case=None, limit: int = 2000) -> tuple:
    """Parse a report's bytes as the report parser does, without a pipeline.

    Returns ``(format, findings, problems)``: the number of findings that would become
    events (before duplicates are merged) and a list of sentences, one per problem.
    """
    from intelmq.lib.exceptions import IntelMQException
    from intelmq.lib.message import Event

    from intelmq_nsm.formats import RecordError, decode_report, detect_format
    from intelmq_nsm.formats.case import combine
    from intelmq_nsm.formats.nuclei import NotAFinding
    from intelmq_nsm.formats.reader import ReportError, open_report

    text = decode_report(data)
    try:
        fmt = detect_format(text) if fmt == "auto" else fmt
        opened = open_report(fmt, text, None, case, limit)
    except (ValueError, ReportError) as exc:
        return fmt, 0, [str(exc)]
    problems, findings = [], 0
    shared = Event()
    for key, value in opened.shared.items():
        try:
            shared.add(key, value)
        except IntelMQException:
            problems.append(f"The case's {key} {value!r} is not accepted by IntelMQ.")
    for record in opened.records:
        try:
            if record.error:
                raise record.error
            fields = combine(opened.shared, opened.map_record(record.data))
            event = Event()
            for key, value in fields.items():
                try:
                    event.add(key, value)
                except (IntelMQException, ValueError, TypeError):
                    raise RecordError(key, f"{str(value)[:80]!r} is not a valid value for {key}") from None
        except NotAFinding:
            continue
        except RecordError as exc:
            problems.append(f"Record {record.number}: field {exc.field!r} {exc.reason}.")
            continue
        findings += 1
    return fmt, findings, problems


def run(args) -> int:
    case = json.loads(Path(args.case).read_text(encoding="utf-8")) if args.case else None
    fmt, findings, problems = check_report(Path(args.file).read_bytes(), args.format, case)
    for problem in problems:
        print(problem)
    print(f"{args.file}: {fmt}, {findings} findings would become events, {len(problems)} problems.")
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
