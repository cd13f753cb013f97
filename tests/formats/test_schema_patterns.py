"""Every pattern of the NSM report schema matches whole values only: a value with a trailing
newline (Python's ``$``, which jsonschema uses, also matches before a final newline) is
refused, and the problem names the field."""

import copy
import json
from pathlib import Path

import pytest

from intelmq_nsm.formats import load_schema, validate_nsm_report
from intelmq_nsm.formats.case import case_problems
from intelmq_nsm.intake.split import SubmissionError, split_nsm_report

EXAMPLES = Path(__file__).resolve().parents[2] / "harmonization" / "examples"
MINIMAL = json.loads((EXAMPLES / "valid-minimal.json").read_text(encoding="utf-8"))

#: Where each pattern of the schema is, a valid value for it, and the path of that value
#: in a document built by ``document_with``.
PATTERNS = {
    "$defs/cve": ("CVE-2024-3400", "$.case.cve[0]"),
    "$defs/case/properties/id": ("X-0004", "$.case.id"),
    "$defs/case/properties/url": ("https://csirt.divd.example/cases/X-0004", "$.case.url"),
    "$defs/finding/properties/protocol": ("https", "$.findings[0].protocol"),
    "$defs/finding/properties/hostname": ("vpn.gemeente.example", "$.findings[0].hostname"),
    "$defs/finding/properties/url": ("https://vpn.gemeente.example/login", "$.findings[0].url"),
    "$defs/finding/properties/observed": ("2024-04-15T08:30:00Z", "$.findings[0].observed"),
}


def pattern_locations(node, path=()):
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield "/".join(path)
        for key, value in node.items():
            yield from pattern_locations(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from pattern_locations(value, (*path, str(index)))


def document_with(path: str, value: str) -> dict:
    document = copy.deepcopy(MINIMAL)
    if path == "$.case.cve[0]":
        document["case"]["cve"] = [value]
    elif path.startswith("$.case."):
        document["case"][path.rsplit(".", 1)[1]] = value
    else:
        document["findings"][0][path.rsplit(".", 1)[1]] = value
    return document


def test_every_pattern_of_the_schema_is_listed_here():
    assert sorted(pattern_locations(load_schema())) == sorted(PATTERNS)


@pytest.mark.parametrize("location", sorted(PATTERNS))
def test_a_trailing_newline_is_refused_with_the_field_named(location):
    value, path = PATTERNS[location]
    assert validate_nsm_report(document_with(path, value)) == []
    for bad in (value + "\n", value + "\r\n", "\n" + value):
        problems = validate_nsm_report(document_with(path, bad))
        assert problems == [(path, f"{bad!r} is not in the expected form")]


def test_the_intake_refuses_a_case_id_with_a_newline():
    with pytest.raises(SubmissionError) as error:
        split_nsm_report(json.dumps(document_with("$.case.id", "X-0004\n")), max_bytes=10_000)
    assert error.value.problems == [("$.case.id", "'X-0004\\n' is not in the expected form")]


def test_case_metadata_of_a_csv_or_the_parameter_is_checked_the_same_way():
    assert case_problems({"id": "X-0004\n", "title": "t"}, require=True) == [
        ("$.case.id", "'X-0004\\n' is not in the expected form")
    ]
