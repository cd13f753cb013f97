"""NSMForwardRecordOutputBot with IntelMQ's BotTestCase: the hub's record of what it forwarded."""

import shutil
import tempfile
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as ec
from intelmq_nsm.bots.outputs.forward_record.output import NSMForwardRecordOutputBot
from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from intelmq_nsm.testbed.sample_events import hub_event


class TestForwardRecordOutputBot(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMForwardRecordOutputBot
        cls.workdir = Path(tempfile.mkdtemp(prefix="nsm-forward-record-"))

    def setUp(self):
        super().setUp()
        self.ledger_file = self.workdir / f"{self._testMethodName}.sqlite"
        self.sysconfig = {"constituency": "ibd", "ledger_file": str(self.ledger_file), "ledger_name": "hub"}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def records(self) -> list:
        ledger = Ledger(sqlite_url(self.ledger_file), name="hub")
        try:
            return ledger.records()
        finally:
            ledger.close()

    def test_each_finding_is_recorded_as_forwarded_to_the_cert_once(self):
        first = hub_event(1)
        rescan = {**hub_event(1, vulnerable=False), "time.observation": "2024-05-08T10:00:00+00:00"}  # its own report
        self.input_message = [first, first, rescan, hub_event(2)]  # the repeat: a redelivery
        self.run_bot(iterations=4)
        records = self.records()
        assert [(r["finding_id"], r["org_id"], r["state"], r["constituency"]) for r in records] == [
            (first[ec.FINDING_ID], "cert:ibd", "forwarded", "ibd"),
            (hub_event(2)[ec.FINDING_ID], "cert:ibd", "forwarded", "ibd"),
        ]
        # The repeat counted once, the rescan once more; nothing waits for a digest.
        assert records[0]["times_seen"] == 2 and records[0]["pending"] is None
        assert records[0]["case_id"] == "DIVD-2024-00012" and records[0]["target"] == "192.0.2.1:443"

    def test_an_event_of_another_constituency_is_dumped_naming_the_field(self):
        self.input_message = hub_event(3, constituency="surf")
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(r".*'surf'.*differs from this output's constituency 'ibd'.*", levelname="ERROR")
        assert self.records() == []

    def test_an_event_without_anything_to_identify_it_by_is_dumped_naming_the_field(self):
        event = {k: v for k, v in hub_event(4).items() if not k.startswith("source.") and k != ec.FINDING_ID}
        self.input_message = event
        self.run_bot(allowed_error_count=1)
        self.assertLogMatches(r".*for key 'source.ip': a finding needs the host it is about.*", levelname="ERROR")

    def test_check_refuses_a_ledger_url_of_another_kind_and_warns_without_a_constituency(self):
        [[level, message]] = NSMForwardRecordOutputBot.check({"constituency": "ibd", "ledger_url": "mysql://x"})
        assert level == "error" and "ledger_url" in message
        [[level, message]] = NSMForwardRecordOutputBot.check({})
        assert level == "warning" and "constituency" in message
