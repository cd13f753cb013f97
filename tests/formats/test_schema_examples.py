"""The NSM report schema's example documents: the valid ones validate, the invalid ones
fail for the reason their name gives."""

import json
from pathlib import Path

import pytest

from intelmq_nsm.formats import load_schema, validate_nsm_report

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "harmonization" / "examples"
INVALID = {
    "invalid-finding-without-address.json": ("$.findings[0]", "has no address"),
    "invalid-schema-version.json": ("$.schema", "'nsm-report/1' was expected"),
    "invalid-cve-and-severity.json": ("$.case.cve[0]", "is not in the expected form"),
    "invalid-no-case.json": ("$", "'case' is a required property"),
    "invalid-bad-finding-values.json": ("$.findings[0].port", "greater than the maximum"),
    "invalid-no-findings.json": ("$.findings", "should be non-empty"),
}


def test_every_example_is_listed_here_or_valid():
    names = {path.name for path in EXAMPLES.glob("*.json")}
    assert {name for name in names if name.startswith("invalid-")} == set(INVALID)
    assert {name for name in names if name.startswith("valid-")}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("valid-*.json")), ids=lambda p: p.name)
def test_valid_examples_validate(path):
    assert validate_nsm_report(json.loads(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_examples_fail_with_their_reason(name):
    problems = validate_nsm_report(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))
    path, reason = INVALID[name]
    assert any(p == path and reason in r for p, r in problems), problems


def test_the_schema_exists_once_and_is_the_package_data():
    link = REPO / "harmonization" / "nsm-report.schema.json"
    assert link.is_symlink()
    assert json.loads(link.read_text(encoding="utf-8")) == load_schema()
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(load_schema())


def test_validation_names_paths_and_keeps_reasons_short():
    document = json.loads((EXAMPLES / "valid-minimal.json").read_text(encoding="utf-8"))
    document["findings"].append({"ip": "192.0.2.1", "evidence": "x" * 10_000_000})
    [(path, reason)] = validate_nsm_report(document)
    assert path == "$.findings[1].evidence"
    assert reason == "is longer than 10000 characters"


def test_the_case_parameter_example_is_a_valid_case_block():
    from intelmq_nsm.formats.case import case_problems

    case = json.loads((EXAMPLES / "case-parameter.json").read_text(encoding="utf-8"))
    assert case_problems(case, require=True) == []
