"""Input formats of the report parser: detection, decoding and one module per format.

Each format module offers ``iter_records(text)`` (a generator of :class:`Record`, one per
finding, built lazily so that a report is never held twice in memory) and
``map_record(data, case)`` (a pure function from a parsed record to IntelMQ fields).
"""

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

NSM_REPORT = "nsm-report/1"
NUCLEI = "nuclei"
DIVD_CSV = "divd-csv"
FORMATS = (NSM_REPORT, NUCLEI, DIVD_CSV)

#: The columns of DIVD's enriched host CSV, in DIVD's order.
DIVD_CSV_COLUMNS = ("ip", "abuse", "prefix", "asn", "holder", "country", "city", "abuse_source")

_SCHEMA_KEY = re.compile(r'"schema"\s*:\s*"([^"\\]{0,100})"')
# How much of a report detection looks at: enough for a nuclei line with a long response
# or the head of an NSM document, little enough to stay cheap on a large report.
_SNIFF = 1 << 20


class RecordError(ValueError):
    """A record that cannot become an event: which field and why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class Record:
    """One finding of a report: its number (1-based), its own raw text, and either the
    parsed data or the error that stops it."""

    number: int
    raw: str
    data: Optional[Any] = None
    error: Optional[RecordError] = None


def decode_report(data: bytes) -> str:
    """Bytes of a report → text. A byte-order mark decides (UTF-8, UTF-16, UTF-32); without
    one UTF-8 is tried and Latin-1 is the fallback, which decodes any byte sequence, so
    that a spreadsheet's export loses no record to its encoding."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _first_line(text: str, limit: int = _SNIFF) -> str:
    head = text[:limit]
    for line in head.splitlines():
        if line.strip():
            return line.strip()
    return ""


def detect_format(text: str) -> str:
    """Name the format of a report: ``"nsm-report/1"``, ``"nuclei"`` or ``"divd-csv"``.

    Raises ValueError with a sentence saying what was found instead.
    """
    text = text.lstrip("\ufeff")
    first = _first_line(text)
    if not first:
        raise ValueError("The report is empty.")
    if first.startswith("{"):
        try:
            line = json.loads(first)
        except ValueError:
            line = None
        if isinstance(line, dict) and "template-id" in line:
            return NUCLEI
        # The spec asks for "schema" first; a document that puts it last is still found.
        match = _SCHEMA_KEY.search(text, 0, _SNIFF) or _SCHEMA_KEY.search(text)
        if match and match.group(1) == NSM_REPORT:
            return NSM_REPORT
        if match and match.group(1).startswith("nsm-report/"):
            raise ValueError(f"The report declares schema {match.group(1)!r}; this parser reads {NSM_REPORT!r}.")
        if match:
            raise ValueError(f"The report is JSON with schema {match.group(1)!r}, not an NSM report.")
        raise ValueError(
            'The report is JSON but neither an NSM report (no "schema": "nsm-report/1") '
            'nor nuclei JSON lines (no "template-id" in the first line).'
        )
    header = [column.strip().strip('"').lower() for column in first.split(",")]
    if "ip" in header and set(header) <= set(DIVD_CSV_COLUMNS) and len(set(header)) == len(header):
        return DIVD_CSV
    raise ValueError(
        f"The report is in no known format: its first line {first[:80]!r} is neither JSON "
        f"nor a DIVD CSV header ({','.join(DIVD_CSV_COLUMNS)})."
    )
