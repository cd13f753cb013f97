"""Every extra.nsm.* key the bots may write is documented for operators."""

import re
from pathlib import Path

from intelmq_nsm import event_contract

DOC = (Path(__file__).resolve().parent.parent / "harmonization" / "extra-nsm-keys.md").read_text(encoding="utf-8")
KEYS = {v for k, v in vars(event_contract).items() if k.isupper() and k != "PREFIX" and isinstance(v, str)}
EXTRA_KEY = re.compile(r"^extra\.[a-z_][a-z_0-9]+(\.[a-z_0-9]+)*$")  # IntelMQ's rule for extra keys


def test_every_key_is_a_valid_extra_key_under_the_prefix():
    assert KEYS
    for key in KEYS:
        assert key.startswith(event_contract.PREFIX) and EXTRA_KEY.match(key), key


def test_every_key_is_documented():
    documented = set(re.findall(r"^\| `(extra\.nsm\.[a-z_.]+)` \|", DOC, re.MULTILINE))
    assert documented == KEYS
