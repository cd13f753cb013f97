"""The intake collector bot with IntelMQ's BotTestCase: spooled reports go into the pipeline."""

import base64
import json
import tempfile
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as ec
from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.bots.collectors.intake.collector import NSMIntakeCollectorBot
from intelmq_nsm.intake.spool import ACCEPTED, QUEUED, Submission, SubmissionSpool

CSV = b"ip,asn\n192.0.2.20,64496\n"
CASE = {"id": "DIVD-2024-00032", "title": "Open example service"}
#: A spooled report's metadata as the intake service stores it.
META = {
    "researcher": "DIVD",
    "feed_name": "DIVD scans",
    "feed_code": "divd",
    "observed": "2024-04-15T09:00:00+00:00",
    "submission_id": "c" * 64,
    "content_type": "text/csv",
    "case": CASE,
    "case_owner": "DIVD",
}
OUTPUT = {
    "__type": "Report",
    "feed.provider": "DIVD",
    "feed.name": "DIVD scans",
    "feed.code": "divd",
    "time.observation": "2024-04-15T09:00:00+00:00",
    ec.SUBMISSION_ID: "c" * 64,
    ec.CONTENT_TYPE: "text/csv",
    ec.CASE: CASE,
    ec.CASE_OWNER: "DIVD",
    "feed.accuracy": 100.0,
    "raw": base64.b64encode(CSV).decode(),
}


class TestIntakeCollectorBot(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.directory = tempfile.TemporaryDirectory()
        cls.token_file = Path(cls.directory.name) / "tokens.json"
        add_token(cls.token_file, "DIVD", ["divd"], feed_name="DIVD scans")
        cls.spool_file = Path(cls.directory.name) / "spool.sqlite"
        cls.bot_reference = NSMIntakeCollectorBot
        cls.sysconfig = {
            "token_file": str(cls.token_file),
            "spool_file": str(cls.spool_file),
            "case_file": str(Path(cls.directory.name) / "cases.sqlite"),
            "http_port": 0,
            "name": "Intake",
        }

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.directory.cleanup()

    def tearDown(self):
        if getattr(self, "bot", None) is not None:
            self.bot.shutdown()
        super().tearDown()

    def test_a_spooled_report_is_sent_with_the_token_s_identity_and_marked_queued(self):
        spool = SubmissionSpool(self.spool_file)
        submission = Submission("c" * 64, "DIVD", "0badc0de", "text/csv", ACCEPTED, 1, 1, 1.0, 1.0)
        spool.accept(submission, [(META, CSV)])
        self.run_bot()
        self.assertMessageEqual(0, OUTPUT)
        self.assertEqual(len(self.get_output_queue()), 1)
        self.assertEqual(spool.get("c" * 64).state, QUEUED)
        self.assertEqual(spool.pending_count(), 0)
        spool.close()

    def test_a_report_that_cannot_be_built_is_logged_and_does_not_block_the_spool(self):
        spool = SubmissionSpool(self.spool_file)
        bad = Submission("d" * 64, "DIVD", "0badc0de", "text/csv", ACCEPTED, 1, 1, 1.0, 1.0)
        good = Submission("e" * 64, "DIVD", "0badc0de", "text/csv", ACCEPTED, 1, 1, 1.0, 1.0)
        spool.accept(bad, [({**META, "observed": "yesterday"}, CSV)])
        spool.accept(good, [({**META, "submission_id": "e" * 64}, CSV)])
        self.allowed_error_count = 1
        self.run_bot()
        self.assertLogMatches(r"Report 1 of submission d{64} cannot be built: .*time\.observation.*", "ERROR")
        self.assertMessageEqual(0, {**OUTPUT, ec.SUBMISSION_ID: "e" * 64})
        self.assertEqual(spool.pending_count(), 0)
        spool.close()

    def test_check_names_a_missing_token_file(self):
        self.assertEqual(
            NSMIntakeCollectorBot.check({"token_file": None}),
            [["error", "Parameter token_file is required: create it with 'intelmq-nsm tokens add'."]],
        )
        missing = str(Path(self.directory.name) / "none.json")
        self.assertIn("does not exist yet", json.dumps(NSMIntakeCollectorBot.check({"token_file": missing})))
