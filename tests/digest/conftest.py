"""What the digest tests share: a spool in the test's tmp path."""

import pytest

from intelmq_nsm.digest.spool import DigestSpool


@pytest.fixture
def spool(tmp_path):
    spool = DigestSpool(tmp_path / "spool.sqlite")
    yield spool
    spool.close()
