"""Bad input, generated: the parser never crashes, emits every valid record and dumps
every invalid one with a reason. Example counts are kept small for the suite's time."""

import base64
import csv
import io
import json
import unittest

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.parsers.report.parser import NSMReportParserBot

CASE = {"id": "DIVD-2024-00012", "title": "Exposed management interfaces"}
COLUMNS = ["ip", "abuse", "prefix", "asn", "holder", "country", "city", "abuse_source"]
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))

ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])
# Text a field may hold: quotes, separators, newlines, formula-like values, any letters.
FIELD_TEXT = st.one_of(
    st.text(st.characters(max_codepoint=0xFF, exclude_categories=("Cs", "Cc")), max_size=30),
    st.sampled_from(["=cmd|' /C calc'!A0", '"quoted", comma', "line\nbreak", "+SUM(1)", "@x", "-2+3"]),
)


def report(data: bytes) -> dict:
    return {"__type": "Report", "feed.name": "Generated", "raw": base64.b64encode(data).decode("ascii")}


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace") if encoding == "latin-1" else text.encode(encoding)


class GeneratedInputCase(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = {"case": CASE}

    def run_report(self, data: bytes):
        self.input_message = report(data)
        self.prepare_bot(destination_queues={"_default": "output", "_on_error": "errors"})
        self.run_bot(prepare=False, allowed_warning_count=1000)
        events = [json.loads(m) for m in self.get_output_queue()]
        errors = [json.loads(m) for m in self.get_output_queue(path="_on_error")]
        for event in events:
            assert {"source.ip", "source.fqdn", "source.url"} & set(event), event
        return events, errors


@st.composite
def csv_reports(draw):
    """A DIVD CSV with valid rows (unique addresses) and invalid ones, and what to expect."""
    rows, valid, invalid = [], [], []
    for number in range(1, draw(st.integers(1, 12)) + 1):
        kind = draw(st.sampled_from(["valid", "bad-ip", "bad-width"]))
        values = [draw(FIELD_TEXT) for _ in COLUMNS[1:]]
        values[0] = "abuse@isp.example"  # abuse (an e-mail field)
        values[1] = "192.0.2.0/24"  # prefix
        values[2] = draw(st.sampled_from(["64496", "AS64497", ""]))  # asn
        values[4] = draw(st.sampled_from(["NL", "de", ""]))  # country
        if kind == "valid":
            rows.append([f"192.0.2.{number}", *values])
            valid.append(number)
        elif kind == "bad-ip":
            rows.append([draw(st.sampled_from(["not-an-ip", "192.0.2.300", "=1+1"])), *values])
            invalid.append(number)
        else:
            rows.append([f"192.0.2.{number}", *values, *draw(st.lists(FIELD_TEXT, min_size=1, max_size=3))])
            invalid.append(number)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue(), valid, invalid


@st.composite
def nuclei_reports(draw):
    lines, valid, invalid = [], [], []
    for number in range(1, draw(st.integers(1, 8)) + 1):
        cve = draw(st.one_of(st.none(), st.just("CVE-2024-3400"), st.lists(st.just("cve-2024-21887"), max_size=2)))
        line = {
            "template-id": draw(st.sampled_from(["CVE-2024-3400", "ssh-detect"])),
            "info": {"name": draw(FIELD_TEXT), "severity": draw(st.sampled_from(["info", "critical", "unknown"]))},
            "type": "http",
            "host": f"192.0.2.{number}",
            "ip": f"192.0.2.{number}",
            "port": "443",
            "matched-at": f"https://192.0.2.{number}/{draw(st.text(max_size=5))}",
            "timestamp": "2024-04-15T08:30:00.123456789Z",
            "matcher-status": True,
            "response": draw(FIELD_TEXT),
        }
        if cve is not None:
            line["info"]["classification"] = {"cve-id": cve}
        text = json.dumps(line, ensure_ascii=draw(st.booleans()))
        kind = draw(st.sampled_from(["valid", "valid", "truncated", "no-address", "junk"]))
        if kind == "truncated":
            text = text[: draw(st.integers(1, len(text) - 1))]
        elif kind == "no-address":
            text = json.dumps({k: v for k, v in line.items() if k not in ("host", "ip", "matched-at")})
        elif kind == "junk":
            text = draw(st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20))
            if not text.strip():
                text = "junk"
        (valid if kind == "valid" else invalid).append(number)
        lines.append(text)
    if not valid:  # detection needs one good line; an all-bad file is dumped whole (tested below)
        lines.append(json.dumps({"template-id": "t", "ip": "198.51.100.1"}))
        valid.append(len(lines))
    return "\n".join(lines) + "\n", valid, invalid


@st.composite
def nsm_reports(draw):
    findings, valid, invalid = [], [], []
    for number in range(1, draw(st.integers(1, 10)) + 1):
        finding = {"ip": f"192.0.2.{number}", "port": 443, "evidence": draw(FIELD_TEXT) or "e"}
        kind = draw(st.sampled_from(["valid", "valid", "no-address", "bad-port", "unknown-key", "bad-ip"]))
        if kind == "no-address":
            del finding["ip"]
        elif kind == "bad-port":
            finding["port"] = draw(st.sampled_from([-1, 65536, "443", None]))
        elif kind == "unknown-key":
            finding["colour"] = "red"
        elif kind == "bad-ip":
            finding["ip"] = draw(st.sampled_from(["192.0.2.300", "", "::g", "2001:db8::1/64"]))
        findings.append(finding)
        (valid if kind == "valid" else invalid).append(number)
    document = {"schema": "nsm-report/1", "case": CASE, "findings": findings}
    return json.dumps(document, indent=draw(st.sampled_from([None, 2]))), valid, invalid


class TestGeneratedReports(GeneratedInputCase):
    @SETTINGS
    @given(st.binary(max_size=300))
    @example(b"\x00\xff\xfe{")
    @example(b'{"schema": "nsm-report/1", "findings": [')
    def test_random_bytes_never_crash_the_bot(self, data):
        events, errors = self.run_report(data)
        assert events or errors or not data.strip(b" \t\r\n\x0b\x0c"), "a non-empty report left no trace"

    @SETTINGS
    @given(csv_reports(), ENCODINGS)
    def test_csv_valid_rows_are_emitted_and_invalid_ones_dumped(self, generated, encoding):
        text, valid, invalid = generated
        events, errors = self.run_report(encode(text, encoding))
        assert [e["extra.nsm.record"] for e in events] == valid
        assert len(errors) == len(invalid)
        for error in errors:  # raw is text in IntelMQ: UTF-8, whatever the report's encoding was
            assert base64.b64decode(error["raw"]).decode("utf-8").startswith("ip,")

    @SETTINGS
    @given(nuclei_reports(), ENCODINGS)
    def test_nuclei_valid_lines_are_emitted_and_invalid_ones_dumped(self, generated, encoding):
        text, valid, invalid = generated
        events, errors = self.run_report(encode(text, encoding))
        assert [e["extra.nsm.record"] for e in events] == valid
        assert len(errors) == len(invalid)

    @SETTINGS
    @given(nsm_reports(), ENCODINGS)
    def test_nsm_valid_findings_are_emitted_and_invalid_ones_dumped(self, generated, encoding):
        text, valid, invalid = generated
        events, errors = self.run_report(encode(text, encoding))
        assert [e["extra.nsm.record"] for e in events] == valid
        assert [json.loads(base64.b64decode(e["raw"]).decode("utf-8")) for e in errors] == [
            json.loads(text)["findings"][n - 1] for n in invalid
        ]

    @SETTINGS
    @given(nsm_reports(), st.data())
    def test_truncated_nsm_report_emits_a_prefix_and_dumps_the_rest(self, generated, data):
        text, valid, _ = generated
        cut = data.draw(st.integers(1, len(text) - 1))
        events, errors = self.run_report(text[:cut].encode())
        records = [e["extra.nsm.record"] for e in events]
        assert records == valid[: len(records)]
        assert errors, "a truncated document always leaves a dump"


class TestLargeInputs(GeneratedInputCase):
    def test_a_10_mb_field_fails_its_record_only(self):
        big = "x" * 10_000_000
        header = ",".join(COLUMNS)
        text = f"{header}\n192.0.2.1,,,,{big},,,\n192.0.2.2,,,,small,,,\n"
        events, errors = self.run_report(text.encode())
        assert [e["source.ip"] for e in events] == ["192.0.2.2"]
        [error] = errors
        assert len(base64.b64decode(error["raw"])) > 10_000_000
        nuclei = json.dumps({"template-id": "t", "ip": "192.0.2.3", "response": big}) + "\n"
        events, errors = self.run_report(nuclei.encode())
        assert (len(events), errors) == (1, [])
        document = {"schema": "nsm-report/1", "case": CASE, "findings": [{"ip": "192.0.2.4", "evidence": big}]}
        events, errors = self.run_report(json.dumps(document).encode())
        assert (events, len(errors)) == ([], 1)
        self.assertLogMatches(r"Record 1 of the nsm-report/1 report: field 'evidence' is longer than", "WARNING")

    def test_100000_columns_fail_their_record_only(self):
        header = ",".join(COLUMNS)
        text = f"{header}\n" + ",".join(["192.0.2.1"] * 100_000) + "\n192.0.2.2,,,,,,,\n"
        events, errors = self.run_report(text.encode())
        assert [e["source.ip"] for e in events] == ["192.0.2.2"]
        assert len(errors) == 1
        self.assertLogMatches(r"Record 1 of the divd-csv report: field 'row' has 100000 fields", "WARNING")
        wide_header = ",".join(f"c{i}" for i in range(100_000)) + "\n1\n"
        events, errors = self.run_report(wide_header.encode())
        assert (events, len(errors)) == ([], 1)

    def test_an_all_bad_nuclei_file_is_dumped_whole(self):
        events, errors = self.run_report(b'{"template-id": \n{"template-id": "t"\n')
        assert (events, len(errors)) == ([], 1)
        self.assertLogMatches(r"Report dumped: The report is JSON but neither", "WARNING")
