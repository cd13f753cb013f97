"""The spool: stored once, grouped per organisation, digests formed when due, stable ids."""

import sqlite3

import pytest

from intelmq_nsm.digest import grouping
from intelmq_nsm.digest.event_findings import FindingError, findings_of
from intelmq_nsm.digest.spool import DigestSpool, SpoolReader
from intelmq_nsm.testbed.sample_events import event, organisation

AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
SSO = organisation("SSO-0001", "Shared Service Noord", kind="shared-service")


@pytest.fixture
def spool(tmp_path):
    spool = DigestSpool(tmp_path / "spool.sqlite")
    yield spool
    spool.close()


def test_the_same_event_delivered_twice_is_stored_once(spool):
    message = event(1, [AMSTERDAM])
    assert spool.add(findings_of(message), now=100) == 1
    assert spool.add(findings_of(dict(message)), now=101) == 0
    assert spool.counts()["waiting_findings"] == 1


def test_wal_mode_and_the_chosen_synchronous_level_are_in_effect(tmp_path):
    spool = DigestSpool(tmp_path / "full.sqlite", synchronous="FULL")
    assert spool.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(ValueError, match="synchronous"):
        DigestSpool(tmp_path / "x.sqlite", synchronous="SOMETIMES")


def test_a_committed_event_is_visible_to_another_connection_at_once(spool):
    spool.add(findings_of(event(1, [AMSTERDAM])))
    other = sqlite3.connect(spool.path)
    assert other.execute("SELECT org_id FROM events").fetchall() == [("GM0363",)]


def test_an_event_for_a_municipality_and_its_shared_service_goes_into_two_digests(spool):
    spool.add(findings_of(event(1, [AMSTERDAM, SSO])), now=0)
    formed = spool.form_digests(max_events=10, max_age=60, now=0, flush=True)
    digests = [spool.load(d) for d in formed]
    assert sorted(d.organisation["id"] for d in digests) == ["GM0363", "SSO-0001"]
    assert all(len(d.findings) == 1 for d in digests)


def test_a_group_is_due_when_full_or_old_or_flushed(spool):
    for n in range(3):
        spool.add(findings_of(event(n, [AMSTERDAM])), now=10)
    spool.add(findings_of(event(9, [UTRECHT])), now=50)
    assert spool.form_digests(max_events=4, max_age=100, now=60) == []
    [full] = spool.form_digests(max_events=3, max_age=100, now=60)
    assert spool.load(full).organisation["id"] == "GM0363"
    assert spool.form_digests(max_events=3, max_age=100, now=140) == []  # Utrecht is 90 s old
    [old] = spool.form_digests(max_events=3, max_age=100, now=150)
    assert spool.load(old).organisation["id"] == "GM0344"
    spool.add(findings_of(event(20, [UTRECHT])), now=160)
    assert len(spool.form_digests(max_events=3, max_age=100, now=161, flush=True)) == 1


def test_a_large_group_is_split_into_digests_of_max_events(spool):
    for n in range(7):
        spool.add(findings_of(event(n, [AMSTERDAM])), now=n)
    formed = spool.form_digests(max_events=3, max_age=1000, now=10, flush=True)
    assert [len(spool.load(d).findings) for d in formed] == [3, 3, 1]
    assert spool.counts() == {"pending": 3, "attempting": 0, "delivered": 0, "failed": 0, "waiting_findings": 0}


def test_digest_id_is_the_hash_of_its_content_and_stable(tmp_path):
    ids = []
    for name in ("a", "b"):
        spool = DigestSpool(tmp_path / f"{name}.sqlite")
        for n in (3, 1, 2) if name == "a" else (1, 2, 3):
            spool.add(findings_of(event(n, [AMSTERDAM])), now=n)
        [digest] = spool.form_digests(max_events=10, max_age=0, now=10)
        ids.append(digest)
    assert ids[0] == ids[1]
    assert ids[0] == grouping.digest_id(
        "GM0363",
        "ibd",
        grouping.group_key("ibd", "GM0363"),
        [findings_of(event(n, [AMSTERDAM]))[0].event_hash for n in (1, 2, 3)],
    )


def test_grouping_by_case_separates_cases(tmp_path):
    spool = DigestSpool(tmp_path / "spool.sqlite", by_case=True)
    spool.add(findings_of(event(1, [AMSTERDAM], case="DIVD-2024-00001")), now=0)
    spool.add(findings_of(event(2, [AMSTERDAM], case="DIVD-2024-00002")), now=0)
    formed = spool.form_digests(max_events=10, max_age=0, now=1)
    assert sorted(spool.load(d).findings[0]["case_id"] for d in formed) == ["DIVD-2024-00001", "DIVD-2024-00002"]


def test_states_retry_and_purge(spool):
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    spool.add(findings_of(event(2, [UTRECHT])), now=0)
    first, second = spool.form_digests(max_events=10, max_age=0, now=1)
    assert set(spool.due(now=1)) == {first, second}
    assert spool.mark_retry(first, "HTTP 503", delay=30, now=1) == 1
    assert spool.due(now=2) == [second]
    assert spool.due(now=31) == [first, second] or set(spool.due(now=31)) == {first, second}
    spool.mark_failed(second, "HTTP 400")
    assert spool.due(now=100) == [first]
    assert [d["last_error"] for d in spool.digests("failed")] == ["HTTP 400"]
    assert spool.retry(second, now=100)
    assert set(spool.due(now=100)) == {first, second}
    spool.mark_delivered(first, now=200)
    assert not spool.retry(first)
    assert spool.unrecorded() == [first]
    assert spool.purge(older_than=0, now=300) == 0  # kept until the ledger counted it
    spool.mark_recorded(first)
    assert spool.unrecorded() == []
    assert spool.purge(older_than=0, now=300) == 1
    assert spool.counts() == {"pending": 1, "attempting": 0, "delivered": 0, "failed": 0, "waiting_findings": 0}
    with pytest.raises(KeyError):
        spool.load(first)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"constituency": None}, "constituency", "missing"),
        ({"constituency": "ncsc"}, "constituency", "differs"),
        ({"extra.nsm.organisations": []}, "extra.nsm.organisations", "missing or empty"),
        ({"extra.nsm.organisations": [{"name": "No id"}]}, "extra.nsm.organisations", "no 'id'"),
    ],
)
def test_events_without_constituency_or_organisation_are_refused_with_the_field(changes, field, reason):
    message = event(1, [AMSTERDAM])
    for key, value in changes.items():
        if value is None:
            del message[key]
        else:
            message[key] = value
    with pytest.raises(FindingError, match=reason) as info:
        findings_of(message, constituency="ibd")
    assert info.value.field == field


def test_findings_read_hierarchical_extra_too():
    message = event(1, [AMSTERDAM])
    flat_extra = {k[len("extra.") :]: message.pop(k) for k in list(message) if k.startswith("extra.")}
    message["extra"] = flat_extra
    [finding] = findings_of(message)
    assert finding.organisation["id"] == "GM0363"
    assert finding.row["case_id"] == "DIVD-2024-00012"
    assert finding.row["cves"] == "CVE-2023-4966"


OLD_DIGESTS = """
CREATE TABLE digests (
    id TEXT PRIMARY KEY, group_key TEXT NOT NULL, org_id TEXT NOT NULL, constituency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, last_error TEXT,
    created REAL NOT NULL, delivered_at REAL, event_count INTEGER NOT NULL
);
CREATE INDEX digests_due ON digests (state, next_attempt);
INSERT INTO digests VALUES ('d1', 'k', 'GM0363', 'ibd', 'delivered', 1, 5, NULL, 1, 5, 2);
INSERT INTO digests VALUES ('d2', 'k', 'GM0344', 'ibd', 'pending', 3, 9, 'HTTP 503', 2, NULL, 1);
"""


def test_a_spool_from_before_the_attempting_state_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_DIGESTS)
    spool = DigestSpool(path)
    try:
        rows = {d["id"]: d for d in spool.digests()}
        assert {i: (d["state"], d["attempts"], d["last_error"]) for i, d in rows.items()} == {
            "d1": ("delivered", 1, None),
            "d2": ("pending", 3, "HTTP 503"),
        }
        spool.mark_attempting("d2", now=10)
        assert spool.interrupted() == [("d2", 10)]
        assert spool.due(now=100) == []
        spool.mark_interrupted("d2", "cut short", now=11)
        assert spool.due(now=11) == ["d2"] and spool.digests("pending")[0]["attempts"] == 4
    finally:
        spool.close()
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "digests_due" in indexes


def test_a_reader_from_outside_counts_what_the_spool_holds_and_makes_no_spool(tmp_path):
    missing = SpoolReader(tmp_path / "not-yet.sqlite")
    assert (missing.held(), missing.arriving(), missing.delivered_rows("d", "GM0363")) == (0, 0, [])
    assert not (tmp_path / "not-yet.sqlite").exists()
    spool = DigestSpool(tmp_path / "spool.sqlite")
    try:
        spool.add(findings_of(event(1, [AMSTERDAM, UTRECHT])), now=0)
        spool.arrive(event(2, [AMSTERDAM]), now=1)
        [digest_id] = spool.form_digests(max_events=10, max_age=0, now=2, flush=True)[:1]
        reader = SpoolReader(spool.path)
        assert (reader.held(), reader.arriving()) == (3, 1)
        org_id = spool.load(digest_id).organisation["id"]
        [row] = reader.delivered_rows(digest_id, org_id)
        assert row["finding_id"] == findings_of(event(1, [AMSTERDAM]))[0].row["finding_id"]
        assert reader.delivered_rows(digest_id, "GM0000") == []
    finally:
        spool.close()
