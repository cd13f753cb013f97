"""NSMDigestOutputBot with IntelMQ's BotTestCase: events into the spool, bad events dumped."""

import json
import shutil
import sqlite3
import tempfile
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.outputs.digest.output import NSMDigestOutputBot
from intelmq_nsm.testbed.sample_events import event, organisation

AMSTERDAM = organisation("GM0363", "Amsterdam")
SSO = organisation("SSO-0001", "Shared Service Noord", kind="shared-service")
EVENT = event(1, [AMSTERDAM, SSO])
NO_CONSTITUENCY = {k: v for k, v in event(2, [AMSTERDAM]).items() if k != "constituency"}
NO_ORGANISATIONS = {k: v for k, v in event(3, [AMSTERDAM]).items() if k != "extra.nsm.organisations"}
OTHER_CONSTITUENCY = event(4, [AMSTERDAM], constituency="surfcert")
NO_TARGET = {k: v for k, v in event(5, [AMSTERDAM]).items() if not k.startswith("source.")}
NOT_VULNERABLE = event(6, [AMSTERDAM], **{"extra.nsm.result": "not-vulnerable"})


class TestDigestOutputBot(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMDigestOutputBot
        cls.workdir = Path(tempfile.mkdtemp(prefix="nsm-digest-"))
        cls.sysconfig = {
            "channel": "file",
            "constituency": "ibd",
            "file_directory": str(cls.workdir / "out"),
            "spool_file": str(cls.workdir / "spool.sqlite"),
            "max_age": 3600,
            "delivery_interval": 0.05,
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def spooled(self):
        with sqlite3.connect(self.sysconfig["spool_file"]) as db:
            return db.execute("SELECT org_id, constituency, case_id, row FROM events ORDER BY org_id").fetchall()

    def test_event_is_spooled_once_per_organisation(self):
        self.input_message = [EVENT, EVENT]  # the second is a redelivery after a crash
        self.run_bot(iterations=2)
        rows = [r for r in self.spooled() if json.loads(r[3])["ip"] == "198.51.100.2"]
        assert [(r[0], r[1], r[2]) for r in rows] == [
            ("GM0363", "ibd", "DIVD-2024-00012"),
            ("SSO-0001", "ibd", "DIVD-2024-00012"),
        ]

    def test_event_without_constituency_is_dumped_naming_the_field(self):
        self.input_message = NO_CONSTITUENCY
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(r".*InvalidValue: invalid value None .* for key 'constituency'.*", levelname="ERROR")

    def test_event_without_organisations_is_dumped_naming_the_field(self):
        self.input_message = NO_ORGANISATIONS
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(r".*for key 'extra.nsm.organisations': is missing or empty.*", levelname="ERROR")

    def test_event_of_another_constituency_is_dumped(self):
        self.input_message = OTHER_CONSTITUENCY
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(r".*'surfcert'.*differs from this output's constituency 'ibd'.*", levelname="ERROR")

    def test_event_without_a_target_for_the_finding_id_is_dumped_naming_the_field(self):
        self.input_message = NO_TARGET
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(
            r".*InvalidValue: .* for key 'source.ip': a finding needs the host it is about:"
            r" source.ip, source.fqdn or source.url.*",
            levelname="ERROR",
        )

    def test_a_not_vulnerable_result_for_an_unknown_finding_is_recorded_and_spools_nothing(self):
        self.input_message = NOT_VULNERABLE
        self.run_bot()
        assert [json.loads(r[3])["ip"] for r in self.spooled()].count("192.0.2.7") == 0
        with sqlite3.connect(self.sysconfig["spool_file"]) as db:
            states = db.execute(
                "SELECT state, first_notified FROM ledger_findings WHERE target = '192.0.2.7:443'"
            ).fetchall()
        assert states == [("fixed-verified", None)]

    def test_check_names_missing_channel_parameters(self):
        assert NSMDigestOutputBot.check({"channel": "rest", "constituency": "ibd"}) == [
            ["error", "The rest channel needs parameter rest_url, which is not set."],
            ["error", "The rest channel needs parameter rest_secret, which is not set."],
        ]
        assert NSMDigestOutputBot.check({"channel": "pigeon"})[0][0] == "error"
        assert NSMDigestOutputBot.check(self.sysconfig) is None
        assert NSMDigestOutputBot.check({**self.sysconfig, "ledger_url": "mysql://x"})[0][0] == "error"
        assert NSMDigestOutputBot.check({**self.sysconfig, "reminder_after": -1})[0][0] == "error"

    def test_an_explicit_kind_or_the_kinds_of_abuse_parameter_decides_the_kind(self):
        """``extra.nsm.kind`` on the event first, then the output's rules, then IntelMQ's
        classification: an open RDP (exposed by its type) a rule calls vulnerable, a scanner
        (misbehaving by its type) a feed calls compromised."""
        feed = {"feed.provider": "Shadowserver", "source.port": 3389, "extra.nsm.case_id": None}
        rdp = event(7, [AMSTERDAM], **feed, **{"feed.name": "Accessible-RDP"})
        rdp.update({"classification.type": "potentially-unwanted-accessible", "classification.identifier": "rdp"})
        scanner = event(8, [AMSTERDAM], **feed, **{"feed.name": "Scan", "extra.nsm.kind": "compromised"})
        scanner.update({"classification.taxonomy": "information-gathering", "classification.type": "scanner"})
        plain = event(9, [AMSTERDAM], **feed, **{"feed.name": "Scan"})
        plain.update({"classification.taxonomy": "information-gathering", "classification.type": "scanner"})
        for e in (rdp, scanner, plain):
            del e["extra.nsm.case_id"], e["product.vulnerabilities"]
        self.input_message = [rdp, scanner, plain]
        self.run_bot(iterations=3, parameters={"kinds_of_abuse": {"feed.name": {"accessible-rdp": "vulnerable"}}})
        kinds = {json.loads(r[3])["ip"]: json.loads(r[3])["kind_of_abuse"] for r in self.spooled()}
        assert (kinds["198.51.100.8"], kinds["203.0.113.9"], kinds["192.0.2.10"]) == (
            "vulnerable",
            "compromised",
            "misbehaving",
        )

    def test_an_event_naming_no_kind_of_abuse_is_dumped_naming_the_field(self):
        self.input_message = event(10, [AMSTERDAM], **{"extra.nsm.kind": "hacked"})
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(
            r".*for key 'extra.nsm.kind': 'hacked' is not a kind of abuse: use compromised, misbehaving,"
            r" vulnerable, exposed.*",
            levelname="ERROR",
        )

    def test_check_names_what_is_wrong_in_the_kinds_of_abuse_parameter(self):
        for rules, says in (
            ({"source.ip": {"192.0.2.1": "exposed"}}, "names 'source.ip'"),
            ({"feed.name": {"Accessible-RDP": "hacked"}}, "'hacked' is not a kind of abuse"),
            ({"feed.name": "exposed"}, "must map a value to a kind"),
        ):
            [[level, message]] = NSMDigestOutputBot.check({**self.sysconfig, "kinds_of_abuse": rules})
            assert level == "error" and "kinds_of_abuse" in message and says in message, message
