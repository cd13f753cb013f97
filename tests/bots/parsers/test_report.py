"""The report parser bot on each format, with IntelMQ's BotTestCase."""

import base64
import json
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.parsers.report.parser import ReportParserBot

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[3] / "harmonization" / "examples"
CASE = {
    "id": "DIVD-2024-00012",
    "title": "Exposed management interfaces of Example Gateway",
    "url": "https://csirt.divd.example/cases/DIVD-2024-00012",
    "cve": ["CVE-2024-3400"],
    "severity": "critical",
    "recommendation": "Update Example Gateway.",
}


def report(raw, **fields) -> dict:
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
    return {
        "__type": "Report",
        "feed.name": "Researcher intake",
        "feed.provider": "DIVD",
        "time.observation": "2024-04-15T09:00:00+00:00",
        "raw": base64.b64encode(data).decode("ascii"),
        **fields,
    }


def raw_of(message: dict) -> str:
    return base64.b64decode(message["raw"]).decode("utf-8")


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
}


class TestReportParserBot(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = ReportParserBot
        cls.sysconfig = {}

    def run_with_errors(self, message, **parameters):
        self.input_message = message
        self.prepare_bot(destination_queues={"_default": "output", "_on_error": "errors"}, parameters=parameters)
        self.run_bot(prepare=False)
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
