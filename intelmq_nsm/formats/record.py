"""What every format's reader yields: a :class:`Record` per finding, or a :class:`RecordError`
that stops one record and names its field."""

from dataclasses import dataclass
from typing import Any, Optional

NSM_REPORT = "nsm-report/1"
NUCLEI = "nuclei"
DIVD_CSV = "divd-csv"
FORMATS = (NSM_REPORT, NUCLEI, DIVD_CSV)

#: What a scan found (``extra.nsm.result``); a record that says nothing is vulnerable.
VULNERABLE = "vulnerable"
NOT_VULNERABLE = "not-vulnerable"

#: Why JSON that Python's decoder gives up on (RecursionError) is refused: no report needs
#: a tenth of that depth, so it is bad input like a syntax error, not a fault to retry.
TOO_DEEP = "nested too deeply (JSON deeper than about 1,000 levels)"


class RecordError(ValueError):
    """A record that cannot become an event: which field and why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotAFinding(Exception):
    """A record that reports neither a vulnerable nor a not-vulnerable system (a scanner's
    error or timeout line): skipped, not an error."""


@dataclass
class Record:
    """One finding of a report: its number (1-based), its own raw text, and either the
    parsed data or the error that stops it."""

    number: int
    raw: str
    data: Optional[Any] = None
    error: Optional[RecordError] = None
