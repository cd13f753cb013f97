"""The NSM report format v1 (JSON): validation against its JSON Schema and a record
iterator that decodes one finding at a time.

The schema is package data (``intelmq_nsm/schemas/nsm-report-1.schema.json``);
``harmonization/nsm-report.md`` is its readable spec.
"""

import copy
import json
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources
from typing import Optional

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats import NSM_REPORT, Record, RecordError
from intelmq_nsm.formats.case import require_address, truncate

SCHEMA_RESOURCE = "nsm-report-1.schema.json"
_WHITESPACE = json.decoder.WHITESPACE
_DECODER = json.JSONDecoder()
# Reasons quote the offending value; a 10 MB field must not become a 10 MB log line.
_REASON_MAX = 300


def load_schema() -> dict:
    """The NSM report v1 JSON Schema as a dict (a fresh copy)."""
    return copy.deepcopy(_schema())


@lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files("intelmq_nsm").joinpath("schemas", SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator(part: str):
    # jsonschema is imported here: it is only needed when a report is validated.
    from jsonschema import Draft202012Validator

    schema = _schema()
    if part == "document":
        sub = schema
    elif part == "envelope":
        # Everything but the findings, which are validated one by one as they stream.
        sub = copy.deepcopy(schema)
        sub["properties"]["findings"] = {"type": "array"}
    else:
        sub = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{part}"}
    return Draft202012Validator(sub, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _reason(error) -> str:
    if error.validator == "anyOf" and error.schema.get("anyOf", [{}])[0].get("required") == ["ip"]:
        return "has no address: one of ip, hostname or url is required"
    if error.validator == "anyOf" and "format" in str(error.schema):
        return "is not a valid IPv4 or IPv6 address"
    if error.validator == "maxLength":
        return f"is longer than {error.validator_value} characters"
    if error.validator == "pattern":
        value = error.instance if isinstance(error.instance, str) else ""
        shown = value if len(value) <= 80 else value[:80] + "…"
        return f"{shown!r} is not in the expected form"
    message = error.message
    return message if len(message) <= _REASON_MAX else message[:_REASON_MAX] + "…"


def _errors(validator, instance, prefix: str = "$") -> list:
    # Sorted by path: keys and indexes are kept apart, as ints and strings do not compare.
    errors = sorted(validator.iter_errors(instance), key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
    return [(prefix + error.json_path[1:], _reason(error)) for error in errors]


def validate_nsm_report(document: dict) -> list:
    """Check a whole NSM report against the schema: a list of (JSON path, reason), empty if valid."""
    return _errors(_validator("document"), document)


def validate_finding(finding) -> list:
    """Check one finding: a list of (JSON path relative to the finding, reason)."""
    return _errors(_validator("finding"), finding)


def validate_part(part: str, instance, prefix: str = "$") -> list:
    """Check a value against one of the schema's definitions (``case``, ``reporter``, ``finding``)."""
    return _errors(_validator(part), instance, prefix)


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
    ``records`` then yields one :class:`Record` per finding, decoding one at a time."""
    text = text.lstrip("\ufeff")
    envelope, findings_start = read_envelope(text)
    if findings_start is not None:
        envelope.setdefault("findings", [])  # a truncated array still counts as present
    problems = _errors(_validator("envelope"), envelope)
    if problems:
        path, reason = problems[0]
        raise DocumentError(f"The report is not a valid {NSM_REPORT} document: {path} {reason}.")
    return envelope, _records(text, findings_start)


def _records(text: str, findings_start: Optional[int]) -> Iterator:
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
        problems = validate_finding(value)
        if problems:
            path, reason = problems[0]
            field = path[2:] if path != "$" else "finding"
            yield Record(number, text[start:end], value, RecordError(field, reason))
        else:
            yield Record(number, text[start:end], value)


def map_record(finding: dict, evidence_limit: int) -> dict:
    """One valid finding → its IntelMQ fields (the case's fields are added by the caller)."""
    fields = {}
    for key, field in _FIELDS:
        if key in finding:
            fields[field] = finding[key]
    if "evidence" in finding:
        fields[ec.EVIDENCE] = truncate(finding["evidence"], evidence_limit)
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
