"""The hub of the return leg's tests: its ledger with the findings it forwarded to the IBD (1, 2,
3) and to SURFcert (4), and its feedback service on 127.0.0.1."""

import pytest

from intelmq_nsm.digest.ledger import sqlite_url
from intelmq_nsm.testbed.tiers import Hub, hub_ledger


@pytest.fixture
def hub(tmp_path):
    url = sqlite_url(tmp_path / "hub-ledger.sqlite")
    hub_ledger(url, {"ibd": [1, 2, 3], "surf": [4]}).close()
    made = Hub.in_folder(tmp_path, url)
    yield made
    made.stop()
