"""The finding ledger and the notification policy, on SQLite and on a real PostgreSQL.

Rounds of rescans go through the output's own mechanism (the spool, the deliverer) into
the file channel, each test both ways an event can come in: ``notify.accept`` (ledger, then
spool, per event: the output with its ledger elsewhere) and ``notify.arrive`` (an arrival
per event, filed by the deliverer: the output with its ledger in the spool's file, or
elsewhere after ``ledger_url`` changed). What a round delivered is read back from the JSON
digests it wrote.
"""

import re
import sqlite3
import threading

import pytest

from intelmq_nsm.digest import notify
from intelmq_nsm.digest.event_findings import FindingError
from intelmq_nsm.digest.ledger import Ledger, LedgerUnavailable, Observation
from intelmq_nsm.digest.ledger.stats import case_counts, stats
from intelmq_nsm.testbed.sample_events import event, organisation
from tests.digest.mechanism import Output

AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
DAY = 86400.0
WEEK = 7 * DAY
T0 = 1_780_000_000.0


def scan(n: int, when: float, orgs=(AMSTERDAM,), vulnerable: bool = True, **extra) -> dict:
    """Finding ``n`` (one address, port 443, one case) as a scan at ``when`` reports it: each
    scan is a report of its own (its time of observation)."""
    stamp = f"2026-06-{1 + int((when - T0) // DAY):02d}T09:00:{n % 60:02d}+00:00"
    report = f"2026-06-{1 + int((when - T0) // DAY):02d}T10:00:00+00:00"
    if not vulnerable:
        extra["extra.nsm.result"] = "not-vulnerable"
    return event(n, list(orgs), **{"time.source": stamp, "time.observation": report, **extra})


def kinds(digests) -> list:
    return sorted((f["kind"], f["ip"], f["port"]) for d in digests for f in d["findings"])


@pytest.fixture(params=["accept", "arrive"])
def output(request, tmp_path, ledger_url):
    # Arrivals the way the output makes them by default: the spool in the ledger's file.
    shared = request.param == "arrive" and ledger_url.startswith("sqlite")
    spool_file = ledger_url.removeprefix("sqlite:///") if shared else None
    out = Output(tmp_path, ledger_url, spool_file=spool_file, intake=request.param)
    yield out
    out.close()


def test_a_finding_seen_in_three_rescans_is_notified_once_and_reminded_once(output):
    [first] = output.round([scan(1, T0)], T0)
    assert first["format"] == "nsm-digest/4"
    [finding] = first["findings"]
    assert finding["kind"] == "new" and finding["times_seen"] == 1 and finding["finding_id"].startswith("nf1-")
    assert output.round([scan(1, T0 + 2 * DAY)], T0 + 2 * DAY) == []
    [reminder] = output.round([scan(1, T0 + 7 * DAY)], T0 + 7 * DAY)
    [again] = reminder["findings"]
    assert (again["kind"], again["times_seen"], again["finding_id"]) == ("reminder", 3, finding["finding_id"])
    assert again["first_seen"] == finding["first_seen"] and again["last_seen"] > again["first_seen"]
    assert output.round([scan(1, T0 + 10 * DAY)], T0 + 10 * DAY) == []  # a week from the reminder: not yet
    [record] = output.ledger.records()
    assert (record["state"], record["times_seen"], record["notifications"], record["reminders"]) == (
        "notified",
        4,
        2,
        1,
    )
    [shown] = output.ledger.history_of(finding["finding_id"])
    assert [d["kind"] for d in shown["digests"]] == ["new", "reminder"]
    # The reminder changes no state, and is in the history all the same (a hub hears of it).
    assert [(h["old_state"], h["state"]) for h in shown["history"]] == [
        (None, "open"),
        ("open", "notified"),
        ("notified", "notified"),
    ]
    assert shown["history"][-1]["note"].startswith("Reminded in digest ")


def test_not_vulnerable_fixes_it_and_seen_again_it_is_reopened_and_notified(output):
    output.round([scan(1, T0), scan(2, T0)], T0)
    [fixed] = output.round([scan(1, T0 + DAY, vulnerable=False), scan(2, T0 + DAY)], T0 + DAY)
    assert kinds([fixed]) == [("fixed", "198.51.100.2", 443)]
    assert fixed["counts"]["fixed"] == 1 and fixed["counts"]["vulnerable"] == 0
    states = {r["target"]: r["state"] for r in output.ledger.records()}
    assert states == {"198.51.100.2:443": "fixed-verified", "203.0.113.3:443": "notified"}
    [back] = output.round([scan(1, T0 + 3 * DAY)], T0 + 3 * DAY)
    assert kinds([back]) == [("reopened", "198.51.100.2", 443)]
    record = next(r for r in output.ledger.records() if r["target"] == "198.51.100.2:443")
    assert (record["state"], record["reopened"], record["notifications"]) == ("reopened", 1, 2)
    # Fixed again: fixed-verified, and the fixed section once more.
    [fixed_again] = output.round([scan(1, T0 + 4 * DAY, vulnerable=False)], T0 + 4 * DAY)
    assert kinds([fixed_again]) == [("fixed", "198.51.100.2", 443)]


def test_a_digest_presents_a_fix_only_in_its_fixed_section(tmp_path, output):
    output.round([scan(1, T0)], T0)
    output.take(scan(1, T0 + DAY, vulnerable=False), T0 + DAY)
    output.take(scan(4, T0 + DAY), T0 + DAY)
    output.deliverer.file_arrivals()
    [digest_id] = output.spool.form_digests(1000, 0, now=T0 + DAY, flush=True)
    from intelmq_nsm.digest import render

    digest = output.spool.load(digest_id)
    text = render.to_text(digest, "nl")
    assert text.index("######## Nieuw") < text.index("######## Opgelost")
    fixed_part = text[text.index("######## Opgelost") :]
    assert "198.51.100.2:443  host1.gemeente.example  opgelost, vastgesteld 2026-05-29" in fixed_part
    assert "CVE" not in fixed_part
    assert (
        render.subject(digest, "nl")
        == f"[TLP:AMBER] [IBD] 1 kwetsbaar systeem gemeld voor Amsterdam (overzicht {digest_id[:12]})"
    )
    assert "Fixed" in render.to_text(digest, "en")
    csv_text = render.to_csv(digest)
    assert csv_text.splitlines()[0].startswith("kind,finding_id,") and "first_seen,last_seen,times_seen" in csv_text
    assert [line.split(",")[0] for line in csv_text.splitlines()[1:]] == ["new", "fixed"]


def test_a_reminder_section_says_since_when(output):
    output.round([scan(1, T0)], T0)
    [digest_id] = [None]
    output.take(scan(1, T0 + WEEK), T0 + WEEK)
    output.deliverer.file_arrivals()
    [digest_id] = output.spool.form_digests(1000, 0, now=T0 + WEEK, flush=True)
    from intelmq_nsm.digest import render

    text = render.to_text(output.spool.load(digest_id), "nl")
    assert "######## Nog steeds kwetsbaar" in text and "Nog steeds kwetsbaar sinds 2026-05-28" in text


def test_two_ports_of_one_host_are_two_findings(output):
    digests = output.round([scan(1, T0), scan(1, T0, **{"source.port": 8443})], T0)
    assert kinds(digests) == [("new", "198.51.100.2", 443), ("new", "198.51.100.2", 8443)]
    assert len({f["finding_id"] for d in digests for f in d["findings"]}) == 2
    assert len(output.ledger.records()) == 2


def test_each_organisation_has_its_own_record(output):
    digests = output.round([scan(1, T0, orgs=(AMSTERDAM, UTRECHT))], T0)
    assert sorted(d["organisation"]["id"] for d in digests) == ["GM0344", "GM0363"]
    assert sorted(r["org_id"] for r in output.ledger.records()) == ["GM0344", "GM0363"]


def test_not_vulnerable_for_an_unknown_finding_is_recorded_and_sends_nothing(output):
    assert output.round([scan(1, T0, vulnerable=False)], T0) == []
    [record] = output.ledger.records()
    assert record["state"] == "fixed-verified" and record["first_notified"] is None
    [new] = output.round([scan(1, T0 + DAY)], T0 + DAY)  # vulnerable later: a first notification
    assert kinds([new]) == [("new", "198.51.100.2", 443)]


def test_a_repeated_message_counts_once_and_is_sent_once(output):
    message = scan(1, T0)
    output.take(message, T0)
    output.take(dict(message), T0 + 1)  # after a crash before the ack
    digests = output.round([], T0 + 2)
    assert kinds(digests) == [("new", "198.51.100.2", 443)]
    [record] = output.ledger.records()
    assert record["times_seen"] == 1 and record["notifications"] == 1
    # Delivered again (a crash before the spool marked it): counted once.
    digest = output.spool.load(digests[0]["id"])
    assert (
        output.ledger.record_delivery(digest.id, [(f["finding_id"], "GM0363", f["kind"]) for f in digest.findings]) == 0
    )
    # The same message once more after its digest went out: nothing new.
    assert output.round([dict(message)], T0 + 3) == []


def test_only_the_reporter_that_opened_a_finding_closes_it(output):
    """The finding id names the vulnerable thing whoever reports it; who may say it is fixed
    is the ledger's check: the case's owner (as the intake stamped it), else the feed's
    provider, that first saw it vulnerable."""
    divd = {"feed.provider": "DIVD"}
    output.round([scan(1, T0, **divd), scan(2, T0, **divd)], T0)
    stranger = {"feed.provider": "Example Research", "feed.name": "Example"}
    # Another researcher's rescan says both are fixed: nothing changes, nothing is sent.
    assert output.round([scan(1, T0 + DAY, vulnerable=False, **stranger)], T0 + DAY) == []
    assert (
        output.round([scan(2, T0 + DAY, vulnerable=False, **stranger, **{"extra.nsm.case_owner": "X"})], T0 + DAY) == []
    )
    records = {r["target"]: r for r in output.ledger.records()}
    assert {t: (r["state"], r["times_seen"], r["reporter"]) for t, r in records.items()} == {
        "198.51.100.2:443": ("notified", 1, "DIVD"),
        "203.0.113.3:443": ("notified", 1, "DIVD"),
    }
    [shown] = output.ledger.history_of(records["198.51.100.2:443"]["finding_id"])
    assert [h["state"] for h in shown["history"]] == ["open", "notified"]
    # Its vulnerable sighting still counts; a second team the case is shared with speaks for its owner.
    assert output.round([scan(1, T0 + 2 * DAY, **stranger)], T0 + 2 * DAY) == []
    team = {"feed.provider": "Second Team", "extra.nsm.case_owner": "DIVD"}
    [fixed] = output.round([scan(1, T0 + 3 * DAY, vulnerable=False, **team)], T0 + 3 * DAY)
    assert kinds([fixed]) == [("fixed", "198.51.100.2", 443)]
    [fixed] = output.round([scan(2, T0 + 3 * DAY, vulnerable=False, **divd)], T0 + 3 * DAY)
    assert kinds([fixed]) == [("fixed", "203.0.113.3", 443)]


def test_a_record_without_a_reporter_may_be_closed_by_any():
    from intelmq_nsm.digest.ledger.policy import may_close

    rescan = Observation("nf1-x", "GM0363", "e1", vulnerable=False, reporter="Example Research")
    assert may_close({"reporter": ""}, rescan)  # from before reporters were kept, or never seen vulnerable
    assert may_close({"reporter": "Example Research"}, rescan)
    assert not may_close({"reporter": "DIVD"}, rescan)
    assert not may_close({"reporter": "DIVD"}, Observation("nf1-x", "GM0363", "e2", vulnerable=False))


def test_a_finding_first_seen_not_vulnerable_belongs_to_who_then_sees_it_vulnerable(output):
    stranger = {"feed.provider": "Example Research"}
    assert output.round([scan(1, T0, vulnerable=False, **stranger)], T0) == []
    [new] = output.round([scan(1, T0 + DAY, **{"feed.provider": "DIVD"})], T0 + DAY)
    assert kinds([new]) == [("new", "198.51.100.2", 443)]
    assert output.round([scan(1, T0 + 2 * DAY, vulnerable=False, **stranger)], T0 + 2 * DAY) == []
    [record] = output.ledger.records()
    assert (record["state"], record["reporter"]) == ("notified", "DIVD")


def test_reminder_after_zero_never_reminds(tmp_path, ledger_url):
    out = Output(tmp_path, ledger_url, reminder_after=0)
    try:
        out.round([scan(1, T0)], T0)
        assert out.round([scan(1, T0 + 30 * DAY)], T0 + 30 * DAY) == []
    finally:
        out.close()


def test_owners_answers_are_recorded_and_a_rescan_still_decides(output):
    output.round([scan(1, T0), scan(2, T0)], T0)
    one, two = (r["finding_id"] for r in sorted(output.ledger.records(), key=lambda r: r["target"]))
    answer = output.ledger.record_answer
    assert answer(one, "GM0363", "fixed-reported", "owner", "Patched.", "ticket-1", now=T0 + DAY) == "notified"
    assert answer(two, "GM0363", "accepted-risk", "owner", "Replaced next month.", now=T0 + DAY) == "notified"
    assert output.ledger.record_answer("nf1-unknown", "GM0363", "disputed") is None
    with pytest.raises(ValueError, match="answer sets one of"):
        output.ledger.record_answer(one, "GM0363", "notified")
    digests = output.round([scan(1, T0 + 8 * DAY), scan(2, T0 + 8 * DAY)], T0 + 8 * DAY)
    assert kinds(digests) == [("reopened", "198.51.100.2", 443)]  # accepted-risk: no reminder
    [shown] = output.ledger.history_of(one)
    assert [(h["state"], h["source"]) for h in shown["history"]] == [
        ("open", "scan"),
        ("notified", "scan"),
        ("fixed-reported", "owner"),
        ("reopened", "scan"),
    ]
    assert shown["history"][2]["reference"] == "ticket-1"


def test_an_event_without_what_the_id_needs_names_the_field(output):
    bare = {k: v for k, v in scan(1, T0).items() if not k.startswith(("source.", "extra.nsm.finding"))}
    with pytest.raises(FindingError) as error:
        output.take(bare, T0)
    assert error.value.field == "source.ip" and "source.fqdn" in error.value.reason
    assert output.spool.counts()["waiting_findings"] == 0
    given = scan(1, T0, **{"extra.nsm.finding_id": "nf1-given"})
    output.round([given], T0)
    assert [r["finding_id"] for r in output.ledger.records()] == ["nf1-given"]


def test_stats_count_states_and_days_to_a_verified_fix(output):
    output.round([scan(n, T0) for n in range(1, 5)], T0)
    output.round([scan(1, T0 + 2 * DAY, vulnerable=False), scan(2, T0 + 4 * DAY, vulnerable=False)], T0 + 4 * DAY)
    [case] = stats(output.ledger)["cases"]
    assert case["case_id"] == "DIVD-2024-00012"
    assert (case["findings"], case["notified"], case["open"], case["fixed_verified"]) == (4, 4, 2, 2)
    assert case["days_to_fix"] == {"count": 2, "median": 4.0, "p90": 4.0}
    [org] = stats(output.ledger)["organisations"]
    assert org["org_id"] == "GM0363" and org["name"] == "Amsterdam"
    assert case_counts(output.ledger) == {
        "DIVD-2024-00012": {
            "findings": 4,
            "notified": 4,
            "open": 2,
            "fixed_verified": 2,
            "reopened": 0,
            "by_state": {"notified": 2, "fixed-verified": 2},
            "by_kind": {"vulnerable": 4},
        }
    }
    assert case["by_kind"] == {
        "vulnerable": {
            "findings": 4,
            "open": 2,
            "fixed_verified": 2,
            "no_longer_seen": 0,
            "by_state": {"notified": 2, "fixed-verified": 2},
        }
    }


def test_ledgers_of_different_names_in_one_database_are_apart(tmp_path, ledger_url):
    mail, archive = Output(tmp_path, ledger_url, name="mail"), Output(tmp_path, ledger_url, name="archive")
    try:
        assert (
            kinds(mail.round([scan(1, T0)], T0))
            == kinds(archive.round([scan(1, T0)], T0))
            == [("new", "198.51.100.2", 443)]
        )
    finally:
        mail.close()
        archive.close()


def test_a_ledger_in_the_spool_file_commits_with_the_spool_in_one_transaction(tmp_path):
    path = tmp_path / "spool.sqlite"
    out = Output(tmp_path, f"sqlite:///{path}", spool_file=path)
    try:
        assert out.ledger.shares_file(out.spool.path)
        assert kinds(out.round([scan(1, T0)], T0)) == [("new", "198.51.100.2", 443)]
        assert out.round([scan(1, T0 + DAY)], T0 + DAY) == []
        assert kinds(out.round([scan(1, T0 + 8 * DAY)], T0 + 8 * DAY)) == [("reminder", "198.51.100.2", 443)]

        # The spool's write fails after the ledger's: neither is kept.
        def broken(*args, **kwargs):
            raise OSError("disk full")

        out.spool.add = broken
        with pytest.raises(OSError):
            notify.accept(scan(2, T0 + 9 * DAY), out.spool, out.ledger, T0 + 9 * DAY)
        assert [r["target"] for r in out.ledger.records()] == ["198.51.100.2:443"]
        assert out.spool.counts()["waiting_findings"] == 0
    finally:
        out.close()


@pytest.fixture
def arriving(tmp_path):
    """An output with its ledger in its spool's file, as the bot's default, taking arrivals."""
    path = tmp_path / "spool.sqlite"
    out = Output(tmp_path, f"sqlite:///{path}", spool_file=path, intake="arrive")
    yield out
    out.close()


def test_arrivals_are_filed_in_order_each_at_the_time_it_arrived(arriving):
    arriving.take(scan(1, T0), T0)
    arriving.take(scan(1, T0 + DAY, vulnerable=False), T0 + DAY)
    assert arriving.ledger.records() == [] and arriving.spool.counts()["waiting_findings"] == 2
    assert arriving.deliverer.file_arrivals() == 2
    [record] = arriving.ledger.records()
    assert (record["state"], record["first_seen"], record["last_seen"], record["times_seen"]) == (
        "fixed-verified",
        T0,
        T0 + DAY,
        2,
    )
    # As when each is filed on its own: the first notification was spooled before the fix.
    assert kinds(arriving.round([], T0 + DAY)) == [("new", "198.51.100.2", 443)]


def test_a_batch_of_arrivals_that_fails_part_way_is_filed_whole_the_next_round(arriving):
    for n in (1, 2, 3):
        arriving.take(scan(n, T0), T0)
    calls = []
    add = arriving.spool.add

    def fails_on_the_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return add(*args, **kwargs)

    arriving.spool.add = fails_on_the_second
    with pytest.raises(OSError):
        arriving.deliverer.file_arrivals()
    assert arriving.ledger.records() == [] and arriving.spool.counts()["waiting_findings"] == 3
    arriving.spool.add = add
    digests = arriving.round([], T0 + 1)
    assert kinds(digests) == [("new", "192.0.2.4", 443), ("new", "198.51.100.2", 443), ("new", "203.0.113.3", 443)]
    assert sorted(r["times_seen"] for r in arriving.ledger.records()) == [1, 1, 1]


def test_an_arrival_that_cannot_be_filed_is_kept_marked_failed_and_the_rest_is_filed(arriving):
    # Its organisation's name is an object: a finding can be made of it, a ledger row cannot.
    odd = organisation("GM0344", "Utrecht")
    odd["name"] = {"nl": "Utrecht"}
    arriving.take(scan(1, T0), T0)
    arriving.take(scan(2, T0, orgs=(odd,)), T0)
    arriving.take(scan(3, T0), T0)
    told = []
    assert notify.file_arrivals(arriving.spool, arriving.ledger, failed=lambda i, e: told.append((i, e))) == 2
    assert [i for i, _ in told] == [2], told
    assert "binding" in told[0][1], told
    assert arriving.spool.counts()["failed_arrivals"] == 1
    assert kinds(arriving.round([], T0 + 1)) == [("new", "192.0.2.4", 443), ("new", "198.51.100.2", 443)]
    assert sorted(r["target"] for r in arriving.ledger.records()) == ["192.0.2.4:443", "198.51.100.2:443"]


@pytest.mark.e2e
def test_two_outputs_sharing_a_postgresql_ledger_notify_a_finding_once(postgres_server):
    url = postgres_server.create_database("shared")
    ledgers = [Ledger(url, name="ibd") for _ in range(2)]
    start = threading.Barrier(2)
    kinds_seen = []

    def observe(ledger, hashes):
        start.wait()
        for h in hashes:
            [record] = ledger.observe([Observation("nf1-shared", "GM0363", h)], now=T0)
            kinds_seen.append(record["kind"])

    threads = [threading.Thread(target=observe, args=(ledgers[i], [f"e{i}-{n}" for n in range(20)])) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ledger in ledgers:
        ledger.close()
    assert kinds_seen.count("new") == 1 and len(kinds_seen) == 40


@pytest.mark.e2e
def test_a_stopped_postgresql_makes_the_ledger_unavailable_and_it_recovers(tmp_path):
    from intelmq_nsm.testbed.postgres import PostgresServer

    with PostgresServer() as server:
        out = Output(tmp_path, server.create_database("outage"))
        try:
            out.round([scan(1, T0)], T0)
            notify.accept(scan(2, T0 + 1), out.spool, out.ledger, T0 + 1)
            [digest_id] = out.spool.form_digests(1000, 0, now=T0 + 1, flush=True)
            server.stop()
            with pytest.raises(LedgerUnavailable):
                notify.accept(scan(3, T0 + 2), out.spool, out.ledger, T0 + 2)
            # Delivered while the ledger is down: marked delivered, counted later, not sent again.
            assert kinds(out.round([], T0 + 3)) == [("new", "203.0.113.3", 443)]
            assert out.spool.unrecorded() == [digest_id]
            server.start()
            notify.accept(scan(3, T0 + 4), out.spool, out.ledger, T0 + 4)
            digests = out.round([], T0 + 5)
            assert kinds(digests) == [("new", "192.0.2.4", 443)]
            assert out.spool.unrecorded() == []
            notified = {r["target"]: r["notifications"] for r in out.ledger.records()}
            assert notified == {"198.51.100.2:443": 1, "203.0.113.3:443": 1, "192.0.2.4:443": 1}
            assert len(list(out.directory.glob("*.json"))) == 3
        finally:
            out.close()


#: The check constraints of the ledger's tables as versions before kinds of abuse made them.
EARLIER_CHECKS = {
    "ledger_findings": (
        "state_known",
        "state IN ('open', 'notified', 'fixed-verified', 'reopened', 'fixed-reported', 'disputed',"
        " 'accepted-risk', 'false-positive')",
    ),
    "ledger_history": ("source_known", "source IN ('scan', 'owner', 'operator')"),
    "ledger_notifications": ("kind_known", "kind IN ('new', 'reminder', 'reopened', 'fixed')"),
}


def make_earlier(path) -> None:
    """Turn the ledger in ``path`` into one as an earlier version made it: without the columns
    added since, with the earlier indexes and the narrower check constraints."""
    db = sqlite3.connect(path)
    db.execute("DROP INDEX ledger_findings_tally")
    db.execute("DROP INDEX ledger_findings_fixed_days")
    added = ("matches", "abuse", "reporter", "upstream_finding_id", "upstream_instance")
    for table, column in (("ledger_findings", c) for c in added):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("ALTER TABLE ledger_findings DROP COLUMN last_report")
    db.execute("ALTER TABLE ledger_history DROP COLUMN requested")
    db.execute("CREATE INDEX ledger_findings_case ON ledger_findings (ledger, case_id)")
    db.execute("CREATE INDEX ledger_findings_counts ON ledger_findings (ledger, case_id, constituency, org_id, state)")
    db.execute("DROP TABLE arrivals")
    version = db.execute("PRAGMA schema_version").fetchone()[0]
    db.execute("PRAGMA writable_schema = ON")
    for table, (name, check) in EARLIER_CHECKS.items():
        [text] = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        found = re.search(rf"CONSTRAINT {name} CHECK \((?:[^()]|\([^()]*\))*\)", text)
        start, end = found.span()
        db.execute(
            "UPDATE sqlite_master SET sql = ? WHERE name = ?",
            (text[:start] + f"CONSTRAINT {name} CHECK ({check})" + text[end:], table),
        )
    db.execute(f"PRAGMA schema_version = {version + 1}")
    db.execute("PRAGMA writable_schema = OFF")
    db.commit()
    db.close()


def test_a_spool_file_of_an_earlier_version_is_brought_up_to_date_when_it_opens(tmp_path):
    """A spool file whose ledger lacks the columns added since (``matches``, ``reporter``,
    ``abuse``, ``last_report``, the history's ``requested``), still has the earlier indexes and the
    narrower checks of states, sources and kinds, and which has no arrivals table: opened,
    it gets them, keeps its records and takes events as before, and the states, sources
    and kinds added since."""
    path = tmp_path / "spool.sqlite"
    out = Output(tmp_path, f"sqlite:///{path}", spool_file=path, intake="arrive")
    out.round([scan(1, T0)], T0)
    out.close()
    make_earlier(path)
    with pytest.raises(sqlite3.IntegrityError):  # the earlier checks hold
        with sqlite3.connect(path) as db:
            db.execute("UPDATE ledger_findings SET state = 'no-longer-seen'")

    out = Output(tmp_path, f"sqlite:///{path}", spool_file=path, intake="arrive")
    out.seen.update(out.directory.glob("*.json"))  # the first round's digest
    try:
        db = sqlite3.connect(path)
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        columns = {r[1] for r in db.execute("PRAGMA table_info(ledger_findings)")}
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        assert {"ledger_findings_tally", "ledger_findings_fixed_days"} <= indexes
        assert not {"ledger_findings_case", "ledger_findings_counts"} & indexes
        assert {"matches", "reporter", "abuse", "last_report"} <= columns and "arrivals" in tables
        [record] = out.ledger.records()
        assert (record["state"], record["matches"], record["abuse"]) == ("notified", "", "vulnerable")
        assert record["reporter"] == ""
        assert kinds(out.round([scan(1, T0 + 8 * DAY)], T0 + 8 * DAY)) == [("reminder", "198.51.100.2", 443)]
        # A record from before reporters were kept belongs to the next to see it vulnerable.
        [record] = out.ledger.records()
        assert record["reporter"] == "DIVD"
        # What the earlier checks refused: a ticket system's and a CERT's sources, a new state.
        previous, decision = out.ledger.record_change(record["finding_id"], "GM0363", "disputed", "ticket")
        assert (previous, decision.state) == ("notified", "disputed")
        out.ledger.record_change(record["finding_id"], "GM0363", "open", "cert:ibd/operator", "Looked again.")
        history = out.ledger.history_of(record["finding_id"])[0]["history"]
        assert [h["source"] for h in history[-2:]] == ["ticket", "cert:ibd/operator"]
    finally:
        out.close()


@pytest.mark.e2e
def test_a_postgresql_ledger_of_an_earlier_version_takes_the_new_states_sources_and_kinds(tmp_path, postgres_server):
    """On PostgreSQL the narrower checks of an earlier version are replaced in place and the
    history's source column widened: a CERT's source, a ticket's, no-longer-seen fit."""
    import sqlalchemy

    url = postgres_server.create_database("earlier_ledger")
    out = Output(tmp_path, url)
    try:
        out.round([scan(1, T0)], T0)
    finally:
        out.close()
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for table, (name, check) in EARLIER_CHECKS.items():
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK ({check})")
        conn.exec_driver_sql("ALTER TABLE ledger_history ALTER COLUMN source TYPE VARCHAR(10)")
        conn.exec_driver_sql("ALTER TABLE ledger_findings DROP COLUMN abuse, DROP COLUMN last_report")
        conn.exec_driver_sql("ALTER TABLE ledger_history DROP COLUMN requested")
    engine.dispose()
    ledger = Ledger(url, name="ibd-mail")
    try:
        [record] = ledger.records()
        assert record["abuse"] == "vulnerable"
        finding = record["finding_id"]
        assert ledger.record_change(finding, "GM0363", "disputed", "cert:ibd/owner", "Niet van ons.")[1].changes
        assert ledger.record_change(finding, "GM0363", "open", "ticket")[1].changes
        history = ledger.history_of(finding)[0]["history"]
        assert [h["source"] for h in history[-2:]] == ["cert:ibd/owner", "ticket"]
    finally:
        ledger.close()
