"""An accepted dispute's correction, loaded by the running constituency expert on its next
reload check: the excluded asset stops routing; a re-assigned one routes to its new owner."""

import json
import time
import unittest
from pathlib import Path
from tempfile import TemporaryDirectory

from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot
from intelmq_nsm.cli import main
from tests.outcome.test_disputes import disputed

PATHS = ["_default", "ibd", "surf"]
REGISTRY = "type,value,organisation,source\nnetwork,198.51.100.0/24,GM0599,ripe-import\n"


def event():
    return {"__type": "Event", "classification.type": "vulnerable-system", "source.ip": "198.51.100.7"}


class TestAcceptedCorrectionRouting(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": "/nonexistent"}  # replaced per test
        cls.skip_checks = True

    def routed_to(self, path: str, position: int) -> list:
        message = json.loads(self.get_output_queue(path=path)[position])
        return [o["id"] for o in message["extra.nsm.organisations"]]

    def start(self, tmp: Path) -> Path:
        registry, corrections = tmp / "registry.csv", tmp / "corrections.yaml"
        registry.write_text(REGISTRY, encoding="utf-8")
        corrections.write_text("exclusions: []\n", encoding="utf-8")
        self.input_message = [event()]
        parameters = {"database": [str(registry), str(corrections)], "reload_check_interval": 1}
        self.prepare_bot(parameters=parameters, destination_queues=PATHS)
        self.run_bot(prepare=False, stop_bot=False)
        assert self.routed_to("ibd", 0) == ["GM0599"]
        return corrections

    def again(self, stop=False):
        time.sleep(1.1)  # past the expert's next reload check
        self.input_queue = [json.dumps(event())]
        self.run_bot(prepare=False, stop_bot=stop)

    def test_an_accepted_exclusion_stops_routing_the_asset_there(self):
        with TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            corrections = self.start(tmp)
            database, ident, _ = disputed(tmp)
            assert (
                main(["constituency", "disputes", database, "--corrections", str(corrections), "--accept", ident]) == 0
            )
            self.again(stop=True)
            self.assertRegexpMatchesLog("A registry file changed, reloading.")
            assert len(self.get_output_queue(path="ibd")) == 1  # the first event keeps its route
            [unrouted] = self.get_output_queue(path="_default")
            assert "GM0599" not in unrouted

    def test_an_accepted_re_assignment_routes_to_the_named_organisation(self):
        with TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            corrections = self.start(tmp)
            database, ident, _ = disputed(tmp)
            argv = ["constituency", "disputes", database, "--corrections", str(corrections), "--accept", ident]
            assert main([*argv, "--assign-to", "GM0518"]) == 0
            self.again(stop=True)
            assert self.routed_to("ibd", 1) == ["GM0518"]


if __name__ == "__main__":  # pragma: no cover
    unittest.main()
