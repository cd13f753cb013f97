"""Which format a report is in, from its first lines (no report is read whole for it)."""

import json
import re

from intelmq_nsm.formats.divd_csv import DIVD_CSV_COLUMNS
from intelmq_nsm.formats.record import DIVD_CSV, NSM_REPORT, NUCLEI

_SCHEMA_KEY = re.compile(r'"schema"\s*:\s*"([^"\\]{0,100})"')
# How much of a report detection looks at: enough for a nuclei line with a long response
# or the head of an NSM document, little enough to stay cheap on a large report.
_SNIFF = 1 << 20
# How many lines may be broken before nuclei's first good line.
_NUCLEI_PROBE = 20
_NUCLEI_KEY_WINDOW = 4096


def _first_lines(text: str, count: int, window: int) -> list:
    """The first ``count`` non-blank lines, each as ``(head, start, stop)``: its first
    ``window`` characters, stripped, and its span in ``text``. Only "\n" ends a line
    (str.splitlines() also splits on characters JSON strings may hold), and no line is
    copied whole (a one-line NSM document may be hundreds of megabytes)."""
    lines, start, end = [], 0, len(text)
    while start < end and len(lines) < count:
        newline = text.find("\n", start)
        stop = end if newline < 0 else newline + 1
        head = text[start : min(stop, start + window)].strip()
        if head:
            lines.append((head, start, stop))
        start = stop
    return lines


def _is_nuclei_line(text: str, head: str, start: int, stop: int) -> bool:
    # nuclei writes "template-id" among its first keys; only such lines are decoded.
    if not head.startswith("{") or '"template-id"' not in head:
        return False
    try:
        data = json.loads(text[start:stop])
    except ValueError:
        return False
    return isinstance(data, dict) and "template-id" in data


def detect_format(text: str) -> str:
    """Name the format of a report: ``"nsm-report/1"``, ``"nuclei"`` or ``"divd-csv"``.

    Raises ValueError with a sentence saying what was found instead.
    """
    text = text.lstrip("\ufeff")
    head = _first_lines(text, _NUCLEI_PROBE, _NUCLEI_KEY_WINDOW)
    if not head:
        raise ValueError("The report is empty.")
    first = head[0][0]
    # A broken first line must not hide a nuclei report: the parser reports that line.
    if any(_is_nuclei_line(text, *line) for line in head):
        return NUCLEI
    if first.startswith("{"):
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
            'nor nuclei JSON lines (no "template-id" in its first lines).'
        )
    header = [column.strip().strip('"').lower() for column in first.split(",")]
    if "ip" in header and set(header) <= set(DIVD_CSV_COLUMNS) and len(set(header)) == len(header):
        return DIVD_CSV
    raise ValueError(
        f"The report is in no known format: its first line {first[:80]!r} is neither JSON "
        f"nor a DIVD CSV header ({','.join(DIVD_CSV_COLUMNS)})."
    )
