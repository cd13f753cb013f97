"""The NSM report v1 JSON Schema: loading it and checking a document, or one part of it,
with reasons short enough for a log line and a 400 answer.

The schema is package data (``intelmq_nsm/schemas/nsm-report-1.schema.json``);
``harmonization/nsm-report.md`` is its readable spec.
"""

import copy
import json
from functools import cache, lru_cache
from importlib import resources

SCHEMA_RESOURCE = "nsm-report-1.schema.json"
# Reasons quote the offending value; a 10 MB field must not become a 10 MB log line.
_REASON_MAX = 300


def load_schema() -> dict:
    """The NSM report v1 JSON Schema as a dict (a fresh copy)."""
    return copy.deepcopy(_schema())


def _schema() -> dict:
    return package_schema(SCHEMA_RESOURCE)


@lru_cache(maxsize=8)
def package_schema(resource: str) -> dict:
    """A JSON Schema the package ships in ``intelmq_nsm/schemas/`` (read once; do not change
    it: the copy is shared)."""
    text = resources.files("intelmq_nsm").joinpath("schemas", resource).read_text(encoding="utf-8")
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


def validate_envelope(envelope: dict) -> list:
    """Check a report without its findings (``findings`` may be an empty list standing for them)."""
    return _errors(_validator("envelope"), envelope)


def validate_finding(finding, prefix: str = "$") -> list:
    """Check one finding: a list of (JSON path, from ``prefix``, reason)."""
    return _errors(_validator("finding"), finding, prefix)


def validate_part(part: str, instance, prefix: str = "$") -> list:
    """Check a value against one of the schema's definitions (``case``, ``reporter``, ``finding``)."""
    return _errors(_validator(part), instance, prefix)
