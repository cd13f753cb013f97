"""The web limits as one object: built from a bot's parameters or a service's configuration,
checked, given back as parameters; the feedback service's file and the intake's check()."""

import re
from pathlib import Path

import pytest

from intelmq_nsm.bots.collectors.intake.collector import NSMIntakeCollectorBot
from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.web.limits import PARAMETERS, Limits

REPO = Path(__file__).resolve().parents[2]


class Parameters:
    """Attributes as a bot has them."""

    max_connections = 300
    max_body_size = 1000
    failed_auth_burst = ""  # the IntelMQ Manager's empty default
    http_port = 8730  # not a limit


def test_a_bot_s_attributes_and_a_configuration_s_keys_give_the_same_limits():
    from_bot = Limits.from_parameters(Parameters())
    from_file = Limits.from_parameters({"max_connections": 300, "max_body_size": 1000, "http_port": 8730})
    assert from_bot == from_file
    assert (from_bot.max_connections, from_bot.max_body_size) == (300, 1000)
    assert from_bot.failed_auth_burst == Limits.failed_auth_burst  # empty: the default


def test_the_defaults_come_from_the_service_and_former_names_are_understood():
    limits = Limits.from_parameters({"failures_per_minute": 3, "failures_burst": 4}, defaults=config_mod.LIMITS)
    assert (limits.failed_auth_per_minute, limits.failed_auth_burst) == (3, 4)
    # The service's own default (a batch of a CERT's changes), not the web stack's 50 MiB.
    assert limits.max_body_size == config_mod.LIMITS.max_body_size == 1024 * 1024


def test_parameters_give_the_same_limits_back():
    limits = Limits(max_connections=10, requests_per_minute=0, trust_forwarded_for=True)
    assert Limits.from_parameters(limits.parameters()) == limits
    assert set(limits.parameters()) == set(PARAMETERS)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"max_connections": 0}, "max_connections must be more than 0"),
        ({"max_connections_per_address": -1}, "max_connections_per_address must be more than 0"),
        ({"requests_per_minute": -5}, "requests_per_minute must be 0 or more"),
        ({"header_timeout": "10"}, "header_timeout must be a number"),
        ({"trust_forwarded_for": "yes"}, "trust_forwarded_for must be true or false"),
    ],
)
def test_a_bad_limit_is_refused_naming_the_parameter(values, says):
    with pytest.raises(ValueError, match=says):
        Limits.from_parameters(values)


def test_the_intake_s_check_names_a_bad_limit(tmp_path):
    problems = NSMIntakeCollectorBot.check({"token_file": str(tmp_path / "t.json"), "max_connections_per_address": 0})
    assert ["error", "Parameter max_connections_per_address must be more than 0, not 0."] in problems


def test_the_feedback_configuration_takes_the_limits_and_refuses_bad_ones(tmp_path):
    path = tmp_path / "feedback.yaml"
    base = "ledger_url: sqlite:///spool.sqlite\nledger_name: x\nsecret_file: secret\n"
    path.write_text(base + "max_connections_per_address: 8\nfailures_burst: 2\nworkers: 2\n")
    limits = config_mod.load(path).limits
    assert (limits.max_connections_per_address, limits.failed_auth_burst, limits.workers) == (8, 2, 2)
    assert limits.body_timeout == config_mod.LIMITS.body_timeout  # the service's default
    path.write_text(base + "max_connections: 0\n")
    with pytest.raises(config_mod.ConfigError, match=r"feedback.yaml is not valid: Parameter max_connections"):
        config_mod.load(path)


def test_the_feedback_documentation_lists_every_limit_with_the_service_s_default():
    text = (REPO / "harmonization" / "feedback.md").read_text(encoding="utf-8")
    section = text.split("## Limits", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.MULTILINE))
    expected = {name: str(value).lower() for name, value in config_mod.LIMITS.parameters().items()}
    assert documented == expected
