"""The report parser bot on each format, with IntelMQ's BotTestCase."""

import json
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.parsers.report.parser import NSMReportParserBot
from tests.messages import raw_of, report_message

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[3] / "harmonization" / "examples"
# The case parameter of the bot's catalogue page (also the benchmark's).
CASE = json.loads(EXAMPLES.joinpath("case-parameter.json").read_text(encoding="utf-8"))


report = report_message


NSM_REPORT = report(EXAMPLES.joinpath("valid-full.json").read_bytes())
NSM_FIRST_EVENT = {
    "__type": "Event",
    "feed.name": "Researcher intake",
    "feed.provider": "DIVD",
    "time.observation": "2024-04-15T09:00:00+00:00",
    "classification.taxonomy": "vulnerable",
    "classification.type": "vulnerable-system",
    "classification.identifier": "DIVD-2024-00012",
    "event_description.text": "Exposed management interfaces of Example Gateway",
    "event_description.url": "https://csirt.divd.example/cases/DIVD-2024-00012",
    "product.vulnerabilities": "cve-2024-3400;cve-2024-21887",
    "product.vendor": "example networks",  # IntelMQ 3.5 lower-cases product names
    "product.name": "example gateway",
    "product.version": "10.2.7",
    "severity": "critical",
    "tlp": "AMBER",
    "source.ip": "192.0.2.10",
    "source.port": 443,
    "source.fqdn": "vpn.gemeente.example",
    "source.url": "https://vpn.gemeente.example/global-protect/login.esp",
    "protocol.transport": "tcp",
    "protocol.application": "https",
    "time.source": "2024-04-15T08:30:00+00:00",
    "extra.nsm.case_id": "DIVD-2024-00012",
    "extra.nsm.case_title": "Exposed management interfaces of Example Gateway",
    "extra.nsm.recommendation": (
        "Update Example Gateway to 10.2.9 or 11.0.4 and remove the management interface from the internet."
    ),
    "extra.nsm.affected_versions": ["< 10.2.9", "11.0.0 - 11.0.3"],
    "extra.nsm.evidence": "Server: Example-Gateway/10.2.7",
    "extra.nsm.reporter": {"organisation": "DIVD", "contact": "csirt@divd.example"},
    "extra.nsm.report_format": "nsm-report/1",
    "extra.nsm.record": 1,
    "extra.nsm.finding_id": "nf1-82252b99268952ec6b1d8baeb8be7b71",
    "extra.nsm.result": "vulnerable",
    "extra.nsm.tlp": "AMBER",
}


class TestReportParserBot(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = {}

    def run_with_errors(self, message, **parameters):
        self.input_message = message
        self.prepare_bot(destination_queues={"_default": "output", "_on_error": "errors"}, parameters=parameters)
        # Each failed record is a warning by design; the assertions below name them.
        self.run_bot(prepare=False, allowed_warning_count=10)
        return (
            [json.loads(m) for m in self.get_output_queue()],
            [json.loads(m) for m in self.get_output_queue(path="_on_error")],
        )

    def test_nsm_report_maps_every_field(self):
        self.input_message = NSM_REPORT
        self.run_bot()
        event = json.loads(self.get_output_queue()[0])
        # The event's raw is the finding's own text, cut from the document.
        self.assertEqual(json.loads(raw_of(event)), json.loads(raw_of(NSM_REPORT))["findings"][0])
        del event["raw"]
        self.assertDictEqual(event, NSM_FIRST_EVENT)
        self.assertEqual(len(self.get_output_queue()), 3)

    def test_nsm_report_keeps_ipv6_and_hostname_only_findings(self):
        self.input_message = NSM_REPORT
        self.run_bot()
        events = [json.loads(m) for m in self.get_output_queue()]
        self.assertEqual(events[1]["source.ip"], "2001:db8::10")
        self.assertEqual(events[1]["time.source"], "2024-04-15T06:31:12+00:00")
        self.assertEqual(events[2]["source.fqdn"], "portal.provincie.example")
        self.assertNotIn("source.ip", events[2])
        self.assertEqual([e["extra.nsm.record"] for e in events], [1, 2, 3])

    def test_nsm_report_bad_findings_are_dumped_one_by_one(self):
        document = json.loads(EXAMPLES.joinpath("valid-full.json").read_text(encoding="utf-8"))
        document["findings"] = [{"ip": "192.0.2.1"}, {"port": 22}, {"ip": "192.0.2.300"}, {"ip": "192.0.2.2"}]
        events, errors = self.run_with_errors(report(json.dumps(document)))
        self.assertEqual([e["source.ip"] for e in events], ["192.0.2.1", "192.0.2.2"])
        self.assertEqual([json.loads(raw_of(e)) for e in errors], [{"port": 22}, {"ip": "192.0.2.300"}])
        self.assertLogMatches(r"Record 2 of the nsm-report/1 report: field 'finding' has no address", "WARNING")
        self.assertLogMatches(r"Record 3 of the nsm-report/1 report: field 'ip' is not a valid IPv4", "WARNING")

    def test_truncated_nsm_report_keeps_the_findings_before_the_cut(self):
        text = EXAMPLES.joinpath("valid-full.json").read_text(encoding="utf-8")
        cut = text.index('"hostname": "portal')
        events, errors = self.run_with_errors(report(text[:cut]))
        self.assertEqual(len(events), 2)
        [error] = errors
        self.assertTrue(raw_of(error).startswith('{"hostname": "portal'.split('"hostname"')[0]))
        self.assertLogMatches(r"Record 3 of the nsm-report/1 report: field 'findings' Invalid JSON", "WARNING")

    def test_report_in_no_known_format_is_dumped_whole(self):
        message = report("<html>not a report</html>\n")
        events, errors = self.run_with_errors(message)
        self.assertEqual(events, [])
        self.assertEqual(raw_of(errors[0]), "<html>not a report</html>\n")
        self.assertLogMatches(r"Report dumped: The report is in no known format", "WARNING")

    def test_forced_format_that_does_not_fit_is_dumped(self):
        events, errors = self.run_with_errors(NSM_REPORT, format="divd-csv")
        self.assertEqual(events, [])
        self.assertEqual(len(errors), 1)
        self.assertLogMatches(r"Report dumped: The CSV header .* is not DIVD's", "WARNING")


NUCLEI = FIXTURES.joinpath("nuclei.jsonl").read_text(encoding="utf-8")
NUCLEI_EVENTS = [
    {
        "classification.taxonomy": "vulnerable",
        "classification.type": "vulnerable-system",
        "classification.identifier": "CVE-2024-3400",
        "event_description.text": "Example Gateway - Command Injection",
        "severity": "critical",
        "product.vulnerabilities": "cve-2024-3400",
        "product.vendor": "example-networks",
        "product.name": "example-gateway",
        "source.ip": "192.0.2.10",
        "source.fqdn": "vpn.gemeente.example",
        "source.port": 443,
        "source.url": "https://vpn.gemeente.example:443/global-protect/login.esp",
        "protocol.application": "https",
        "protocol.transport": "tcp",
        "time.source": "2024-04-15T08:30:00.123456+00:00",
        "extra.nsm.template_id": "CVE-2024-3400",
        "extra.nsm.recommendation": "Upgrade to a fixed version.",
        "extra.nsm.evidence": "10.2.7",
        "extra.nsm.report_format": "nuclei",
        "extra.nsm.record": 1,
        "extra.nsm.finding_id": "nf1-6982bb7ef667ee3bb3ad858ab1f8a35d",
        "extra.nsm.result": "vulnerable",
    },
    {
        "classification.taxonomy": "vulnerable",
        "classification.type": "vulnerable-system",
        "classification.identifier": "openssh-detect",
        "event_description.text": "OpenSSH Service - Detect",
        "severity": "info",
        "product.vulnerabilities": "cve-2023-38408",
        "source.ip": "198.51.100.7",
        "source.port": 22,
        "protocol.transport": "tcp",
        "time.source": "2024-04-15T08:31:00+00:00",
        "extra.nsm.template_id": "openssh-detect",
        "extra.nsm.evidence": "matcher banner; SSH-2.0-OpenSSH_8.9p1",
        "extra.nsm.report_format": "nuclei",
        "extra.nsm.record": 2,
        "extra.nsm.finding_id": "nf1-d3b750951f5fdd5600d9bc0e25417654",
        "extra.nsm.result": "vulnerable",
    },
    # Line 3: matcher-status false (nuclei -ms), the system was scanned and is not vulnerable.
    {
        "classification.taxonomy": "vulnerable",
        "classification.type": "vulnerable-system",
        "classification.identifier": "CVE-2024-3400",
        "event_description.text": "Example Gateway - Command Injection",
        "severity": "critical",
        "product.vulnerabilities": "cve-2024-3400",
        "source.ip": "203.0.113.5",
        "source.port": 443,
        "source.url": "https://203.0.113.5:443/global-protect/login.esp",
        "protocol.application": "https",
        "protocol.transport": "tcp",
        "time.source": "2024-04-15T08:32:00+00:00",
        "extra.nsm.template_id": "CVE-2024-3400",
        "extra.nsm.report_format": "nuclei",
        "extra.nsm.record": 3,
        "extra.nsm.finding_id": "nf1-ab46b3ece08c387006e922a2cc9e042f",
        "extra.nsm.result": "not-vulnerable",
    },
]


class TestReportParserBotNuclei(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = {}

    run_with_errors = TestReportParserBot.run_with_errors

    def test_nuclei_lines_become_events_field_by_field(self):
        events, errors = self.run_with_errors(report(NUCLEI))
        self.assertEqual(len(events), 3)
        for event, expected in zip(events, NUCLEI_EVENTS, strict=True):
            self.assertEqual(raw_of(event), NUCLEI.splitlines()[expected["extra.nsm.record"] - 1])
            own = {
                k: v for k, v in event.items() if k not in ("raw", "__type") and not k.startswith(("feed.", "time.obs"))
            }
            self.assertDictEqual(own, expected)
        self.assertEqual([raw_of(e) for e in errors], [NUCLEI.splitlines()[3], NUCLEI.splitlines()[4]])
        self.assertLogMatches(r"Record 4 of the nuclei report: field 'line' is not valid JSON", "WARNING")
        self.assertLogMatches(r"Record 5 of the nuclei report: field 'address' has no address", "WARNING")
        self.assertLogMatches(
            r"Parsed a nuclei report: 3 events sent, 0 duplicates dropped, 0 non-matches skipped, 2 records failed",
            "INFO",
        )

    def test_case_parameter_adds_context_and_its_severity_wins(self):
        events, _ = self.run_with_errors(report(NUCLEI), case=CASE)
        ssh = events[1]
        self.assertEqual(ssh["extra.nsm.case_id"], "DIVD-2024-00012")
        self.assertEqual(ssh["extra.nsm.case_title"], CASE["title"])
        self.assertEqual(ssh["event_description.text"], "OpenSSH Service - Detect")
        self.assertEqual(ssh["event_description.url"], CASE["url"])
        self.assertEqual(ssh["severity"], "critical")
        self.assertEqual(ssh["product.vulnerabilities"], "cve-2024-3400;cve-2023-38408")
        self.assertEqual(events[0]["extra.nsm.recommendation"], CASE["recommendation"])


DIVD_CSV = FIXTURES.joinpath("divd.csv").read_text(encoding="utf-8")
HEADER = "ip,abuse,prefix,asn,holder,country,city,abuse_source\n"


class TestReportParserBotDivdCsv(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = {"case": CASE}

    run_with_errors = TestReportParserBot.run_with_errors

    def test_rows_become_events_with_the_case_of_the_parameter(self):
        events, errors = self.run_with_errors(report(DIVD_CSV))
        self.assertEqual([e["source.ip"] for e in events], ["192.0.2.10", "198.51.100.7", "203.0.113.5"])
        first = {k: v for k, v in events[0].items() if k not in ("__type", "raw") and not k.startswith("feed.")}
        self.assertDictEqual(
            first,
            {
                "time.observation": "2024-04-15T09:00:00+00:00",
                "classification.taxonomy": "vulnerable",
                "classification.type": "vulnerable-system",
                "classification.identifier": "DIVD-2024-00012",
                "event_description.text": CASE["title"],
                "event_description.url": CASE["url"],
                "product.vulnerabilities": "cve-2024-3400",
                "severity": "critical",
                "source.ip": "192.0.2.10",
                "source.abuse_contact": "abuse@isp.example",
                "source.network": "192.0.2.0/24",
                "source.asn": 64496,
                "source.as_name": "Example ISP B.V.",
                "source.geolocation.cc": "NL",
                "source.geolocation.city": "Utrecht",
                "extra.nsm.abuse_source": "ripe",
                "extra.nsm.case_id": "DIVD-2024-00012",
                "extra.nsm.case_title": CASE["title"],
                "extra.nsm.recommendation": CASE["recommendation"],
                "extra.nsm.report_format": "divd-csv",
                "extra.nsm.record": 1,
                "extra.nsm.finding_id": "nf1-a225e91545254a287f7a0efd45e13361",
                "extra.nsm.result": "vulnerable",
            },
        )
        self.assertEqual(raw_of(events[0]), HEADER + DIVD_CSV.splitlines(keepends=True)[1])
        self.assertEqual(events[1]["source.asn"], 64497)
        self.assertEqual(events[1]["source.as_name"], "Hoster, with a comma")
        # A formula-like value stays text; a quoted newline stays inside its field.
        self.assertEqual(events[2]["source.as_name"], "=cmd|' /C calc'!A0")
        self.assertEqual(events[2]["source.geolocation.city"], "Den\nHaag")
        self.assertEqual(events[2]["extra.nsm.record"], 5)
        [error] = errors
        self.assertEqual(raw_of(error), HEADER + DIVD_CSV.splitlines(keepends=True)[4])
        self.assertLogMatches(
            r"Record 4 of the divd-csv report: field 'source.ip' 'not-an-address' is not a valid", "WARNING"
        )
        self.assertLogMatches(r"Parsed a divd-csv report: 3 events sent, 1 duplicates dropped", "INFO")

    def test_case_of_the_report_wins_over_the_parameter(self):
        own_case = {"id": "DIVD-2025-00001", "title": "Another case", "severity": "high"}
        message = report(HEADER + "192.0.2.20,,,,,,,\n", **{"extra.nsm.case": own_case, "extra.nsm.first_record": 1001})
        events, errors = self.run_with_errors(message)
        self.assertEqual(errors, [])
        [event] = events
        self.assertEqual((event["extra.nsm.case_id"], event["severity"]), ("DIVD-2025-00001", "high"))
        self.assertEqual(event["event_description.url"], CASE["url"])  # not in the report's case: the parameter's
        self.assertEqual(event["extra.nsm.record"], 1001)

    def test_csv_without_any_case_is_dumped(self):
        events, errors = self.run_with_errors(report(DIVD_CSV), case=None)
        self.assertEqual(events, [])
        self.assertEqual(len(errors), 1)
        self.assertLogMatches(r"Report dumped: The case metadata is not valid: \$.case 'id' is a required", "WARNING")

    def test_utf16_with_bom_and_latin1_reports_are_read(self):
        text = HEADER + "192.0.2.30,,,,,,Zürich,\n"
        for data in (b"\xff\xfe" + text.encode("utf-16-le"), text.encode("latin-1")):
            events, errors = self.run_with_errors(report(data))
            self.assertEqual(errors, [])
            self.assertEqual(events[0]["source.geolocation.city"], "Zürich")


class TestReportParserBotLimits(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = {"case": CASE}

    run_with_errors = TestReportParserBot.run_with_errors

    def test_failures_beyond_max_record_dumps_go_into_one_last_dump(self):
        rows = "".join(f"bad-{i},,,,,,,\n" for i in range(5)) + "192.0.2.1,,,,,,,\n"
        events, errors = self.run_with_errors(report(HEADER + rows), max_record_dumps=2)
        self.assertEqual(len(events), 1)
        self.assertEqual([raw_of(e) for e in errors[:2]], [HEADER + "bad-0,,,,,,,\n", HEADER + "bad-1,,,,,,,\n"])
        self.assertEqual(raw_of(errors[2]), "".join(HEADER + f"bad-{i},,,,,,,\n" for i in (2, 3, 4)))
        self.assertLogMatches(r"Parsed a divd-csv report: 1 events sent, 0 duplicates dropped, 0 non-matches", "INFO")

    def test_duplicate_memory_zero_keeps_every_copy(self):
        events, _ = self.run_with_errors(report(HEADER + "192.0.2.1,,,,,,,\n" * 3), duplicate_memory=0)
        self.assertEqual([e["extra.nsm.record"] for e in events], [1, 2, 3])

    def test_bad_first_record_or_case_of_the_report_dumps_the_report(self):
        for fields in ({"extra.nsm.first_record": "ten"}, {"extra.nsm.case": "DIVD-2024-00012"}):
            events, errors = self.run_with_errors(report(HEADER + "192.0.2.1,,,,,,,\n", **fields))
            self.assertEqual((events, len(errors)), ([], 1))

    def test_check_names_bad_parameters(self):
        self.assertIsNone(NSMReportParserBot.check({"format": "auto", "case": CASE}))
        messages = NSMReportParserBot.check({"format": "xml", "case": {"severity": "urgent"}})
        self.assertEqual([level for level, _ in messages], ["error", "error"])
        self.assertIn("'urgent' is not one of", messages[1][1])
