"""Input formats of the report parser, plain Python without IntelMQ: the front door.

- :mod:`~intelmq_nsm.formats.decode` turns a report's bytes into text and
  :mod:`~intelmq_nsm.formats.detect` names its format;
- one module per format (:mod:`~intelmq_nsm.formats.nsm_report`,
  :mod:`~intelmq_nsm.formats.nuclei`, :mod:`~intelmq_nsm.formats.divd_csv`) streams its
  :class:`Record`\\ s, one per finding, built lazily so that a report is never held twice in
  memory, and maps one record's data to IntelMQ fields with a pure function;
- :mod:`~intelmq_nsm.formats.reader` opens a report of any format as the fields its
  events share plus that stream; :mod:`~intelmq_nsm.formats.case` merges case metadata;
- :mod:`~intelmq_nsm.formats.schema` checks NSM reports against their JSON Schema.

Events are built from these by :mod:`intelmq_nsm.bots.parsers.report.events` (the IntelMQ side), for
the parser bot and ``intelmq-nsm check-report`` alike; the intake splits submissions with
the same readers (:mod:`intelmq_nsm.intake.split`).
"""

from intelmq_nsm.formats.decode import decode_report
from intelmq_nsm.formats.detect import detect_format
from intelmq_nsm.formats.divd_csv import DIVD_CSV_COLUMNS
from intelmq_nsm.formats.reader import OpenedReport, ReportError, open_report
from intelmq_nsm.formats.record import (
    DIVD_CSV,
    FORMATS,
    NOT_VULNERABLE,
    NSM_REPORT,
    NUCLEI,
    VULNERABLE,
    NotAFinding,
    Record,
    RecordError,
)
from intelmq_nsm.formats.schema import SCHEMA_RESOURCE, load_schema, validate_finding, validate_nsm_report

__all__ = [
    "DIVD_CSV",
    "DIVD_CSV_COLUMNS",
    "FORMATS",
    "NOT_VULNERABLE",
    "NSM_REPORT",
    "NUCLEI",
    "SCHEMA_RESOURCE",
    "VULNERABLE",
    "NotAFinding",
    "OpenedReport",
    "Record",
    "RecordError",
    "ReportError",
    "decode_report",
    "detect_format",
    "load_schema",
    "open_report",
    "validate_finding",
    "validate_nsm_report",
]
