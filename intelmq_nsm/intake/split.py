"""Edge validation and splitting of a submission into reports of bounded size.

Records stay whole: an NDJSON line, a CSV row (with its quoted newlines) or an NSM
report's finding is never cut. A CSV part repeats the header; an NSM report part repeats
the schema, case and reporter blocks with a slice of the findings. A single record larger
than the bound makes a part of its own. Record numbers count non-blank records from 1, as
the report parser does, so ``first_record`` lets the parser number records within the
whole submission.
"""

import json
import re
from dataclasses import dataclass

from intelmq_nsm.formats import DIVD_CSV, NSM_REPORT, detect_format
from intelmq_nsm.formats import divd_csv as divd_csv_format
from intelmq_nsm.formats import nsm_report as nsm_report_format
from intelmq_nsm.formats import nuclei as nuclei_format
from intelmq_nsm.formats.record import TOO_DEEP
from intelmq_nsm.formats.schema import validate_envelope, validate_finding

NDJSON = "application/x-ndjson"
JSON = "application/json"
CSV = "text/csv"
CONTENT_TYPES = (JSON, NDJSON, CSV)
#: Problems reported per submission at most; the rest are counted.
MAX_PROBLEMS = 100
# JSON's whitespace, found without copying the body (str.lstrip would).
_LEADING_SPACE = re.compile(r"[ \t\n\r]*")


class SubmissionError(ValueError):
    """A submission refused at the edge: ``problems`` is ``[(json_path_or_place, reason)]``."""

    def __init__(self, message: str, problems=()):
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class Part:
    """One report of a submission: its text, its first record's number and its record count."""

    text: str
    first_record: int
    records: int
    #: The case the report's case block names ("" without one).
    case_id: str = ""


class _Packer:
    """Packs records into parts of at most ``max_bytes`` (UTF-8) each, records whole."""

    def __init__(self, max_bytes: int, head: str = "", tail: str = "", separator: str = ""):
        self.max_bytes, self.head, self.tail, self.separator = max_bytes, head, tail, separator
        self.fixed = len(head.encode()) + len(tail.encode())
        self.parts, self.chunk, self.size, self.first, self.number = [], [], 0, 1, 0

    def add(self, record: str) -> None:
        self.number += 1
        size = len(record.encode()) + (len(self.separator) if self.chunk else 0)
        if self.chunk and self.fixed + self.size + size > self.max_bytes:
            self.flush()
            size = len(record.encode())
        if not self.chunk:
            self.first = self.number
        self.chunk.append(record)
        self.size += size

    def flush(self) -> None:
        if self.chunk:
            text = self.head + self.separator.join(self.chunk) + self.tail
            self.parts.append(Part(text, self.first, len(self.chunk)))
        self.chunk, self.size = [], 0

    def done(self) -> list:
        self.flush()
        return self.parts


def _problems_error(what: str, problems: list) -> SubmissionError:
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    suffix = f" ({more} more not shown)" if more > 0 else ""
    return SubmissionError(f"{what}: {len(problems)} problem(s){suffix}.", shown)


def split_ndjson(text: str, max_bytes: int) -> list:
    """JSON lines (nuclei's output): every non-blank line must be a JSON object."""
    packer = _Packer(max_bytes, separator="\n", tail="\n")
    problems = []
    # The parser's own reader: the same lines (LF only), the same checks, the same words.
    for record in nuclei_format.iter_records(text):
        if record.error is not None:
            problems.append((f"$[{record.number - 1}]", f"line {record.number} {record.error.reason}"))
            continue
        packer.add(record.raw)
    if problems:
        raise _problems_error("The NDJSON submission is not valid", problems)
    parts = packer.done()
    if not parts:
        raise SubmissionError("The NDJSON submission holds no records.")
    return parts


def split_csv(text: str, max_bytes: int) -> list:
    """A DIVD CSV: the header is checked and repeated at the top of every part."""
    try:
        fmt = detect_format(text)
    except ValueError as exc:
        raise SubmissionError(str(exc), [("header", str(exc).rstrip("."))]) from None
    if fmt != DIVD_CSV:
        raise SubmissionError(f"The submission is {fmt}, not a CSV report; send it with its own content type.")
    try:
        header, records = divd_csv_format.read_csv(text)
    except divd_csv_format.HeaderError as exc:
        raise SubmissionError(str(exc), [("header", str(exc).rstrip("."))]) from None
    problems, rows = [], []
    for record in records:
        if record.error is not None:
            problems.append((f"row {record.number}", f"{record.error.field} {record.error.reason}"))
        rows.append(record.raw if record.raw.endswith("\n") else record.raw + "\n")
    if problems:
        raise _problems_error("The CSV submission is not valid", problems)
    if not rows:
        raise SubmissionError("The CSV submission has a header but no rows.")
    packer = _Packer(max_bytes, head=header)
    for row in rows:
        packer.add(row)
    return packer.done()


def _not_json(reason: str) -> SubmissionError:
    return SubmissionError(f"The body is not valid JSON: {reason}.", [("$", f"is not valid JSON: {reason}")])


def split_nsm_report(text: str, max_bytes: int) -> list:
    """An NSM report: checked against the JSON Schema and cut into reports that each carry
    the schema, case and reporter blocks and a slice of the findings. The parser's
    streaming reader decodes one finding at a time (``json.loads`` of a large report costs
    several times its size), and each finding goes into its part as the researcher wrote it."""
    start = _LEADING_SPACE.match(text).end()
    if text[start : start + 1] != "{":
        # Not an object: decoded whole only to say whether it is JSON at all.
        try:
            json.loads(text)
        except ValueError as exc:
            raise _not_json(str(exc)) from None
        raise SubmissionError("The body is not a JSON object.", [("$", "is not a JSON object")])
    try:
        envelope, findings_start = nsm_report_format.read_envelope(text)
    except nsm_report_format.DocumentError as exc:
        raise _not_json(_syntax(str(exc))) from None
    findings = nsm_report_format.iter_findings(text, findings_start)
    if findings_start is not None:
        envelope["findings"] = []  # stands for the array, whose elements are checked one by one
    problems = validate_envelope(envelope)
    raws, count = [], 0
    for record in findings:
        if record.error is not None:
            raise _not_json(_syntax(record.error.reason))
        count += 1
        problems += validate_finding(record.data, prefix=f"$.findings[{record.number - 1}]")
        raws.append(record.raw)
    if findings_start is not None and not count:
        problems.append(("$.findings", "[] should be non-empty"))
    if problems:
        raise _problems_error(f"The NSM report does not follow the schema {NSM_REPORT}", problems)
    envelope.pop("findings", None)
    # "schema" first: the parser's format detection looks for it at the start.
    head_doc = {"schema": envelope.pop("schema"), **envelope}
    head = json.dumps(head_doc, ensure_ascii=False)[:-1] + ', "findings": ['
    packer = _Packer(max_bytes, head=head, tail="]}", separator=", ")
    for raw in raws:
        packer.add(raw)
    case_id = str((head_doc.get("case") or {}).get("id") or "")
    parts = packer.done()
    for part in parts:
        part.case_id = case_id
    return parts


def _syntax(message: str) -> str:
    """A reader's syntax message without its own lead-in and full stop."""
    message = message.rstrip(".")
    if message.startswith("Invalid JSON in "):
        where, _, reason = message[len("Invalid JSON in ") :].partition(": ")
        return f"{reason} (in {where})"
    return message[len("Invalid JSON: ") :] if message.startswith("Invalid JSON: ") else message


def split_submission(content_type: str, text: str, max_bytes: int) -> list:
    """Check and split a submission by its declared content type."""
    splitters = {JSON: split_nsm_report, NDJSON: split_ndjson, CSV: split_csv}
    if content_type not in splitters:
        raise ValueError(f"Unsupported content type {content_type!r}.")
    try:
        return splitters[content_type](text, max_bytes)
    except RecursionError:
        # The readers turn this into a record's or the document's error; this is the last
        # line for any other decoder on the way (a whole-body json.loads of a non-object).
        raise SubmissionError(f"The body is {TOO_DEEP}.", [("$", f"is {TOO_DEEP}")]) from None
