"""NSMDigestOutputBot with its ledger on a real PostgreSQL that is down when the event comes."""

import shutil
import tempfile
import threading
import time
import unittest
from pathlib import Path

import pytest
from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.outputs.digest.output import NSMDigestOutputBot
from intelmq_nsm.digest.ledger import Ledger
from intelmq_nsm.testbed.postgres import PostgresServer
from intelmq_nsm.testbed.sample_events import event, organisation

pytestmark = pytest.mark.e2e

AMSTERDAM = organisation("GM0363", "Amsterdam")


class TestDigestOutputLedgerOutage(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMDigestOutputBot
        cls.workdir = Path(tempfile.mkdtemp(prefix="nsm-digest-pg-"))
        cls.server = PostgresServer().start()
        cls.url = cls.server.create_database("ledger")
        cls.sysconfig = {
            "channel": "file",
            "constituency": "ibd",
            "file_directory": str(cls.workdir / "out"),
            "spool_file": str(cls.workdir / "spool.sqlite"),
            "ledger_url": cls.url,
            "ledger_name": "ibd-mail",
            "ledger_retry_delay": 0.2,
            "max_age": 3600,
            "delivery_interval": 0.05,
        }

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def test_the_output_waits_for_the_ledger_and_loses_nothing(self):
        self.input_message = event(1, [AMSTERDAM])
        self.prepare_bot()
        self.server.stop()
        restart = threading.Timer(1.5, self.server.start)
        restart.start()
        began = time.monotonic()
        self.run_bot(prepare=False, allowed_warning_count=100)  # BotTestCase checks that the message was acknowledged
        restart.join()
        assert time.monotonic() - began >= 1.5
        self.assertLogMatches(r"The ledger cannot be reached, trying again in 0.2 s: .*", levelname="WARNING")
        ledger = Ledger(self.url, name="ibd-mail")
        try:
            [record] = ledger.records()
        finally:
            ledger.close()
        assert (record["state"], record["times_seen"], record["pending"]) == ("open", 1, "new")
