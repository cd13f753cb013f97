"""``intelmq-nsm check-report``: the parser's reading of a report, for researchers and operators."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "harmonization" / "examples"
NUCLEI = REPO / "tests" / "bots" / "parsers" / "fixtures" / "nuclei.jsonl"


def check(*args):
    return subprocess.run(["intelmq-nsm", "check-report", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_a_valid_report_passes():
    result = check(EXAMPLES / "valid-full.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("nsm-report/1, 3 findings would become events, 0 problems.")


def test_problems_are_listed_per_record(tmp_path):
    result = check(NUCLEI)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Record 4: field 'line' is not valid JSON")
    assert lines[1] == "Record 5: field 'address' has no address: one of ip, hostname or url is required."
    assert lines[2].endswith("nuclei, 3 findings would become events (1 of them not vulnerable), 2 problems.")


def test_a_csv_needs_its_case(tmp_path):
    report = tmp_path / "hosts.csv"
    report.write_text("ip,abuse,prefix,asn,holder,country,city,abuse_source\n192.0.2.1,,,,,XX1,,\n")
    assert "'id' is a required property" in check(report).stdout
    case = tmp_path / "case.json"
    case.write_text('{"id": "DIVD-2024-00012", "title": "Exposed interfaces"}')
    result = check(report, "--case", case)
    assert "Record 1: field 'source.geolocation.cc' 'XX1' is not a valid value" in result.stdout
