"""The operators' overview shows the digest output's failed digests and unreachable contacts,
read from its spool file, on the real feedback service."""

import re
import time

import pytest

from intelmq_nsm import storage
from intelmq_nsm.digest.contacts import ContactBook
from intelmq_nsm.digest.spool import DigestSpool
from tests.outcome.test_overview import Served, cookie_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path)
    yield served
    served.close()


def test_failed_digests_and_unreachable_contacts_are_on_the_overview(served, tmp_path):
    _, headers, _ = served.login(served.operator_token)
    _, _, page = served.request("GET", "/operators", headers=cookie_of(headers))
    assert b"No failed digests; no contact is unreachable." in page
    spool = DigestSpool(tmp_path / "spool.sqlite")
    try:
        with storage.transaction(spool.db) as db:
            db.execute(
                "INSERT INTO digests (id, group_key, org_id, constituency, state, attempts, next_attempt, last_error,"
                " created, event_count) VALUES (?, 'k', 'GM0599', 'ibd', 'failed', 1, 0, ?, ?, 1)",
                (
                    "f" * 64,
                    "Every contact refused the digest (ciso@gm0599.example: RCPT answered 550 <b>x</b>)",
                    time.time(),
                ),
            )
        ContactBook(spool.db).mark("ciso@gm0599.example", "RCPT answered 550 5.1.1 User unknown", "smtp", "GM0599")
    finally:
        spool.close()
    _, _, page = served.request("GET", "/operators", headers=cookie_of(headers))
    # Outside text is isolated in <bdi> (feedback/shown.py): read without it.
    text = re.sub(r"</?bdi>", "", re.sub(r">\s+<", "><", page.decode()))
    section = text.split("<h2>Delivery problems</h2>")[1].split("<h2>")[0]
    assert "<td>ffffffffffffffff</td><td>GM0599</td>" in section
    assert "RCPT answered 550 &lt;b&gt;x&lt;/b&gt;" in section  # shown as text
    assert "<td>ciso@gm0599.example</td><td>GM0599</td>" in section and "User unknown" in section
