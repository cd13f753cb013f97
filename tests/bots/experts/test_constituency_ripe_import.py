"""The constituency expert on a registry with a RIPE import beside the manual file: manual entries keep precedence."""

import json
import shutil
import tempfile
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as contract
from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot
from intelmq_nsm.cli import main

RIPE = Path(__file__).resolve().parents[2] / "constituency" / "data" / "ripe"


class TestManualBeforeImported(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        registry = Path(cls._tmp.name) / "registry"
        shutil.copytree(RIPE / "registry", registry)
        code = main(
            [
                "constituency", "import", "ripe", str(RIPE), "-d", str(registry), "--country", "NL",
                "--dump-date", "2026-11-30", "-o", str(registry / "ripe-import.csv"),
                "--report", str(Path(cls._tmp.name) / "review"),
            ]
        )  # fmt: skip
        assert code == 0
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": str(registry)}

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()
        super().tearDownClass()

    def routed(self, ip):
        self.input_message = [{"__type": "Event", "classification.type": "vulnerable-system", "source.ip": ip}]
        self.prepare_bot(destination_queues=["_default", "ibd"])
        self.run_bot(prepare=False)
        tagged = [json.loads(m) for m in self.get_output_queue(path="ibd")]
        return tagged[0] if tagged else None

    def test_the_manual_entry_keeps_its_network_from_the_imported_claim(self):
        event = self.routed("203.0.113.5")  # manual GM0518, imported GM0385 (Edam-Volendam)
        assert [o["id"] for o in event[contract.ORGANISATIONS]] == ["GM0518"]
        assert event[contract.MATCHES][0]["source"] == "manual"
        assert contract.TIE not in event

    def test_an_imported_network_routes_with_its_source_and_evidence(self):
        event = self.routed("198.51.100.70")
        assert [o["id"] for o in event[contract.ORGANISATIONS]] == ["GM0228"]
        match = event[contract.MATCHES][0]
        assert (match["matched"], match["source"]) == ("198.51.100.64/27", "ripe-2026-11-30")
        assert match["note"].startswith("RIPE inetnum 198.51.100.0 - 198.51.100.95: org ORG-GE1-TEST")

    def test_a_weak_match_is_not_routed(self):
        assert self.routed("203.0.113.70") is None  # only netname/descr say Den Haag
        assert len(self.get_output_queue(path="_default")) == 1
