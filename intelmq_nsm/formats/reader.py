"""Open a report of any format as the fields its events share plus a stream of records,
each mapped to IntelMQ fields by a pure function; and the fingerprints that drop
identical findings. :mod:`intelmq_nsm.bots.parsers.report.events` turns the stream into events."""

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Optional

# Modules, not the package: the package's front door imports this one.
import intelmq_nsm.formats.divd_csv as divd_csv
import intelmq_nsm.formats.nsm_report as nsm_report
import intelmq_nsm.formats.nuclei as nuclei
from intelmq_nsm.formats.case import case_fields, case_problems, merge_case
from intelmq_nsm.formats.record import DIVD_CSV, NSM_REPORT, NUCLEI


class ReportError(ValueError):
    """The report as a whole cannot be parsed (unknown format, broken document, bad case)."""


@dataclass
class OpenedReport:
    format: str
    #: IntelMQ fields every event of the report shares (case, reporter).
    shared: dict
    records: Iterator
    #: record data → IntelMQ fields; raises RecordError, or NotAFinding to skip.
    map_record: Callable
    #: What goes before a record's own raw text to make it a report of its own (a CSV's
    #: header line; empty for the JSON formats, whose records stand alone).
    raw_prefix: str = ""


def open_report(
    fmt: str, text: str, report_case: Optional[dict], parameter_case: Optional[dict], evidence_limit: int
) -> OpenedReport:
    """Open ``text`` as format ``fmt``. Case metadata: see :mod:`intelmq_nsm.formats.case`."""
    if report_case is not None and not isinstance(report_case, dict):
        raise ReportError("The report's case metadata (extra.nsm.case) is not an object.")
    raw_prefix = ""
    try:
        if fmt == NSM_REPORT:
            envelope, records = nsm_report.read_report(text)
            case = merge_case(envelope.get("case"), report_case, parameter_case)
            reporter = envelope.get("reporter")
            mapper = lambda data: nsm_report.map_record(data, evidence_limit)  # noqa: E731
        elif fmt == NUCLEI:
            case, reporter = merge_case(report_case, parameter_case), None
            records = nuclei.iter_records(text)
            mapper = lambda data: nuclei.map_record(data, evidence_limit)  # noqa: E731
        elif fmt == DIVD_CSV:
            case, reporter = merge_case(report_case, parameter_case), None
            raw_prefix, records = divd_csv.read_csv(text)
            mapper = divd_csv.map_record
        else:
            raise ReportError(f"Unknown report format {fmt!r}.")
    except (nsm_report.DocumentError, divd_csv.HeaderError) as exc:
        raise ReportError(str(exc)) from None
    # A DIVD CSV says nothing about the case: without case metadata its events are useless.
    problems = case_problems(case, require=fmt == DIVD_CSV)
    if problems:
        path, reason = problems[0]
        hint = " (set the parser's case parameter or submit case metadata with the CSV)" if fmt == DIVD_CSV else ""
        raise ReportError(f"The case metadata is not valid: {path} {reason}{hint}.")
    return OpenedReport(fmt, case_fields(case, reporter), records, mapper, raw_prefix)


def fingerprint(fields: dict) -> bytes:
    """A 128-bit digest of a record's mapped fields: identical findings share it."""
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.blake2b(encoded, digest_size=16).digest()


class RecentFingerprints:
    """The fingerprints of the last ``capacity`` distinct findings of a report.

    Memory is bounded: about 160 bytes per fingerprint (an ordered-dict entry and
    a 16-byte bytes object, measured), so 100,000 take about 16 MB. Two identical findings further apart
    than ``capacity`` distinct ones both become events; a core deduplicator bot further
    down the pipeline catches those.
    """

    def __init__(self, capacity: int):
        self.capacity = max(int(capacity), 0)
        self._seen = OrderedDict()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, digest: bytes) -> None:
        """Remember ``digest``, forgetting the oldest one when full."""
        if self.capacity and digest not in self._seen:
            if len(self._seen) >= self.capacity:
                self._seen.popitem(last=False)
            self._seen[digest] = None
