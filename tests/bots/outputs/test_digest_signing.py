"""The digest output's signing, TLP and contact parameters with IntelMQ's BotTestCase: what
check() says of the key, and the mails the bot's own channels send to a real SMTP server."""

import email
import email.policy
import logging
import shutil
import tempfile
import unittest
from pathlib import Path

import pytest
from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.outputs.digest.output import NSMDigestOutputBot
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.sample_events import event, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.digest.gpg import Home, signed_and_signature

pytestmark = pytest.mark.e2e  # gpg starts a gpg-agent

AMSTERDAM = dict(organisation("GM0363", "Amsterdam"), language="en")
UTRECHT = organisation("GM0344", "Utrecht")


class TestSignedDigestOutput(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMDigestOutputBot
        cls.workdir = Path(tempfile.mkdtemp(prefix="nsm-signed-"))
        cls.home, cls.receiver = Home(), Home()
        cls.fingerprint = cls.home.new_key("IBD meldingen <meldingen@ibd.example>")
        cls.receiver.import_key(cls.home.export(cls.fingerprint))
        cls.sink = SmtpSink().start()
        cls.sysconfig = {
            "channel": "smtp",
            "constituency": "ibd",
            "smtp_host": "127.0.0.1",
            "smtp_port": cls.sink.port,
            "smtp_security": "none",
            "smtp_from": "meldingen@ibd.example",
            "smtp_reply_to": "desk@ibd.example",
            "language": "nl",
            "tlp": "GREEN",
            "openpgp_fingerprint": cls.fingerprint,
            "openpgp_home": str(cls.home.path),
            "spool_file": str(cls.workdir / "spool.sqlite"),
            "max_age": 0,
            "delivery_interval": 3600,  # the test delivers, below
        }

    @classmethod
    def tearDownClass(cls):
        cls.sink.stop()
        cls.home.close()
        cls.receiver.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def test_the_bots_mails_are_signed_labelled_and_in_each_organisations_language(self):
        self.input_message = [event(1, [AMSTERDAM]), event(2, [UTRECHT], **{"extra.nsm.tlp": "AMBER+STRICT"})]
        self.run_bot(iterations=2)
        # The bot spooled (and at its stop filed) the events; its own channels deliver them.
        spool = DigestSpool(self.sysconfig["spool_file"])
        try:
            result = Deliverer(spool, self.bot.make_channel(), logging.getLogger("test"), max_age=0).run_once(now=2e9)
        finally:
            spool.close()
        # The bot's own delivery thread may have sent one of them before it stopped: each
        # organisation's digest is delivered once, by one of the two.
        assert result["delivered"] <= 2
        self.sink.wait_for(2, timeout=30)
        assert len(self.sink.messages) == 2
        mails = {tuple(rcpt): raw for (_, rcpt, _), raw in zip(self.sink.messages, self.sink.raw)}
        english = email.message_from_bytes(mails[("security@gm0363.example",)], policy=email.policy.default)
        dutch = email.message_from_bytes(mails[("security@gm0344.example",)], policy=email.policy.default)
        assert english["Subject"].startswith("[TLP:GREEN] [IBD] 1 vulnerable system reported for Amsterdam (digest ")
        assert dutch["Subject"].startswith("[TLP:AMBER+STRICT] [IBD] 1 kwetsbaar systeem gemeld voor Utrecht")
        assert english["Reply-To"] == "desk@ibd.example" and english["Auto-Submitted"] == "auto-generated"
        for raw in mails.values():
            entity = raw[raw.index(b"Content-Type: multipart/signed") :]
            result = self.receiver.verify(*signed_and_signature(entity))
            assert result.returncode == 0 and b"Good signature" in result.stderr

    def test_check_says_what_is_wrong_with_the_key(self):
        assert NSMDigestOutputBot.check(self.sysconfig) is None
        with Home() as home:
            expired = home.new_key("Old <old@ibd.example>", expired=True)
            problems = NSMDigestOutputBot.check(
                {**self.sysconfig, "openpgp_home": str(home.path), "openpgp_fingerprint": expired}
            )
            assert problems == [
                [
                    "error",
                    f"The signing key {expired} expired on 2020-01-02; extend it or set a new key. The signing key"
                    " cannot sign: no digest is sent until it can.",
                ]
            ]
            allowed = {**self.sysconfig, "openpgp_home": str(home.path), "openpgp_fingerprint": expired}
            assert NSMDigestOutputBot.check({**allowed, "openpgp_allow_unsigned": True})[0][0] == "warning"
            missing = NSMDigestOutputBot.check({**self.sysconfig, "openpgp_fingerprint": "B" * 40})
            assert missing[0][0] == "error" and f"The signing key {'B' * 40} is not in the GnuPG home" in missing[0][1]
            no_home = NSMDigestOutputBot.check({**self.sysconfig, "openpgp_home": None})
            assert no_home == [
                ["error", "Parameter openpgp_fingerprint needs openpgp_home (the GnuPG home), which is not set."]
            ]
        assert NSMDigestOutputBot.check({**self.sysconfig, "tlp": "PURPLE"})[0] == [
            "error",
            "Parameter tlp: 'PURPLE' is not a TLP label (one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED, or WHITE).",
        ]
