"""The ledger's part of the return leg, on SQLite and PostgreSQL: a CERT's outbox (its history
of the hub's findings, a cursor per hub, refused changes kept) and a hub applying what a CERT
reported (by change id once, only to findings forwarded to that CERT, through the one
precedence function); and a ledger made before all this taking it on."""

import sqlite3

import pytest
from sqlalchemy import create_engine, text

from intelmq_nsm.digest import notify
from intelmq_nsm.digest.event_findings import FindingError, findings_of
from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url
from intelmq_nsm.digest.ledger.downstream import Reported
from intelmq_nsm.digest.ledger.outcome import case_outcome
from intelmq_nsm.digest.ledger.precedence import decide
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.sample_events import event
from tests.federation.two_tiers import AMSTERDAM, CASE, HUB, T0, UTRECHT, forwarded_event, hub_id, hub_ledger


def reported(n, state, at, seq=None, org="GM0363", name="", **extra):
    change_id = f"ibd-cert/ibd-digest-mail/{seq if seq is not None else n}"
    return Reported(change_id, hub_id(n), state, at, org, name, **extra)


def test_the_precedence_takes_the_report_but_keeps_a_verified_fix_from_an_unverified_word():
    assert decide(None, "open", "scan").state == "open"
    assert decide("open", "notified", "cert:ibd").state == "notified"
    assert decide("forwarded", "notified", "cert:ibd").state == "notified"
    assert decide("fixed-verified", "fixed-reported", "cert:ibd").state == "fixed-verified"
    assert decide("fixed-verified", "reopened", "cert:ibd").state == "reopened"
    assert decide("notified", "disputed", "owner").state == "disputed"


def test_a_cert_s_changes_apply_once_with_their_source_and_time(ledger_url):
    hub = hub_ledger(ledger_url, {"ibd": [1, 2], "surf": [3]})
    try:
        first = [reported(1, "open", T0 + 10, seq=11), reported(1, "notified", T0 + 60, seq=12, name="Amsterdam")]
        assert hub.apply_reported("cert:ibd", "ibd-cert", first, now=T0 + 100) == ["applied", "applied"]
        # The same changes again (a batch sent twice): applied once.
        assert hub.apply_reported("cert:ibd", "ibd-cert", first, now=T0 + 200) == ["duplicate", "duplicate"]
        [record] = hub.records(org_id="cert:ibd", state="notified")
        assert (record["finding_id"], record["first_notified"], record["last_notified"]) == (
            hub_id(1),
            T0 + 60,
            T0 + 60,
        )
        [mine] = [r for r in hub.history_of(hub_id(1)) if r["org_id"] == "cert:ibd"]
        by_cert = [h for h in mine["history"] if h["source"] == "cert:ibd"]
        assert [(h["at"], h["old_state"], h["state"], h["reference"]) for h in by_cert] == [
            (T0 + 10, "open", "open", "ibd-cert/ibd-digest-mail/11"),
            (T0 + 60, "open", "notified", "ibd-cert/ibd-digest-mail/12"),
        ]
        assert "ibd-cert reported notified" in by_cert[1]["note"] and "Amsterdam (GM0363)" in by_cert[1]["note"]
        # Fixed at the CERT (a rescan there) two days later: the hub counts the days to the fix.
        fix = [reported(1, "fixed-verified", T0 + 2 * 86400, seq=13, cert_source="scan")]
        assert hub.apply_reported("cert:ibd", "ibd-cert", fix) == ["applied"]
        [record] = hub.records(org_id="cert:ibd", state="fixed-verified")
        assert record["fixed_at"] == T0 + 2 * 86400
        # The researcher's figures and chart follow the CERT: notified, fixed two days later.
        outcome = case_outcome(hub, CASE, now=T0 + 3 * 86400)
        assert (outcome["notified"], outcome["fixed_verified"], outcome["days_to_fix"]["median"]) == (1, 1, 2.0)
        assert outcome["daily"][-1] == {"date": outcome["daily"][-1]["date"], "open": 2, "fixed": 1}
        # An owner's word after it does not undo the verified fix (the one precedence rule).
        late = [reported(1, "fixed-reported", T0 + 3 * 86400, seq=14, cert_source="owner")]
        assert hub.apply_reported("cert:ibd", "ibd-cert", late) == ["applied"]
        assert hub.records(org_id="cert:ibd", state="fixed-verified")[0]["finding_id"] == hub_id(1)
        [row] = hub.case_downstream(CASE)
        assert (row["downstream_id"], row["name"], row["state"], row["instance"]) == (
            "GM0363",
            "",
            "fixed-verified",
            "ibd-cert",
        )
    finally:
        hub.close()


def test_a_cert_speaks_only_of_findings_forwarded_to_it_and_ids_are_per_cert(ledger_url):
    hub = hub_ledger(ledger_url, {"ibd": [1], "surf": [3]})
    try:
        before = hub.records()
        # SURF's token reports on IBD's finding, and a finding the hub never forwarded.
        changes = [reported(1, "false-positive", T0 + 5), reported(9, "notified", T0 + 5)]
        assert hub.apply_reported("cert:surf", "surf-cert", changes) == ["not_forwarded", "not_forwarded"]
        assert hub.records() == before and hub.received() == []
        # The same change id from another CERT is not a duplicate of IBD's: ids are per CERT.
        assert hub.apply_reported("cert:ibd", "ibd-cert", [reported(1, "notified", T0 + 6, seq=1)]) == ["applied"]
        assert hub.apply_reported("cert:surf", "surf-cert", [reported(3, "notified", T0 + 6, seq=1)]) == ["applied"]
        assert [(r["source"], r["changes"]) for r in hub.received()] == [("cert:ibd", 1), ("cert:surf", 1)]
        with pytest.raises(ValueError, match="cert:"):
            hub.apply_reported("owner", "x", [])
    finally:
        hub.close()


def cert_ledger(path):
    """A CERT's spool with its ledger: findings 1 and 2 from the hub, 5 its own."""
    spool = DigestSpool(path)
    ledger = Ledger(sqlite_url(path), name="ibd-digest-mail")
    events = [forwarded_event(1), forwarded_event(2, [AMSTERDAM, UTRECHT]), event(5, [UTRECHT])]
    for e in events:
        notify.accept(e, spool, ledger, T0)
    spool.close()
    return ledger


def test_a_cert_s_ledger_keeps_the_hub_s_finding_id_beside_its_own(tmp_path):
    ledger = cert_ledger(tmp_path / "spool.sqlite")
    try:
        upstream = {(r["org_id"], r["upstream_finding_id"], r["upstream_instance"]) for r in ledger.records()}
        assert upstream == {
            ("GM0363", hub_id(1), HUB),
            ("GM0363", hub_id(2), HUB),
            ("GM0344", hub_id(2), HUB),
            ("GM0344", "", ""),
        }
        # Its own identity is its own: the hub's id is never the CERT's finding id.
        assert not {r["finding_id"] for r in ledger.records()} & {hub_id(1), hub_id(2)}
    finally:
        ledger.close()


@pytest.mark.parametrize(
    "value,field",
    [
        ("not json", "extra.nsm.upstream"),
        ({"instance": HUB}, "extra.nsm.upstream.finding_id"),
        ({"finding_id": "", "instance": HUB}, "extra.nsm.upstream.finding_id"),
        ({"finding_id": "x" * 201}, "extra.nsm.upstream.finding_id"),
        ({"finding_id": "nf1-1", "instance": 7}, "extra.nsm.upstream.instance"),
        (["a"], "extra.nsm.upstream"),
    ],
)
def test_an_upstream_no_hub_sends_is_refused_naming_the_field(value, field):
    with pytest.raises(FindingError) as raised:
        findings_of(event(1, [AMSTERDAM], **{"extra.nsm.upstream": value}))
    assert raised.value.field == field


def test_the_outbox_is_the_history_of_the_hub_s_findings_in_order_and_in_batches(tmp_path):
    ledger = cert_ledger(tmp_path / "spool.sqlite")
    try:
        assert ledger.outbox("https://hub.example/v1/outcomes")[0] == 0
        rows, upto = ledger.outgoing(0, 100)
        # Three records of the hub's findings, first seen; the CERT's own finding is not there.
        assert [(r["upstream_finding_id"], r["org_id"], r["state"]) for r in rows] == [
            (hub_id(1), "GM0363", "open"),
            (hub_id(2), "GM0363", "open"),
            (hub_id(2), "GM0344", "open"),
        ]
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and upto == rows[-1]["id"] + 1
        assert ledger.outgoing(0, 2)[0] == rows[:2]
        assert ledger.outgoing(rows[0]["id"], 100)[0] == rows[1:]
        assert ledger.outgoing(0, 100, instance="another-hub")[0] == []
        # The cursor only moves forward; refused changes are kept for the operators.
        refusal = {
            "history_id": rows[1]["id"],
            "change_id": "x/y/2",
            "finding_id": rows[1]["finding_id"],
            "upstream_finding_id": hub_id(2),
            "state": "open",
            "status": 200,
            "reason": "not_forwarded: nope",
        }
        ledger.outbox_sent("https://hub.example/v1/outcomes", upto, [refusal], now=T0)
        ledger.outbox_sent("https://hub.example/v1/outcomes", 1, now=T0)
        assert ledger.outbox("https://hub.example/v1/outcomes")[0] == upto
        [kept] = ledger.refused_outgoing()
        assert (kept["change_id"], kept["upstream"], kept["reason"]) == (
            "x/y/2",
            "https://hub.example/v1/outcomes",
            "not_forwarded: nope",
        )
        [box] = ledger.outboxes()
        assert (box["sent_to"], box["waiting"]) == (upto, 0)
        ledger.record_answer(rows[0]["finding_id"], "GM0363", "disputed", note="Not ours.", now=T0 + 5)
        assert ledger.outboxes()[0]["waiting"] == 1
        [answer], _ = ledger.outgoing(upto, 100)
        assert (answer["state"], answer["source"], answer["note"]) == ("disputed", "owner", "Not ours.")
    finally:
        ledger.close()


def test_the_outbox_reads_the_history_by_its_ids_not_by_the_ledger_s_index(tmp_path):
    # The query walks the ids after the cursor, however long the history before it is.
    ledger = cert_ledger(tmp_path / "spool.sqlite")
    ledger.close()
    from sqlalchemy.dialects import sqlite

    from intelmq_nsm.digest.ledger.store import OUTGOING

    compiled = OUTGOING.compile(dialect=sqlite.dialect(paramstyle="named"))
    params = {**compiled.params, "k_ledger": "ibd-digest-mail", "after": 0, "upto": 9, "limit": 5}
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + str(compiled), params))
    assert "ledger_history" in plan and "INTEGER PRIMARY KEY" in plan and "ledger_history_finding" not in plan, plan


OLD_SQLITE_LEDGER = """
CREATE TABLE ledger_findings (
    ledger VARCHAR(200) NOT NULL, finding_id VARCHAR(64) NOT NULL, org_id VARCHAR(200) NOT NULL,
    org_name TEXT NOT NULL, constituency VARCHAR(200) NOT NULL, case_id VARCHAR(200) NOT NULL,
    target TEXT NOT NULL, state VARCHAR(20) NOT NULL, first_seen FLOAT NOT NULL, last_seen FLOAT NOT NULL,
    times_seen INTEGER NOT NULL, first_notified FLOAT, last_notified FLOAT, notifications INTEGER NOT NULL,
    reminders INTEGER NOT NULL, reopened INTEGER NOT NULL, fixed_at FLOAT, pending VARCHAR(10),
    last_event VARCHAR(64), last_kind VARCHAR(10), matches TEXT NOT NULL,
    PRIMARY KEY (ledger, finding_id, org_id),
    CONSTRAINT state_known CHECK (state IN ('open', 'notified', 'fixed-verified', 'reopened', 'fixed-reported',
        'disputed', 'accepted-risk', 'false-positive'))
);
CREATE TABLE ledger_history (
    id INTEGER NOT NULL, ledger VARCHAR(200) NOT NULL, finding_id VARCHAR(64) NOT NULL,
    org_id VARCHAR(200) NOT NULL, at FLOAT NOT NULL, old_state VARCHAR(20), state VARCHAR(20) NOT NULL,
    source VARCHAR(10) NOT NULL, note TEXT NOT NULL, reference TEXT NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(ledger, finding_id, org_id) REFERENCES ledger_findings (ledger, finding_id, org_id),
    CONSTRAINT source_known CHECK (source IN ('scan', 'owner', 'operator'))
);
CREATE INDEX ledger_history_reference ON ledger_history (ledger, reference);
CREATE INDEX ledger_history_finding ON ledger_history (ledger, finding_id, org_id);
INSERT INTO ledger_findings VALUES ('hub-forwarded', 'nf1-00000000000000000000000000000001', 'cert:ibd', 'IBD', 'ibd',
    'DIVD-2024-00012', '192.0.2.2:443', 'open', 1.0, 1.0, 1, NULL, NULL, 0, 0, 0, NULL, 'new', 'e1', 'new', '');
INSERT INTO ledger_history VALUES (41, 'hub-forwarded', 'nf1-00000000000000000000000000000001', 'cert:ibd', 1.0,
    NULL, 'open', 'scan', 'First seen vulnerable.', '');
"""

#: What makes a PostgreSQL ledger of this version look as the version before made it.
OLD_POSTGRESQL_LEDGER = (
    "ALTER TABLE ledger_findings DROP COLUMN upstream_finding_id",
    "ALTER TABLE ledger_findings DROP COLUMN upstream_instance",
    "ALTER TABLE ledger_findings DROP COLUMN reporter",
    "ALTER TABLE ledger_findings DROP COLUMN abuse",
    "ALTER TABLE ledger_findings DROP COLUMN last_report",
    "ALTER TABLE ledger_history DROP COLUMN requested",
    "ALTER TABLE ledger_history DROP CONSTRAINT source_known",
    "ALTER TABLE ledger_history ALTER COLUMN source TYPE VARCHAR(10)",
    "ALTER TABLE ledger_history ADD CONSTRAINT source_known CHECK (source IN ('scan', 'owner', 'operator'))",
)


CERT_CHANGE = (
    "INSERT INTO ledger_history (ledger, finding_id, org_id, at, state, source, note, reference)"
    " VALUES ('hub-forwarded', :f, 'cert:ibd', 2, 'open', 'cert:ibd', '', '')"
)


def test_a_ledger_made_before_takes_cert_sources_and_upstream_ids_keeping_its_history(ledger_url, tmp_path):
    if ledger_url.startswith("sqlite"):
        with sqlite3.connect(tmp_path / "spool.sqlite") as db:
            db.executescript(OLD_SQLITE_LEDGER)
    else:
        Ledger(ledger_url, name="hub-forwarded").observe(
            [Observation(hub_id(1), "cert:ibd", "e1", org_name="IBD", constituency="ibd", case_id=CASE)], now=1.0
        )
        engine = create_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            for statement in OLD_POSTGRESQL_LEDGER:
                conn.execute(text(statement))
            with pytest.raises(Exception, match=r"source_known"):  # the old ledger refuses a CERT's change
                with conn.begin_nested():
                    conn.execute(text(CERT_CHANGE), {"f": hub_id(1)})
        engine.dispose()
    ledger = Ledger(ledger_url, name="hub-forwarded")
    try:
        [record] = ledger.history_of(hub_id(1))
        assert record["upstream_finding_id"] == "" and [h["state"] for h in record["history"]] == ["open"]
        assert ledger.apply_reported("cert:ibd", "ibd-cert", [reported(1, "notified", 5.0)]) == ["applied"]
        [record] = ledger.history_of(hub_id(1))
        assert [(h["state"], h["source"]) for h in record["history"]] == [("open", "scan"), ("notified", "cert:ibd")]
        if ledger_url.startswith("sqlite"):
            assert ledger.outgoing(0, 10)[1] == 42  # the history kept its ids: the next one is 42
    finally:
        ledger.close()
    Ledger(ledger_url, name="hub-forwarded").close()  # opened again: nothing left to change
