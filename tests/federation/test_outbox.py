"""A CERT's outbox to its hub, against the hub's real feedback service on 127.0.0.1: the history
of the hub's findings goes up in order and in batches, waits while the hub is down and arrives
once, refused changes are kept in sight and hold nothing up, names only where shared."""

import json
import logging
import os
import re
import time

import pytest

from intelmq_nsm.bots.outputs.digest.output import NSMDigestOutputBot
from intelmq_nsm.cli import main
from intelmq_nsm.digest import health
from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from intelmq_nsm.digest.ledger.outcome import case_outcome
from intelmq_nsm.digest.ledger.stats import stats
from intelmq_nsm.federation import record as hub_record
from intelmq_nsm.feedback.overview import overview
from intelmq_nsm.feedback.pages import html
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.sample_events import event
from tests.federation.two_tiers import (
    AMSTERDAM,
    CASE,
    CERT,
    HUB,
    HUB_LEDGER,
    T0,
    UTRECHT,
    Cert,
    Hub,
    cert_changes,
    forwarded_event,
    hub_history,
    hub_id,
    hub_ledger,
    hub_states,
    sent_once,
    token_file,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def cert(tmp_path):
    made = Cert(tmp_path)
    # Findings 1 and 2 from the hub (2 for Amsterdam and Utrecht), 5 the CERT's own.
    made.notify([forwarded_event(1), forwarded_event(2, [AMSTERDAM, UTRECHT]), event(5, [UTRECHT])])
    yield made
    made.close()


def expected_changes(cert) -> list:
    """What the hub's history must hold once: one entry per change of the hub's findings."""
    return sent_once(cert.ledger)


def test_the_history_of_the_hub_s_findings_goes_up_once_in_batches(hub, cert, tmp_path):
    pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), batch=2)
    counts = pusher.run_once()
    # Three records (1 for Amsterdam, 2 for Amsterdam and Utrecht), each opened and notified.
    assert (counts["sent"], counts["applied"], counts["refused"], counts["batches"]) == (6, 6, 0, 3)
    assert hub_states(hub) == {hub_id(1): "notified", hub_id(2): "notified", hub_id(3): "open"}
    assert cert_changes(hub) == expected_changes(cert) and len(expected_changes(cert)) == 6
    # Nothing more to send; the CERT's own finding never went.
    time.sleep(0.1)
    assert pusher.run_once()["sent"] == 0
    assert all(finding in (hub_id(1), hub_id(2)) for finding, _, _ in cert_changes(hub))
    # No names and no notes where the CERT shares none: an opaque id, the same per organisation.
    ledger = hub.ledger()
    rows = ledger.case_downstream(CASE)
    ledger.close()
    assert {r["name"] for r in rows} == {""} and len({r["downstream_id"] for r in rows}) == 2
    assert not {r["downstream_id"] for r in rows} & {"GM0363", "GM0344"}
    assert "Amsterdam" not in json.dumps(rows)
    # An owner's answer at the CERT goes up in the next round.
    finding = next(r for r in cert.ledger.records() if r["upstream_finding_id"] == hub_id(1))
    cert.ledger.record_answer(finding["finding_id"], "GM0363", "fixed-reported", note="Patched.")
    time.sleep(0.1)
    assert pusher.run_once()["applied"] == 1 and hub_states(hub)[hub_id(1)] == "fixed-reported"
    [box] = cert.ledger.outboxes()
    assert box["waiting"] == 0 and box["upstream"] == hub.url


def test_the_hub_down_the_outbox_waits_and_arrives_once_when_it_is_back(hub, cert, tmp_path, caplog):
    pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), batch=4)
    hub.stop()
    with caplog.at_level(logging.WARNING):
        counts = pusher.run_once()
    assert counts["sent"] == 0 and pusher.failures == 1 and pusher.next_attempt > time.time()
    assert "cannot be reached" in caplog.text and cert.ledger.outbox(hub.url)[0] == 0
    assert pusher.run_once()["sent"] == 0  # not due yet: no second try at once
    # Meanwhile an owner answers at the CERT: it waits in the outbox too.
    finding = next(r for r in cert.ledger.records() if r["upstream_finding_id"] == hub_id(2))
    cert.ledger.record_answer(finding["finding_id"], finding["org_id"], "disputed", note="Not ours.")
    hub.start()
    time.sleep(max(0.0, pusher.next_attempt - time.time()) + 0.01)
    counts = pusher.run_once()
    assert counts["applied"] == 7 and counts["duplicate"] == 0 and pusher.failures == 0
    assert cert_changes(hub) == expected_changes(cert)  # each once
    assert hub_states(hub)[hub_id(2)] == "disputed"


def test_a_crash_before_the_cursor_moved_repeats_the_batch_and_the_hub_applies_it_once(hub, cert, tmp_path):
    pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), batch=100)
    moved = cert.ledger.outbox_sent

    def crash(*args, **kwargs):
        raise SystemExit("killed between the hub's answer and the cursor")

    cert.ledger.outbox_sent = crash
    with pytest.raises(SystemExit):
        pusher.run_once()
    cert.ledger.outbox_sent = moved
    assert len(cert_changes(hub)) == 6 and cert.ledger.outbox(hub.url)[0] == 0
    again = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token, "token-2"), batch=100).run_once()
    assert (again["applied"], again["duplicate"]) == (0, 6)
    assert cert_changes(hub) == expected_changes(cert)


def test_changes_the_hub_refuses_are_kept_in_sight_and_hold_nothing_up(hub, cert, tmp_path, capsys):
    # Finding 7 came from a hub that did not forward it to IBD (as far as the hub knows).
    cert.notify([forwarded_event(7), forwarded_event(3)])
    pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), batch=3)
    counts = pusher.run_once()
    assert (counts["refused"], counts["applied"]) == (2, 8)
    assert hub_states(hub)[hub_id(3)] == "notified"
    refused = cert.ledger.refused_outgoing()
    assert [(r["upstream_finding_id"], r["state"], r["status"]) for r in refused] == [
        (hub_id(7), "open", 200),
        (hub_id(7), "notified", 200),
    ]
    assert refused[0]["reason"].startswith("not_forwarded: The hub forwarded no finding")
    # Never sent again.
    time.sleep(0.1)
    assert pusher.run_once()["sent"] == 0
    # In sight: the spool's list, its JSON, the output's check, the ledger's outbox command.
    spool = str(cert.spool_file)
    assert main(["spool", spool, "list"]) == 0
    out = capsys.readouterr().out
    assert "2 change(s) the hub refused" in out and hub_id(7) in out
    assert main(["spool", spool, "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["refused"]) == 2
    lines = health.problems(spool)
    assert sum("refused change" in line for line in lines) == 2
    checked = NSMDigestOutputBot.check({"channel": "file", "file_directory": str(tmp_path), "spool_file": spool})
    assert sum(level == "warning" and "refused change" in text for level, text in checked) == 2
    assert main(["ledger", spool, "outbox"]) == 0
    out = capsys.readouterr().out
    assert "0 waiting" in out and out.count("refused") == 2


def test_a_batch_too_big_for_the_hub_is_halved_until_it_is_taken(tmp_path, cert):
    url = sqlite_url(tmp_path / "hub-ledger.sqlite")
    hub_ledger(url, {"ibd": [1, 2]}).close()
    hub = Hub.in_folder(tmp_path, url, max_batch_items=2)
    try:
        pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), batch=10)
        counts = pusher.run_once()
        assert counts["applied"] == 6 and counts["refused"] == 0 and pusher.batch <= 2
        assert cert_changes(hub) == expected_changes(cert)
    finally:
        hub.stop()


def test_a_hub_answering_5xx_or_429_is_tried_again_later_and_retry_after_is_honoured(tmp_path, cert):
    token = token_file(tmp_path, "nsm_00000000_" + "A" * 43)
    with Receiver(script=[500, 503]) as failing:
        pusher = cert.pusher(failing.url, token, interval=0.2)
        assert pusher.run_once()["sent"] == 0 and pusher.failures == 1
        assert cert.ledger.outbox(failing.url)[0] == 0
        time.sleep(0.25)
        assert pusher.run_once()["sent"] == 0 and pusher.failures == 2
        assert len(failing.requests) == 2 and pusher.next_attempt - time.time() > 0.3  # doubled
        # The rest of the batch is what was sent each time: the same changes, in order.
        first, second = (json.loads(body)["changes"] for _, body, _ in failing.requests)
        assert first == second and [c["change_id"] for c in first] == sorted(
            (c["change_id"] for c in first), key=lambda i: int(i.rsplit("/", 1)[1])
        )
    url = sqlite_url(tmp_path / "hub-ledger.sqlite")
    hub_ledger(url, {"ibd": [1, 2]}).close()
    hub = Hub.in_folder(tmp_path, url, requests_per_minute=1, burst=1)
    try:
        limited = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token, "token-2"), batch=1)
        limited.run_once()  # the first request is taken, the second gets 429 and Retry-After
        assert limited.failures == 1 and limited.next_attempt - time.time() > 30
        assert len(cert_changes(hub)) == 1
    finally:
        hub.stop()


def test_a_token_file_others_may_read_is_not_used(hub, cert, tmp_path, caplog):
    path = token_file(tmp_path, hub.ibd_token)
    os.chmod(path, 0o644)
    pusher = cert.pusher(hub.url, path)
    with caplog.at_level(logging.ERROR):
        assert pusher.run_once()["sent"] == 0
    assert "may be read by others" in caplog.text and hub_states(hub)[hub_id(1)] == "open"
    checked = NSMDigestOutputBot.check(
        {
            "channel": "file",
            "file_directory": str(tmp_path),
            "upstream_url": hub.url,
            "upstream_token_file": path,
            "instance_name": CERT,
        }
    )
    assert [level for level, text in checked if "may be read by others" in text] == ["error"]
    missing = NSMDigestOutputBot.check({"channel": "file", "file_directory": str(tmp_path), "upstream_url": hub.url})
    errors = " ".join(text for level, text in missing if level == "error")
    assert "needs instance_name" in errors and "needs upstream_token_file" in errors
    os.chmod(path, 0o600)
    named = {"channel": "file", "file_directory": str(tmp_path), "constituency": "ibd", "upstream_token_file": path}
    named["upstream_url"] = hub.url
    assert NSMDigestOutputBot.check({**named, "instance_name": CERT}) is None
    bad = NSMDigestOutputBot.check({**named, "instance_name": "ibd\ncert"})
    assert [level for level, text in bad if "instance_name must be" in text] == ["error"]


def test_names_and_notes_go_where_the_cert_shares_them_and_the_hub_shows_them(hub, cert, tmp_path):
    finding = next(r for r in cert.ledger.records() if r["upstream_finding_id"] == hub_id(1))
    cert.ledger.record_answer(finding["finding_id"], "GM0363", "accepted-risk", note="Decommissioned in June.")
    pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), share_names=True)
    assert pusher.run_once()["applied"] == 7
    ledger = hub.ledger()
    try:
        shared = case_outcome(ledger, CASE, share_names={"ibd"}.__contains__)
        hidden = case_outcome(ledger, CASE)
    finally:
        ledger.close()
    [ibd] = [c for c in shared["constituencies"] if c["constituency"] == "ibd"]
    down = ibd["downstream"]
    assert (down["certs"], down["instances"], down["forwarded"], down["reported"]) == (["cert:ibd"], [CERT], 3, 2)
    assert down["organisations"] == [
        {"name": "Amsterdam", "findings": 2, "by_state": {"notified": 1, "accepted-risk": 1}},
        {"name": "Utrecht", "findings": 1, "by_state": {"notified": 1}},
    ]
    assert ibd["by_state"] == {"open": 1, "notified": 1, "accepted-risk": 1} and ibd["notified"] == 2
    # The hub's registry does not let IBD's names be shared: counts only.
    [ibd] = [c for c in hidden["constituencies"] if c["constituency"] == "ibd"]
    assert "organisations" not in ibd["downstream"] and ibd["downstream"]["organisations_count"] == 2
    assert "Amsterdam" not in json.dumps(hidden) and "Decommissioned" not in json.dumps(hidden)
    history = [h for h in hub_history_of(hub, hub_id(1)) if h["state"] == "accepted-risk"]
    assert history[0]["note"].endswith("Amsterdam (GM0363): Decommissioned in June.")
    # The hub's operators see it per case and per CERT.
    ledger = hub.ledger()
    try:
        figures = overview(ledger)
    finally:
        ledger.close()
    assert [(c["source"], c["changes"]) for c in figures["certs"]] == [("cert:ibd", 7)]
    delivery = {"failed": [], "unreachable": []}
    shown = {"operator": "Hub operator", "logout_csrf": "csrf"}  # what a session adds to the page
    page = html(200, "operators.html.j2", lang="en", as_of="now", delivery=delivery, **shown, **figures).body.decode()
    page = " ".join(re.sub(r"</?bdi[^>]*>", "", page).split())  # the text, each value's isolation aside
    assert "Downstream CERTs" in page and "forwarded 3 to cert:ibd (ibd-cert)" in page
    assert "Amsterdam (notified 1, accepted-risk 1)" in page


def hub_history_of(hub, finding_id):
    ledger = hub.ledger()
    try:
        [record] = [r for r in ledger.history_of(finding_id) if r["org_id"] == "cert:ibd"]
        return record["history"]
    finally:
        ledger.close()


def infected_host(observed: str) -> dict:
    """An infected host as a feed reports it (a sinkhole saw it connect from a client port),
    routed by the hub's expert to the IBD's path."""
    return {
        "__type": "Event",
        "feed.provider": "Shadowserver",
        "feed.name": "Sinkhole-HTTP-Events",
        "time.observation": observed,
        "time.source": observed,
        "classification.taxonomy": "malicious-code",
        "classification.type": "infected-system",
        "classification.identifier": "andromeda",
        "malware.name": "andromeda",
        "source.ip": "192.0.2.9",
        "source.port": 49152,
        "destination.ip": "203.0.113.80",
        "destination.port": 80,
        "protocol.transport": "tcp",
        "constituency": "ibd",
        "extra.nsm.organisations": [{"id": "claim:ibd", "name": "Claimed by the CERT", "kind": "other"}],
    }


def test_a_compromised_finding_no_longer_seen_at_the_cert_reaches_the_hub_as_such_never_as_fixed(tmp_path):
    """The forward leg's record at the hub (``forwarded``) and the return leg through the
    hub's real ``POST /v1/outcomes``: what the CERT's quiet period makes of an infected host
    is "no longer seen" at the hub too, in its state, history and figures; seen again, it
    is reopened there as well."""
    day = 86400.0
    url = sqlite_url(tmp_path / "hub-ledger.sqlite")
    ledger = Ledger(url, name=HUB_LEDGER)
    forwarded = hub_record.record(infected_host("2026-06-01T06:00:00+00:00"), ledger, T0, constituency="ibd")
    ledger.close()
    assert (forwarded["state"], forwarded["org_id"], forwarded["abuse"]) == ("forwarded", "cert:ibd", "compromised")
    hub_finding = forwarded["finding_id"]
    hub = Hub.in_folder(tmp_path, url)
    cert = Cert(tmp_path)
    try:
        cert.ledger.quiet_after = 14 * day
        upstream = {"instance": HUB, "finding_id": hub_finding}

        def at_the_cert(observed: str, port: int) -> dict:
            event = {**infected_host(observed), "source.port": port, "extra.nsm.upstream": upstream}
            return {**event, "extra.nsm.organisations": [AMSTERDAM]}

        cert.notify([at_the_cert("2026-06-01T06:00:00+00:00", 49152)], now=T0)
        pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token))
        assert pusher.run_once()["refused"] == 0
        assert hub_states(hub) == {hub_finding: "notified"}
        # Fifteen days without a report at the CERT: its quiet period, then the outbox.
        assert cert.deliverer.no_longer_seen(now=T0 + 15 * day) == 1
        [mine] = cert.ledger.records()
        assert mine["state"] == "no-longer-seen"
        time.sleep(0.1)  # the pusher's interval
        counts = pusher.run_once()
        assert (counts["applied"], counts["refused"]) == (1, 0)
        assert hub_states(hub) == {hub_finding: "no-longer-seen"}
        by_cert = [(h["old_state"], h["state"]) for h in hub_history(hub, hub_finding) if h["source"] != "scan"]
        assert by_cert[-1] == ("notified", "no-longer-seen") and "fixed-verified" not in {s for _, s in by_cert}
        ledger = hub.ledger()
        try:
            [at_hub] = ledger.records(org_id="cert:ibd")
            assert at_hub["fixed_at"] is None
            [ibd] = stats(ledger)["constituencies"]
            assert (ibd["fixed_verified"], ibd["no_longer_seen"], ibd["days_to_fix"]["count"]) == (0, 1, 0)
            assert ibd["by_kind"]["compromised"]["no_longer_seen"] == 1
            assert ibd["by_kind"]["compromised"]["fixed_verified"] == 0
        finally:
            ledger.close()
        # Seen again at the CERT, from another client port: reopened there and at the hub.
        cert.notify([at_the_cert("2026-06-20T06:00:00+00:00", 51234)], now=T0 + 19 * day)
        assert {r["state"] for r in cert.ledger.records()} == {"reopened"}
        time.sleep(0.1)
        assert pusher.run_once()["applied"] >= 1
        assert hub_states(hub) == {hub_finding: "reopened"}
    finally:
        cert.close()
        hub.stop()
