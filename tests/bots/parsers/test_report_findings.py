"""The report parser's finding ids and negative results, with IntelMQ's BotTestCase: rescans
of one system get one id, a not-vulnerable result is an event with that id, and a bad
``result`` is a bad record."""

import json
import unittest

from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as ec
from intelmq_nsm.bots.parsers.report.parser import NSMReportParserBot
from tests.messages import raw_of, report_message

CASE = {"id": "DIVD-2024-00012", "title": "Exposed management interfaces of Example Gateway"}
OTHER_CASE = {"id": "DIVD-2024-00031", "title": "Exposed example admin panels"}
FINDING = {"ip": "192.0.2.10", "port": 443, "transport": "tcp", "protocol": "https"}


def nsm(findings, case=CASE) -> str:
    return json.dumps({"schema": "nsm-report/1", "case": case, "findings": findings})


#: The first scan, and a rescan a week later by another researcher with other evidence.
FIRST_SCAN = report_message(nsm([{**FINDING, "observed": "2024-04-15T08:30:00Z", "evidence": "Server: EG/10.2.7"}]))
RESCAN = report_message(
    nsm([{**FINDING, "observed": "2024-04-22T10:00:00Z", "evidence": "Server: EG/10.2.7 (again)"}]),
    **{"feed.provider": "Another researcher", "time.observation": "2024-04-22T11:00:00+00:00"},
)
#: The same system, and beside it: another port, another host, another case.
NEIGHBOURS = report_message(
    nsm(
        [
            FINDING,
            {**FINDING, "port": 8443},
            {**FINDING, "ip": "192.0.2.11"},
            {"hostname": "vpn.gemeente.example", "port": 443},
        ]
    )
)
OTHER_CASE_SCAN = report_message(nsm([FINDING], case=OTHER_CASE))
#: The rescan that found the system fixed, and one with a result that is no result.
FIXED = report_message(nsm([{**FINDING, "observed": "2024-04-29T08:00:00Z", "result": "not-vulnerable"}]))
BAD_RESULT = report_message(
    nsm([{**FINDING, "result": "vulnerable"}, {**FINDING, "port": 22, "result": "fixed"}, {**FINDING, "port": 25}])
)
#: A trailing newline in a field with a form, in a finding and in the case.
NEWLINE_HOSTNAME = report_message(nsm([{"hostname": "vpn.gemeente.example\n"}, FINDING]))
NEWLINE_CASE_ID = report_message(nsm([FINDING], case={**CASE, "id": "X-0004\n"}))

NUCLEI_INFO = {"name": "Example Gateway - Command Injection", "severity": "critical"}
NUCLEI_MATCH = {
    "template-id": "CVE-2024-3400",
    "info": NUCLEI_INFO,
    "type": "http",
    "host": "203.0.113.5",
    "port": "443",
    "scheme": "https",
    "url": "https://203.0.113.5:443",
    "matched-at": "https://203.0.113.5:443/global-protect/login.esp",
    "ip": "203.0.113.5",
    "timestamp": "2024-04-15T08:32:00Z",
    "matcher-status": True,
}
# What nuclei -ms writes for the same template and host once it no longer matches, and for
# a host it could not reach.
NUCLEI_NO_MATCH = {
    "template-id": "CVE-2024-3400",
    "info": NUCLEI_INFO,
    "type": "http",
    "host": "203.0.113.5",
    "port": "443",
    "scheme": "https",
    "url": "https://203.0.113.5:443",
    "ip": "203.0.113.5",
    "timestamp": "2024-04-22T08:32:00Z",
    "matcher-status": False,
}
NUCLEI_TIMEOUT = {
    **NUCLEI_NO_MATCH,
    "host": "203.0.113.6",
    "ip": "203.0.113.6",
    "url": "https://203.0.113.6:443",
    "error": "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
}
NUCLEI_SCAN = report_message(json.dumps(NUCLEI_MATCH) + "\n")
NUCLEI_RESCAN = report_message("".join(json.dumps(line) + "\n" for line in (NUCLEI_NO_MATCH, NUCLEI_TIMEOUT)))


class TestFindingIdsAndResults(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = {}

    def parse(self, message, warnings=0):
        self.input_message = message
        self.prepare_bot(destination_queues={"_default": "output", "_on_error": "errors"})
        self.run_bot(prepare=False, allowed_warning_count=warnings)
        return (
            [json.loads(m) for m in self.get_output_queue()],
            [json.loads(m) for m in self.get_output_queue(path="_on_error")],
        )

    def test_two_rescans_of_one_system_get_the_same_finding_id(self):
        [first], _ = self.parse(FIRST_SCAN)
        [again], _ = self.parse(RESCAN)
        self.assertNotEqual(first["time.source"], again["time.source"])
        self.assertRegex(first[ec.FINDING_ID], r"^nf1-[0-9a-f]{32}$")
        self.assertEqual(first[ec.FINDING_ID], again[ec.FINDING_ID])
        self.assertEqual((first[ec.RESULT], again[ec.RESULT]), ("vulnerable", "vulnerable"))

    def test_the_case_owner_the_intake_stamped_on_a_report_is_on_every_event_of_it(self):
        # A second team the case is shared with: its findings speak for the case's owner.
        shared = report_message(nsm([FINDING, {**FINDING, "port": 8443}]), **{ec.CASE_OWNER: "DIVD"})
        events, _ = self.parse(shared)
        self.assertEqual([e[ec.CASE_OWNER] for e in events], ["DIVD", "DIVD"])
        [plain], _ = self.parse(FIRST_SCAN)
        self.assertNotIn(ec.CASE_OWNER, plain)  # from another collector: the feed's provider speaks

    def test_another_port_host_or_case_gets_another_finding_id(self):
        [first], _ = self.parse(FIRST_SCAN)
        events, errors = self.parse(NEIGHBOURS)
        [other_case], _ = self.parse(OTHER_CASE_SCAN)
        self.assertEqual(errors, [])
        ids = [event[ec.FINDING_ID] for event in events]
        self.assertEqual(ids[0], first[ec.FINDING_ID])  # the same system, in a report of its own
        self.assertEqual(len({*ids, other_case[ec.FINDING_ID]}), 5, ids)

    def test_an_nsm_finding_with_result_not_vulnerable_is_an_event_with_the_same_id(self):
        [vulnerable], _ = self.parse(FIRST_SCAN)
        [fixed], errors = self.parse(FIXED)
        self.assertEqual(errors, [])
        self.assertEqual(fixed[ec.RESULT], "not-vulnerable")
        self.assertEqual(fixed[ec.FINDING_ID], vulnerable[ec.FINDING_ID])
        self.assertEqual(fixed["source.ip"], "192.0.2.10")

    def test_a_nuclei_non_match_is_a_not_vulnerable_event_and_a_failed_request_is_skipped(self):
        [match], _ = self.parse(NUCLEI_SCAN)
        [no_match], errors = self.parse(NUCLEI_RESCAN)
        self.assertEqual(errors, [])
        self.assertEqual((match[ec.RESULT], no_match[ec.RESULT]), ("vulnerable", "not-vulnerable"))
        self.assertEqual(no_match[ec.FINDING_ID], match[ec.FINDING_ID])
        self.assertEqual(raw_of(no_match), json.dumps(NUCLEI_NO_MATCH))
        self.assertLogMatches(
            r"Parsed a nuclei report: 1 events sent, 0 duplicates dropped, 1 non-matches skipped, 0 records failed",
            "INFO",
        )

    def test_an_invalid_result_dumps_that_record_and_the_others_are_sent(self):
        events, errors = self.parse(BAD_RESULT, warnings=1)
        self.assertEqual([(e["source.port"], e[ec.RESULT]) for e in events], [(443, "vulnerable"), (25, "vulnerable")])
        [error] = errors
        self.assertEqual(json.loads(raw_of(error)), {**FINDING, "port": 22, "result": "fixed"})
        self.assertLogMatches(
            r"Record 2 of the nsm-report/1 report: field 'result' 'fixed' is not one of "
            r"\['vulnerable', 'not-vulnerable'\]",
            "WARNING",
        )

    def test_a_trailing_newline_in_a_finding_dumps_that_record_naming_the_field(self):
        events, errors = self.parse(NEWLINE_HOSTNAME, warnings=1)
        self.assertEqual([e["source.ip"] for e in events], ["192.0.2.10"])
        self.assertEqual(len(errors), 1)
        self.assertLogMatches(
            r"Record 1 of the nsm-report/1 report: field 'hostname' 'vpn.gemeente.example\\n' "
            r"is not in the expected form",
            "WARNING",
        )

    def test_a_trailing_newline_in_the_case_id_dumps_the_report_naming_the_field(self):
        events, errors = self.parse(NEWLINE_CASE_ID, warnings=1)
        self.assertEqual((events, len(errors)), ([], 1))
        self.assertLogMatches(r"Report dumped: .*\$\.case\.id 'X-0004\\n' is not in the expected form", "WARNING")

    def test_a_deeply_nested_finding_is_a_bad_record_and_the_ones_before_it_are_sent(self):
        text = nsm([FINDING])[: -len("]}")] + ", " + "[" * 100_000 + "]" * 100_000 + "]}"
        events, errors = self.parse(report_message(text), warnings=1)
        self.assertEqual([e["source.ip"] for e in events], ["192.0.2.10"])
        self.assertEqual(len(errors), 1)
        self.assertLogMatches(r"Record 2 of the nsm-report/1 report: field 'findings' .*nested too deeply", "WARNING")
