"""The report parser in a real pipeline (Redis, intelmqctl): NSM report, nuclei JSON lines
and a DIVD CSV go through it into IntelMQ's file output; bad records land in the dump."""

import base64
import json
from pathlib import Path

import pytest

from tests.messages import report_message

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "bots" / "parsers" / "fixtures"
CASE = {
    "id": "DIVD-2024-00077",
    "title": "Exposed SSH daemons",
    "url": "https://csirt.divd.example/cases/DIVD-2024-00077",
    "cve": ["CVE-2023-38408"],
    "severity": "high",
    "recommendation": "Update OpenSSH.",
}


def runtime(events_file: Path) -> dict:
    return {
        "report-parser": {
            "module": "intelmq.bots.parsers.nsm.report",
            "parameters": {"case": CASE, "destination_queues": {"_default": ["file-output-queue"]}},
        },
        "file-output": {
            "module": "intelmq.bots.outputs.file.output",
            "parameters": {"file": str(events_file), "hierarchical_output": False, "keep_raw_field": True},
        },
    }


def test_three_formats_through_the_parser_into_a_file(tmp_path, intelmq_pipeline):
    events_file = tmp_path / "events.jsonl"
    pipeline = intelmq_pipeline(runtime(events_file))
    pipeline.start()
    nsm = (REPO / "harmonization" / "examples" / "valid-full.json").read_bytes()
    nuclei = (FIXTURES / "nuclei.jsonl").read_bytes()
    csv = b"ip,abuse,prefix,asn,holder,country,city,abuse_source\n198.51.100.7,abuse@isp.example,,AS64500,,NL,,ripe\n"
    pipeline.push(
        "report-parser",
        report_message(nsm),
        report_message(nuclei),
        report_message(csv, **{"extra.nsm.first_record": 501}),
    )

    events = pipeline.wait_for_file_output(events_file, count=3 + 3 + 1, timeout=60)
    pipeline.wait_drained()
    assert len(events) == 7
    by_format = {}
    for event in events:
        by_format.setdefault(event["extra.nsm.report_format"], []).append(event)

    first = by_format["nsm-report/1"][0]
    assert first["extra.nsm.case_id"] == "DIVD-2024-00012"  # the document's own case wins
    assert first["extra.nsm.case_title"] == "Exposed management interfaces of Example Gateway"
    assert first["event_description.url"] == "https://csirt.divd.example/cases/DIVD-2024-00012"
    assert first["product.vulnerabilities"] == "cve-2024-3400;cve-2024-21887"
    assert (first["product.vendor"], first["product.name"], first["product.version"]) == (
        "example networks",
        "example gateway",
        "10.2.7",
    )
    assert first["extra.nsm.recommendation"].startswith("Update Example Gateway to 10.2.9")
    assert (first["severity"], first["tlp"], first["classification.taxonomy"]) == ("critical", "AMBER", "vulnerable")
    assert (first["source.ip"], first["source.port"], first["source.fqdn"]) == (
        "192.0.2.10",
        443,
        "vpn.gemeente.example",
    )
    assert first["time.source"] == "2024-04-15T08:30:00+00:00"
    assert first["feed.name"] == "Researcher intake"
    assert json.loads(base64.b64decode(first["raw"]))["ip"] == "192.0.2.10"

    cve, ssh, fixed = by_format["nuclei"]
    assert (cve["extra.nsm.template_id"], cve["source.ip"], cve["source.fqdn"]) == (
        "CVE-2024-3400",
        "192.0.2.10",
        "vpn.gemeente.example",
    )
    assert cve["extra.nsm.case_id"] == "DIVD-2024-00077"  # from the parameter
    assert cve["severity"] == "high"  # the case's severity wins over the template's
    assert cve["product.vulnerabilities"] == "cve-2023-38408;cve-2024-3400"
    assert cve["source.url"] == "https://vpn.gemeente.example:443/global-protect/login.esp"
    assert (ssh["source.ip"], ssh["source.port"], ssh["extra.nsm.record"]) == ("198.51.100.7", 22, 2)
    # Line 3 is nuclei -ms output for a system the template no longer matches.
    assert (fixed["source.ip"], fixed["extra.nsm.result"], fixed["extra.nsm.record"]) == (
        "203.0.113.5",
        "not-vulnerable",
        3,
    )
    assert [event["extra.nsm.result"] for event in events].count("vulnerable") == 6
    # Every event has its finding id; the two scans of 192.0.2.10:443 in case DIVD-2024-00012
    # (the NSM report) and DIVD-2024-00077 (nuclei, the parameter's case) are two findings.
    ids = [event["extra.nsm.finding_id"] for event in events]
    assert all(i.startswith("nf1-") for i in ids) and len(set(ids)) == 7

    [row] = by_format["divd-csv"]
    assert (row["source.ip"], row["source.asn"], row["source.abuse_contact"]) == (
        "198.51.100.7",
        64500,
        "abuse@isp.example",
    )
    assert (row["extra.nsm.case_id"], row["extra.nsm.record"], row["extra.nsm.abuse_source"]) == (
        "DIVD-2024-00077",
        501,
        "ripe",
    )

    # The nuclei file's two bad lines were dumped, each with its own text and reason.
    dumps = pipeline.wait_for_dumps("report-parser", count=2)
    assert sorted(d["raw_text"] for d in dumps) == sorted(nuclei.decode().splitlines()[3:5])
    reasons = " ".join(d["traceback"] for d in dumps)
    assert "Record 4 of the nuclei report: field 'line' is not valid JSON" in reasons
    assert "Record 5 of the nuclei report: field 'address' has no address" in reasons
    assert pipeline.log_lines(level="ERROR") == []
    assert pipeline.status("report-parser") == "running"
