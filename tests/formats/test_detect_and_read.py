"""Format detection, decoding and the record readers, without IntelMQ."""

import codecs
import json

import pytest

from intelmq_nsm.formats import NotAFinding, RecordError, decode_report, detect_format, divd_csv, nsm_report, nuclei
from intelmq_nsm.formats.case import combine, merge_case
from intelmq_nsm.formats.reader import RecentFingerprints, ReportError, fingerprint, open_report

HEADER = "ip,abuse,prefix,asn,holder,country,city,abuse_source\n"
CASE = {"id": "DIVD-2024-00012", "title": "Exposed interfaces"}


def nsm(findings, **top):
    return json.dumps({"schema": "nsm-report/1", "case": CASE, "findings": findings, **top})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (nsm([{"ip": "192.0.2.1"}]), "nsm-report/1"),
        ("\ufeff" + nsm([{"ip": "192.0.2.1"}], reporter={"organisation": "DIVD"}), "nsm-report/1"),
        ('{"template-id":"x","host":"192.0.2.1"}\n{"template-id":"y"}\n', "nuclei"),
        ("\n\n" + HEADER, "divd-csv"),
        ("IP,Abuse\r\n192.0.2.1,abuse@isp.example\r\n", "divd-csv"),
    ],
)
def test_detect_format(text, expected):
    assert detect_format(text) == expected


def test_detect_finds_the_schema_key_after_a_large_findings_array():
    findings = [{"ip": "192.0.2.1", "evidence": "x" * 1000}] * 2000
    text = json.dumps({"case": CASE, "findings": findings, "schema": "nsm-report/1"})
    assert detect_format(text) == "nsm-report/1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The report is empty."),
        ("   \n", "The report is empty."),
        ("hello,world\n1,2\n", "is in no known format"),
        ('{"a": 1}', "neither an NSM report"),
        ('{"schema": "nsm-report/2"}', "this parser reads 'nsm-report/1'"),
        ('{"schema": "other/1"}', "not an NSM report"),
        ("ip,ip\n", "no known format"),
    ],
)
def test_detect_format_says_why_not(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        detect_format(text)


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + "ä".encode(),
        codecs.BOM_UTF16_LE + "ä".encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "ä".encode("utf-16-be"),
        "ä".encode("latin-1"),
        "ä".encode(),
    ],
)
def test_decode_report(data):
    assert decode_report(data) == "ä"


def test_nsm_reader_takes_each_findings_own_text_and_the_case_after_the_findings():
    text = '{"findings": [ {"ip": "192.0.2.1", "evidence": "a ] } , ["} ,{"url":"http://x.example/"}],\n'
    text += ' "schema": "nsm-report/1", "case": {"id": "DIVD-2024-00012", "title": "t"}}'
    envelope, records = nsm_report.read_report(text)
    assert envelope["case"]["id"] == "DIVD-2024-00012"
    records = list(records)
    assert [r.raw for r in records] == ['{"ip": "192.0.2.1", "evidence": "a ] } , ["}', '{"url":"http://x.example/"}']
    assert [r.number for r in records] == [1, 2]
    assert all(r.error is None for r in records)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "nsm-report/1", "case": {"id": "x"', "Invalid JSON in 'case'"),
        ('{"schema": "nsm-report/1", "findings": [{"ip": "192.0.2.1"}]}', "'case' is a required property"),
        (nsm([{"ip": "192.0.2.1"}]) + " trailing", "Unexpected text after the document"),
        ("[1, 2]", "Expected '{'"),
    ],
)
def test_nsm_reader_rejects_a_broken_document(text, message):
    with pytest.raises(nsm_report.DocumentError, match=message):
        nsm_report.read_report(text)


def test_nsm_map_record_requires_an_address_and_truncates_evidence():
    fields = nsm_report.map_record({"ip": "192.0.2.1", "evidence": "e" * 50}, evidence_limit=10)
    assert fields == {"source.ip": "192.0.2.1", "extra.nsm.evidence": "eeeeeeeee…", "extra.nsm.result": "vulnerable"}
    with pytest.raises(RecordError, match="address"):
        nsm_report.map_record({"port": 1}, evidence_limit=10)


def test_csv_reader_gives_each_row_with_its_own_lines():
    text = HEADER + '192.0.2.1,a@isp.example,,,,NL,"Den\r\nHaag",ripe\r\n\r\n192.0.2.2,,,,,,,\n192.0.2.3,,\n'
    header, records = divd_csv.read_csv(text)
    records = list(records)
    assert header == HEADER
    assert [r.number for r in records] == [1, 2, 3]
    assert records[0].raw == '192.0.2.1,a@isp.example,,,,NL,"Den\r\nHaag",ripe\r\n'
    assert records[0].data["city"] == "Den\r\nHaag"
    assert records[1].raw == "192.0.2.2,,,,,,,\n"
    assert records[2].error.reason == "has 3 fields, the header has 8"


def test_csv_reader_survives_a_field_over_the_csv_limit():
    text = HEADER + "192.0.2.1," + "x" * 200_000 + ",,,,,,\n192.0.2.2,,,,,,,\n"
    records = list(divd_csv.iter_records(text))
    assert "is not valid CSV" in records[0].error.reason
    assert records[1].data["ip"] == "192.0.2.2"


def test_csv_mapping():
    row = dict.fromkeys(divd_csv._FIELDS, "")
    assert divd_csv.map_record(dict(row, ip=" 192.0.2.1 ", asn="AS64496")) == {
        "source.ip": "192.0.2.1",
        "source.asn": 64496,
    }
    with pytest.raises(RecordError, match="asn"):
        divd_csv.map_record(dict(row, ip="192.0.2.1", asn="ASX"))
    with pytest.raises(RecordError, match="ip"):
        divd_csv.map_record(row)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"host": "https://[2001:db8::1]:8443", "template-id": "t"}, {"source.ip": "2001:db8::1", "source.port": 8443}),
        ({"host": "portal.example:8080", "template-id": "t"}, {"source.fqdn": "portal.example", "source.port": 8080}),
        ({"matched-at": "http://portal.example/x", "template-id": "t"}, {"source.url": "http://portal.example/x"}),
        (
            {"ip": "192.0.2.1", "template-id": "t", "type": "dns"},
            {"source.ip": "192.0.2.1", "protocol.application": "dns"},
        ),
    ],
)
def test_nuclei_addresses(record, expected):
    fields = nuclei.map_record(record, evidence_limit=100)
    assert {k: fields[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"ip": "192.0.2.1"}, "template-id"),
        ({"ip": "192.0.2.1", "template-id": "t", "info": {"severity": "severe"}}, "info.severity"),
        ({"ip": "192.0.2.1", "template-id": "t", "info": {"classification": {"cve-id": 3}}}, "cve-id"),
        ({"ip": "192.0.2.1", "template-id": "t", "port": "http"}, "port"),
        ({"ip": ["192.0.2.1"], "template-id": "t"}, "ip"),
        ({"template-id": "t"}, "address"),
    ],
)
def test_nuclei_record_errors_name_the_field(record, field):
    with pytest.raises(RecordError) as caught:
        nuclei.map_record(record, evidence_limit=100)
    assert field in caught.value.field


def test_nuclei_non_match_is_a_not_vulnerable_result_and_a_failed_request_no_finding():
    fields = nuclei.map_record({"template-id": "t", "ip": "192.0.2.1", "matcher-status": False}, 100)
    assert fields["extra.nsm.result"] == "not-vulnerable"
    assert "extra.nsm.result" not in nuclei.map_record({"template-id": "t", "ip": "192.0.2.1"}, 100)
    timeout = {"template-id": "t", "ip": "192.0.2.1", "matcher-status": False, "error": "context deadline exceeded"}
    with pytest.raises(NotAFinding):
        nuclei.map_record(timeout, 100)


def test_case_precedence_and_combination():
    case = merge_case({"id": "A-2024-1", "title": ""}, {"title": "From report", "id": "B"}, {"severity": "low"})
    assert case == {"id": "A-2024-1", "title": "From report", "severity": "low"}
    shared = {"severity": "critical", "product.vulnerabilities": "cve-2024-1;cve-2024-2"}
    own = combine(shared, {"severity": "info", "product.vulnerabilities": "cve-2024-2;cve-2024-3", "source.ip": "x"})
    assert own == {"product.vulnerabilities": "cve-2024-1;cve-2024-2;cve-2024-3", "source.ip": "x"}


def test_open_report_rejects_a_bad_case_and_an_unknown_format():
    with pytest.raises(ReportError, match="severity"):
        open_report("nuclei", "", {"severity": "urgent"}, None, 100)
    with pytest.raises(ReportError, match="Unknown report format"):
        open_report("xml", "", None, None, 100)


def test_fingerprints_are_bounded_and_forget_the_oldest():
    recent = RecentFingerprints(capacity=3)
    digests = [fingerprint({"source.ip": f"192.0.2.{i}"}) for i in range(5)]
    for digest in digests:
        recent.add(digest)
    assert len(recent) == 3
    assert digests[0] not in recent and digests[4] in recent
    assert fingerprint({"a": 1, "b": [2]}) == fingerprint({"b": [2], "a": 1})
