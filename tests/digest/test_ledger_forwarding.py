"""The ledger across installations, on SQLite and on a real PostgreSQL: the hub's records of
findings forwarded to a CERT (state ``forwarded``, organisation ``cert:<key>``), the hub's
finding id a CERT keeps (``upstream_finding_id``, ``upstream_instance``), a case's outcome
counting what was forwarded, and ledgers of an earlier version brought up to date."""

import sqlite3

import pytest
from sqlalchemy import create_engine, text

from intelmq_nsm import event_contract as ec
from intelmq_nsm.digest import notify
from intelmq_nsm.digest.ledger import Ledger, Observation, cert_org_id, forwarded_to, sqlite_url
from intelmq_nsm.digest.ledger.outcome import case_outcome
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.federation.record import record
from intelmq_nsm.testbed.sample_events import event, hub_event, organisation

T0 = 1_780_000_000.0
DAY = 86400.0
CASE = "DIVD-2024-00012"


def test_the_organisation_of_a_forward_names_the_cert():
    assert cert_org_id("ibd") == "cert:ibd"
    assert forwarded_to("cert:ibd") == "ibd" and forwarded_to("GM0363") == ""


def test_each_forwarded_finding_is_recorded_once_and_keeps_what_the_cert_reports(ledger_url):
    ledger = Ledger(ledger_url, name="hub")
    try:
        first = record(hub_event(1), ledger, T0, constituency="ibd")
        assert (first["state"], first["org_id"], first["kind"]) == ("forwarded", "cert:ibd", None)
        record(hub_event(1), ledger, T0 + 1)  # the same event again (a redelivery): counted once
        record(hub_event(2), ledger, T0 + 2)
        rescan = {**hub_event(1, vulnerable=False), "time.observation": "2024-05-08T10:00:00+00:00"}
        record(rescan, ledger, T0 + DAY)  # a rescan's result (a report of its own) goes too
        [one, two] = ledger.records()
        assert (one["times_seen"], one["state"], one["pending"]) == (2, "forwarded", None)
        assert (two["times_seen"], two["state"]) == (1, "forwarded")
        [history] = [r["history"] for r in ledger.history_of(one["finding_id"])]
        assert [(h["old_state"], h["state"]) for h in history] == [(None, "forwarded")]
        assert history[0]["note"] == "Forwarded to cert:ibd (vulnerable)."
        # What the CERT reports back (the return leg) stays when the hub forwards again.
        ledger.record_answer(one["finding_id"], "cert:ibd", "fixed-reported", source="operator", now=T0 + 2 * DAY)
        record(hub_event(1), ledger, T0 + 3 * DAY)
        [one, _] = ledger.records()
        assert (one["state"], one["times_seen"]) == ("fixed-reported", 3)
    finally:
        ledger.close()


def test_a_case_counts_the_findings_forwarded_per_constituency(ledger_url):
    ledger = Ledger(ledger_url, name="hub")
    try:
        for n in range(3):
            record(hub_event(n), ledger, T0 + n)
        record(hub_event(10, constituency="surf"), ledger, T0 + 5)
        # A constituency the hub notifies itself (a small CERT's layout): no forward.
        own = Observation("nf1-" + "e" * 32, "GM0363", "h", org_name="Amsterdam", constituency="own", case_id=CASE)
        ledger.observe([own], now=T0)
        outcome = case_outcome(ledger, CASE, now=T0 + DAY)
        assert outcome["forwarded"] == 4 and outcome["findings"] == 5
        per = {c["constituency"]: c for c in outcome["constituencies"]}
        assert (per["ibd"]["forwarded"], per["surf"]["forwarded"], per["own"]["forwarded"]) == (3, 1, 0)
        assert per["ibd"]["by_state"] == {"forwarded": 3} and per["ibd"]["open"] == 3
    finally:
        ledger.close()


def test_a_cert_keeps_the_hubs_finding_id_and_instance_of_a_forwarded_finding(tmp_path, ledger_url):
    ledger = Ledger(ledger_url, name="ibd-digest-mail")
    spool = DigestSpool(tmp_path / "spool.sqlite")
    try:
        amsterdam = organisation("GM0363", "Amsterdam")
        hub = {"instance": "nsm-hub", "finding_id": "nf1-" + "a" * 32, "case_id": CASE}
        forwarded = event(1, [amsterdam], **{ec.UPSTREAM: hub})
        own = event(2, [amsterdam])
        notify.accept(forwarded, spool, ledger, T0)
        notify.accept(own, spool, ledger, T0)
        upstream = {r["target"]: (r["upstream_finding_id"], r["upstream_instance"]) for r in ledger.records()}
        assert upstream == {"198.51.100.2:443": ("nf1-" + "a" * 32, "nsm-hub"), "203.0.113.3:443": ("", "")}
        # A finding of the CERT's own that a hub forwards later is the hub's from then on.
        later = event(2, [amsterdam], **{ec.UPSTREAM: {**hub, "finding_id": "nf1-" + "b" * 32}})
        notify.accept(later, spool, ledger, T0 + DAY)
        upstream = {r["target"]: r["upstream_finding_id"] for r in ledger.records()}
        assert upstream["203.0.113.3:443"] == "nf1-" + "b" * 32
    finally:
        spool.close()
        ledger.close()


def test_a_forwarded_event_with_a_malformed_upstream_is_refused_naming_the_field(tmp_path):
    from intelmq_nsm.digest.event_findings import FindingError, findings_of

    bad = event(1, [organisation("GM0363", "Amsterdam")], **{ec.UPSTREAM: {"finding_id": 42}})
    with pytest.raises(FindingError) as caught:
        findings_of(bad)
    assert caught.value.field == f"{ec.UPSTREAM}.finding_id"


OLD_STATES = (
    "'open', 'notified', 'fixed-verified', 'reopened', 'fixed-reported', 'disputed', 'accepted-risk', 'false-positive'"
)


def make_it_old_sqlite(path) -> None:
    """The ledger as the version before forwarding made it: no upstream columns, and a
    state constraint without ``forwarded`` (SQLite keeps it in the table's text)."""
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE ledger_findings DROP COLUMN upstream_finding_id")
    db.execute("ALTER TABLE ledger_findings DROP COLUMN upstream_instance")
    [sql] = db.execute("SELECT sql FROM sqlite_master WHERE name = 'ledger_findings'").fetchone()
    old = sql.replace(", 'forwarded'", "")
    assert old != sql
    db.execute("PRAGMA legacy_alter_table = ON")
    db.execute("ALTER TABLE ledger_findings RENAME TO newer")
    db.execute(old)
    db.execute("INSERT INTO ledger_findings SELECT * FROM newer")
    db.execute("DROP TABLE newer")
    db.execute("CREATE INDEX ledger_findings_case ON ledger_findings (ledger, case_id)")
    db.commit()
    db.close()


def make_it_old_postgresql(url) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_findings DROP COLUMN upstream_finding_id"))
        conn.execute(text("ALTER TABLE ledger_findings DROP COLUMN upstream_instance"))
        conn.execute(text("ALTER TABLE ledger_findings DROP CONSTRAINT state_known"))
        conn.execute(text(f"ALTER TABLE ledger_findings ADD CONSTRAINT state_known CHECK (state IN ({OLD_STATES}))"))
    engine.dispose()


def test_a_ledger_of_the_version_before_forwarding_takes_forwards_and_keeps_its_records(ledger_url):
    ledger = Ledger(ledger_url, name="ibd-digest-mail")
    ledger.observe([Observation("nf1-" + "1" * 32, "GM0363", "e1", org_name="Amsterdam", case_id=CASE)], now=T0)
    ledger.record_delivery("digest-1", [("nf1-" + "1" * 32, "GM0363", "new")], now=T0 + 60)
    ledger.close()
    if ledger_url.startswith("sqlite"):
        make_it_old_sqlite(ledger_url[len("sqlite:///") :])
        db = sqlite3.connect(ledger_url[len("sqlite:///") :])
        with pytest.raises(sqlite3.IntegrityError):  # what the old constraint refuses
            db.execute("UPDATE ledger_findings SET state = 'forwarded'")
        db.close()
    else:
        make_it_old_postgresql(ledger_url)

    ledger = Ledger(ledger_url, name="ibd-digest-mail")
    try:
        [old] = ledger.records()
        assert (old["state"], old["notifications"], old["upstream_finding_id"]) == ("notified", 1, "")
        assert [d["digest_id"] for d in ledger.history_of(old["finding_id"])[0]["digests"]] == ["digest-1"]
        hub = Ledger(ledger_url, name="hub")
        record(hub_event(1), hub, T0 + DAY)
        assert [r["state"] for r in hub.records()] == ["forwarded"]
        hub.close()
        # Opened again, nothing more to change (the second opening finds it up to date).
        Ledger(ledger_url, name="hub").close()
    finally:
        ledger.close()
    if ledger_url.startswith("sqlite"):
        db = sqlite3.connect(ledger_url[len("sqlite:///") :])
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        references = {r[2] for r in db.execute("PRAGMA foreign_key_list(ledger_history)")}
        db.close()
        assert {"ledger_findings_tally", "ledger_findings_fixed_days"} <= indexes
        assert "ledger_findings_case" not in indexes and "ledger_findings_before" not in tables
        assert references == {"ledger_findings"}


def test_a_sqlite_ledger_in_a_spool_file_is_upgraded_with_the_spool_beside_it(tmp_path):
    path = tmp_path / "spool.sqlite"
    spool = DigestSpool(path)
    ledger = Ledger(sqlite_url(path), name="x")
    ledger.close()
    spool.close()
    make_it_old_sqlite(path)
    spool = DigestSpool(path)
    ledger = Ledger(sqlite_url(path), name="x")
    try:
        notify.arrive(event(1, [organisation("GM0363", "Amsterdam")]), spool, T0)
        assert notify.file_arrivals(spool, ledger) == 1
        assert [r["state"] for r in ledger.records()] == ["open"]
    finally:
        ledger.close()
        spool.close()
