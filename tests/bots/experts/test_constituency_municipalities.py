"""The 342-municipality registry and 10,000 random events through the bot itself."""

import json
import tempfile
import unittest
from pathlib import Path

from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as contract
from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot
from tests.constituency.municipal_registry import Oracle, build, random_events, write_csv

ASSETS, EXCLUSIONS = build()
EVENTS = random_events(ASSETS, 10_000)


class TestAllMunicipalities(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        database = Path(cls._tmp.name) / "municipalities.csv"
        write_csv(database, ASSETS, EXCLUSIONS)
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": str(database)}

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()
        super().tearDownClass()

    def test_no_event_is_tagged_with_an_organisation_that_does_not_own_its_asset(self):
        self.input_message = [{"__type": "Event", "classification.type": "vulnerable-system", **e} for e in EVENTS]
        self.prepare_bot(destination_queues=["_default", "ibd"])
        self.run_bot(iterations=len(EVENTS), prepare=False)
        tagged = [json.loads(m) for m in self.get_output_queue(path="ibd")]
        unmatched = self.get_output_queue(path="_default")
        oracle = Oracle(ASSETS, EXCLUSIONS)
        expected = [oracle.owners(e) for e in EVENTS]
        assert len(tagged) == sum(1 for owners in expected if owners)
        assert len(unmatched) == len(EVENTS) - len(tagged)
        routed = iter(tagged)
        for event, owners in zip(EVENTS, expected):
            if owners:
                output = next(routed)
                assert {o["id"] for o in output[contract.ORGANISATIONS]} == owners, (event, output)
                assert output["constituency"] == "ibd"
                assert bool(output.get(contract.TIE)) == oracle.tie(event), (event, output)
                roles = {o["id"]: o["role"] for o in output[contract.ORGANISATIONS]}
                service = oracle.service_owners(event)
                assert all(role == ("service" if org in service else "network") for org, role in roles.items())
