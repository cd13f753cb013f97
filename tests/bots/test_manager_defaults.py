"""Each bot with its parameters as the IntelMQ Manager saves them after adding it from the
palette: every default that is null written as an empty string."""

import functools
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from intelmq.lib.test import BotTestCase

from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.bots.collectors.intake import collector
from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot
from intelmq_nsm.bots.outputs.digest import output
from intelmq_nsm.bots.parameters import optional_parameters
from intelmq_nsm.bots.parsers.report.parser import NSMReportParserBot
from intelmq_nsm.testbed.sample_events import event, organisation
from tests.messages import report_message

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "runtime-examples" / "nsm-ibd" / "registry"
REPORT = report_message((REPO / "harmonization" / "examples" / "valid-full.json").read_bytes())


@functools.lru_cache
def listed_parameters() -> dict:
    """Module → parameters with defaults, from the function ``intelmqctl list bots`` uses."""
    from intelmq.lib.utils import list_all_bots

    return {info["module"]: info["parameters"] for bots in list_all_bots().values() for info in bots.values()}


def as_the_manager_saves(module: str, **set_by_operator) -> dict:
    """The bot's listed parameters with each null default written as '' (what the Manager
    saves for a bot added from the palette), then the few an operator must fill in."""
    saved = {name: "" if default is None else default for name, default in listed_parameters()[module].items()}
    assert "" in saved.values(), f"{module} has no null default; this test would prove nothing."
    return {**saved, **set_by_operator}


class ManagerDefaults:
    """Checks shared by the four bots; BotTestCase's own tests (check() without errors,
    the class name, log lines) run with the same parameters."""

    module = ""

    def assert_empty_means_unset(self):
        empty = [name for name, value in self.sysconfig.items() if value == ""]
        assert empty, "no parameter was saved empty"
        optional = optional_parameters(self.bot_reference)
        for name in empty:
            assert name in optional, f"{name} is saved empty but is not an optional parameter"
            assert getattr(self.bot, name) == optional[name], f"{name} stayed {getattr(self.bot, name)!r}"


class TestReportParserFromTheManager(ManagerDefaults, BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMReportParserBot
        cls.sysconfig = as_the_manager_saves("intelmq.bots.parsers.nsm.report")

    def test_parses_a_report_with_case_saved_empty(self):
        assert self.sysconfig["case"] == ""
        self.input_message = REPORT
        self.run_bot()
        assert self.get_output_queue(), "no event"
        self.assert_empty_means_unset()


class TestIntakeCollectorFromTheManager(ManagerDefaults, BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.directory = tempfile.TemporaryDirectory()
        token_file = Path(cls.directory.name) / "tokens.json"
        add_token(token_file, "DIVD", ["divd"], feed_name="DIVD scans")
        cls.bot_reference = collector.NSMIntakeCollectorBot
        cls.sysconfig = as_the_manager_saves(
            "intelmq.bots.collectors.nsm.intake", token_file=str(token_file), http_port=0
        )

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.directory.cleanup()

    def test_starts_with_spool_file_and_feed_fields_saved_empty(self):
        assert self.sysconfig["spool_file"] == ""
        # An unset spool_file is a file in IntelMQ's state folder; here a temporary one.
        with mock.patch.object(collector, "VAR_STATE_PATH", self.directory.name):
            self.run_bot()
        self.bot.shutdown()
        assert list(Path(self.directory.name).glob("*-spool.sqlite"))
        assert (Path(self.directory.name) / "nsm-cases.sqlite").exists()  # the case file every intake shares
        self.assert_empty_means_unset()


class TestConstituencyExpertFromTheManager(ManagerDefaults, BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = as_the_manager_saves("intelmq.bots.experts.nsm.constituency", database=str(REGISTRY))

    def test_routes_with_database_url_saved_empty(self):
        assert self.sysconfig["database_url"] == ""
        self.input_message = {
            "__type": "Event",
            "source.ip": "203.0.113.250",
            "classification.type": "vulnerable-system",
        }
        self.run_bot()
        assert len(self.get_output_queue()) == 1
        self.assert_empty_means_unset()


class TestDigestOutputFromTheManager(ManagerDefaults, BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.directory = tempfile.TemporaryDirectory()
        cls.bot_reference = output.NSMDigestOutputBot
        cls.sysconfig = as_the_manager_saves(
            "intelmq.bots.outputs.nsm.digest", file_directory=str(Path(cls.directory.name) / "out")
        )

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.directory.cleanup()

    def test_spools_with_every_null_default_saved_empty(self):
        assert {self.sysconfig[k] for k in ("constituency", "spool_file", "max_attempts", "smtp_to")} == {""}
        self.input_message = event(1, [organisation("GM0363", "Amsterdam")])
        with mock.patch.object(output, "VAR_STATE_PATH", self.directory.name):
            self.run_bot()
        assert list(Path(self.directory.name).glob("*.spool.sqlite"))
        self.assert_empty_means_unset()


def test_the_helper_leaves_set_and_required_parameters_alone():
    from intelmq_nsm.bots.parameters import without_empty

    given = {"case": "", "format": "", "token_file": "", "evidence_max_length": 10}
    assert without_empty(NSMReportParserBot, given) == {"format": "", "token_file": "", "evidence_max_length": 10}
    assert "token_file" in optional_parameters(collector.NSMIntakeCollectorBot)
    assert "format" not in optional_parameters(NSMReportParserBot)
