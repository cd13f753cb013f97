"""The stable entry points to the report formats, for the intake collector and tools.

``validate_nsm_report(document)`` checks a whole NSM report (a dict) against the JSON
Schema and returns ``[(json_path, reason), ...]``; ``detect_format(text)`` names the format
of a report or raises ValueError. The mechanism lives in :mod:`intelmq_nsm.formats`.
"""

from intelmq_nsm.formats import DIVD_CSV, DIVD_CSV_COLUMNS, FORMATS, NSM_REPORT, NUCLEI, decode_report, detect_format
from intelmq_nsm.formats.nsm_report import SCHEMA_RESOURCE, load_schema, validate_finding, validate_nsm_report

__all__ = [
    "DIVD_CSV",
    "DIVD_CSV_COLUMNS",
    "FORMATS",
    "NSM_REPORT",
    "NUCLEI",
    "SCHEMA_RESOURCE",
    "decode_report",
    "detect_format",
    "load_schema",
    "validate_finding",
    "validate_nsm_report",
]
