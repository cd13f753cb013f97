"""NSMForwardedParserBot with IntelMQ's BotTestCase: a hub's events as a CERT takes them."""

import base64
import json
import unittest

from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as ec
from intelmq_nsm.bots.parsers.forwarded.parser import NSMForwardedParserBot
from intelmq_nsm.federation import forwarded
from intelmq_nsm.finding_id import finding_id
from intelmq_nsm.testbed.sample_events import hub_event

RECEIVED = "2026-12-07T10:00:00+00:00"


def report(hub: dict, raw_body: bytes = b"") -> dict:
    """A report as IntelMQ's AMQP collector makes it of one message (the connection's feed)."""
    data = raw_body or json.dumps({k: v for k, v in hub.items() if k != "__type"}).encode("utf-8")
    return {
        "__type": "Report",
        "feed.name": "Meldpunt hub",
        "feed.provider": "Nederlands Security Meldpunt",
        "feed.code": "nsm-hub",
        "time.observation": RECEIVED,
        "raw": base64.b64encode(data).decode("ascii"),
    }


class TestForwardedParserBot(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMForwardedParserBot
        cls.sysconfig = {"upstream_instance": "nsm-hub"}

    def run_reports(self, *reports, warnings: int = 0) -> list:
        self.input_message = list(reports)
        self.prepare_bot(destination_queues={"_default": "output", "_on_error": "errors"})
        self.run_bot(prepare=False, iterations=len(reports), allowed_warning_count=warnings)
        return [json.loads(m) for m in self.get_output_queue()]

    def test_a_forwarded_event_becomes_the_certs_own_with_the_hubs_provenance(self):
        hub = {**hub_event(7), "raw": base64.b64encode(b"192.0.2.7,443").decode()}
        [event] = self.run_reports(report(hub))
        # The connection's feed, not the hub's; the CERT routes it itself.
        assert (event["feed.name"], event["feed.code"]) == ("Meldpunt hub", "nsm-hub")
        for dropped in ("constituency", ec.ORGANISATIONS, ec.MATCHES, ec.REGISTRY_VERSION):
            assert dropped not in event, dropped
        for kept in ("source.ip", "source.port", "source.fqdn", ec.CASE_ID, ec.RESULT, "product.vulnerabilities"):
            assert event[kept] == hub[kept], kept
        assert event["time.observation"] == hub["time.observation"]
        # Its raw is the message as it came over the connection.
        assert json.loads(base64.b64decode(event["raw"])) == {k: v for k, v in hub.items() if k != "__type"}
        # Its own finding id, computed as for any event (the same as the hub's here).
        assert event[ec.FINDING_ID] == finding_id(event) == hub[ec.FINDING_ID]
        # The hub's provenance as the mechanism makes it (tests/federation spells it out),
        # with the hub's name from the parameter and the time the collector took it.
        assert event[ec.UPSTREAM] == forwarded.upstream(hub, "nsm-hub", RECEIVED, event[ec.FINDING_ID])
        assert event[ec.UPSTREAM]["forwarded_at"] == RECEIVED and event[ec.UPSTREAM]["instance"] == "nsm-hub"

    def test_the_hubs_finding_id_is_never_the_certs(self):
        forged = "nf1-" + "f" * 32
        [event] = self.run_reports(report({**hub_event(8), ec.FINDING_ID: forged}))
        assert event[ec.UPSTREAM]["finding_id"] == forged
        assert event[ec.FINDING_ID] == finding_id({k: v for k, v in event.items() if k != ec.FINDING_ID}) != forged

    def test_a_not_vulnerable_result_goes_on_as_one(self):
        [event] = self.run_reports(report(hub_event(9, vulnerable=False)))
        assert event[ec.RESULT] == "not-vulnerable"

    def test_forged_and_malformed_events_are_dumped_naming_the_field_and_the_good_ones_go_on(self):
        bad_ip = {**hub_event(2), "source.ip": "192.0.2.300"}
        unknown = {**hub_event(3), "source.nonsense": "x"}
        no_json = b"{not json"
        self.input_message = [
            report(hub_event(1)),
            report(bad_ip),
            report(unknown),
            report({}, no_json),
            report({**hub_event(4), ec.RESULT: "maybe"}),
            report(hub_event(5)),
        ]
        self.prepare_bot(destination_queues={"_default": "output", "_on_error": "errors"})
        self.run_bot(prepare=False, iterations=6, allowed_warning_count=4)
        events = [json.loads(m) for m in self.get_output_queue()]
        assert [e["source.ip"] for e in events] == ["192.0.2.1", "192.0.2.5"]
        errors = [json.loads(m) for m in self.get_output_queue(path="_on_error")]
        assert len(errors) == 4 and all(e["__type"] == "Report" for e in errors)
        self.assertLogMatches(
            r"Forwarded event dumped: field 'source.ip' '192.0.2.300' is not a valid value.*", "WARNING"
        )
        self.assertLogMatches(r"Forwarded event dumped: field 'source.nonsense' 'x' is not a valid value.*", "WARNING")
        self.assertLogMatches(r"Forwarded event dumped: field 'raw' is not JSON.*", "WARNING")
        self.assertLogMatches(
            r"Forwarded event dumped: field 'extra.nsm.result' 'maybe' is not an accepted.*", "WARNING"
        )

    def test_a_body_larger_than_allowed_is_dumped(self):
        self.sysconfig = {"upstream_instance": "nsm-hub", "max_event_size": 200}
        assert self.run_reports(report(hub_event(1)), warnings=1) == []
        self.assertLogMatches(r".*field 'raw' is \d+ bytes, more than the 200.*", "WARNING")

    def test_check_wants_the_hubs_instance_name(self):
        assert NSMForwardedParserBot.check({"upstream_instance": "nsm-hub"}) is None
        [[level, message]] = NSMForwardedParserBot.check({"upstream_instance": ""})
        assert level == "error" and "upstream_instance" in message
