"""The NSM report format v1 (JSON): a record iterator that decodes one finding at a time,
and the mapping of a finding to IntelMQ fields.

Validation against the JSON Schema is :mod:`intelmq_nsm.formats.schema`;
``harmonization/nsm-report.md`` is the readable spec.
"""

import json
from collections.abc import Iterator
from typing import Optional

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats.case import require_address, truncate
from intelmq_nsm.formats.record import NSM_REPORT, TOO_DEEP, VULNERABLE, Record, RecordError
from intelmq_nsm.formats.schema import validate_envelope, validate_finding

_WHITESPACE = json.decoder.WHITESPACE
_DECODER = json.JSONDecoder()


class DocumentError(ValueError):
    """The document as a whole cannot be read (bad JSON outside the findings, bad case block)."""


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()


def _expect(text: str, index: int, char: str) -> int:
    index = _skip(text, index)
    if text[index : index + 1] != char:
        found = text[index : index + 20] or "the end of the report"
        raise DocumentError(f"Expected {char!r} at character {index}, found {found!r}.")
    return index + 1


def _scan_findings(text: str, index: int, keep: bool) -> Iterator:
    """Walk the findings array that starts at ``index`` (just after '['): yield
    (start, end, value) per element; on a syntax error yield (start, None, error message)
    and stop. Decoding one element at a time keeps one finding in memory, not all."""
    index = _skip(text, index)
    if text[index : index + 1] == "]":
        yield (index + 1, -1, None)
        return
    while True:
        start = _skip(text, index)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError as exc:
            yield (start, None, f"Invalid JSON: {exc}.")
            return
        except RecursionError:
            yield (start, None, f"Invalid JSON: {TOO_DEEP}.")
            return
        yield (start, end, value if keep else None)
        index = _skip(text, end)
        char = text[index : index + 1]
        if char == "]":
            yield (index + 1, -1, None)
            return
        if char != ",":
            yield (index, None, f"Expected ',' or ']' after finding at character {index}.")
            return
        index += 1


def read_envelope(text: str) -> tuple:
    """First pass: the document without its findings, and where the findings array starts.

    Returns ``(envelope, findings_start)``; findings_start is None without a findings
    array. A syntax error inside the findings (a truncated report) ends the first pass
    there: the second pass reports it as a record, after the findings before it. Raises
    DocumentError when the document's own structure is broken outside the findings.
    """
    envelope, findings_start = {}, None
    index = _expect(text, 0, "{")
    index = _skip(text, index)
    if text[index : index + 1] == "}":
        return envelope, None
    while True:
        index = _skip(text, index)
        try:
            key, index = _DECODER.raw_decode(text, index)
        except ValueError as exc:
            raise DocumentError(f"Invalid JSON: {exc}.") from None
        if not isinstance(key, str):
            raise DocumentError(f"Expected a key string before character {index}.")
        index = _expect(text, index, ":")
        index = _skip(text, index)
        if key == "findings" and text[index : index + 1] == "[":
            findings_start = index + 1
            for start, end, _value in _scan_findings(text, index + 1, keep=False):
                if end is None:
                    return envelope, findings_start
                if end == -1:
                    index = start
            envelope["findings"] = []
        else:
            try:
                envelope[key], index = _DECODER.raw_decode(text, index)
            except ValueError as exc:
                raise DocumentError(f"Invalid JSON in {key!r}: {exc}.") from None
            except RecursionError:
                raise DocumentError(f"Invalid JSON in {key!r}: {TOO_DEEP}.") from None
        index = _skip(text, index)
        char = text[index : index + 1]
        if char == "}":
            if text[_skip(text, index + 1) :]:
                raise DocumentError(f"Unexpected text after the document at character {index + 1}.")
            return envelope, findings_start
        if char != ",":
            raise DocumentError(f"Expected ',' or '}}' at character {index}.")
        index += 1


def read_report(text: str) -> tuple:
    """Open an NSM report: ``(envelope, records)``. The envelope (schema, case, reporter;
    findings left out) is read and checked at once, and a broken one raises DocumentError;
    ``records`` then yields one :class:`Record` per finding, decoding and checking one at
    a time (``error`` holds a finding's first problem)."""
    text = text.lstrip("\ufeff")
    envelope, findings_start = read_envelope(text)
    if findings_start is not None:
        envelope.setdefault("findings", [])  # a truncated array still counts as present
    problems = validate_envelope(envelope)
    if problems:
        path, reason = problems[0]
        raise DocumentError(f"The report is not a valid {NSM_REPORT} document: {path} {reason}.")
    return envelope, _checked(iter_findings(text, findings_start))


def iter_findings(text: str, findings_start: Optional[int]) -> Iterator:
    """One :class:`Record` per finding of the array at ``findings_start`` (from
    :func:`read_envelope`), decoded but not checked against the schema; ``raw`` is the
    finding's own JSON text. A syntax error ends the array with a record for it."""
    if findings_start is None:
        return
    number = 0
    for start, end, value in _scan_findings(text, findings_start, keep=True):
        if end == -1:
            return
        number += 1
        if end is None:
            yield Record(number, text[start:], error=RecordError("findings", value))
            return
        yield Record(number, text[start:end], value)


def _checked(records: Iterator) -> Iterator:
    for record in records:
        if record.error is None:
            problems = validate_finding(record.data)
            if problems:
                path, reason = problems[0]
                record.error = RecordError(path[2:] if path != "$" else "finding", reason)
        yield record


def map_record(finding: dict, evidence_limit: int) -> dict:
    """One valid finding → its IntelMQ fields (the case's fields are added by the caller)."""
    fields = {}
    for key, field in _FIELDS:
        if key in finding:
            fields[field] = finding[key]
    if "evidence" in finding:
        fields[ec.EVIDENCE] = truncate(finding["evidence"], evidence_limit)
    fields[ec.RESULT] = finding.get("result", VULNERABLE)
    require_address(fields)
    return fields


_FIELDS = (
    ("ip", "source.ip"),
    ("port", "source.port"),
    ("transport", "protocol.transport"),
    ("protocol", "protocol.application"),
    ("hostname", "source.fqdn"),
    ("url", "source.url"),
    ("observed", "time.source"),
    ("product_version", "product.version"),
)
