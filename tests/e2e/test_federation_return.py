"""The return leg with the CERT's digest output running as an IntelMQ bot (real Redis, real
intelmqctl) and the hub's feedback service on 127.0.0.1: the findings the hub forwarded go
up as the CERT notifies them, also after the hub was down; an owner's answer at the CERT
follows; a SIGKILL of the bot while the hub's answer to a batch is on its way loses nothing
and applies nothing twice."""

import pytest

from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from tests.federation.two_tiers import (
    CERT,
    HoldingRelay,
    Hub,
    cert_changes,
    forwarded_event,
    hub_id,
    hub_ledger,
    hub_states,
    sent_once,
    token_file,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

BOT = "ibd-digest"
FINDINGS = range(12)


def cert_bot(tmp_path, upstream_url, token_path, **parameters):
    return {
        "module": "intelmq.bots.outputs.nsm.digest",
        "parameters": {
            "channel": "file",
            "constituency": "ibd",
            "file_directory": str(tmp_path / "digests"),
            "file_formats": ["json"],
            "spool_file": str(tmp_path / "cert-spool.sqlite"),
            "max_age": 0.5,
            "delivery_interval": 0.1,
            "retry_base": 0.2,
            "retry_max": 1,
            "instance_name": CERT,
            "upstream_url": upstream_url,
            "upstream_token_file": token_path,
            "upstream_interval": 0.1,
            **parameters,
        },
    }


def expected(tmp_path) -> list:
    """Every change of the hub's findings in the CERT's ledger, as the hub must hold it once."""
    ledger = Ledger(sqlite_url(tmp_path / "cert-spool.sqlite"), name=BOT)
    try:
        return sent_once(ledger)
    finally:
        ledger.close()


@pytest.fixture
def hub(tmp_path):
    url = sqlite_url(tmp_path / "hub-ledger.sqlite")
    hub_ledger(url, {"ibd": list(FINDINGS)}).close()
    made = Hub.in_folder(tmp_path, url)
    yield made
    made.stop()


def all_notified(hub):
    return set(hub_states(hub).values()) == {"notified"} and len(hub_states(hub)) == len(FINDINGS)


def test_the_cert_s_outcomes_reach_the_hub_after_it_was_down_and_an_owner_s_answer_follows(
    tmp_path, hub, intelmq_pipeline
):
    hub.stop()  # the hub is down while the CERT notifies
    pipeline = intelmq_pipeline({BOT: cert_bot(tmp_path, hub.url, token_file(tmp_path, hub.ibd_token))})
    pipeline.start()
    pipeline.push(BOT, *[forwarded_event(n) for n in FINDINGS])
    pipeline.wait_drained()
    wait_for(lambda: len(expected(tmp_path)) == 2 * len(FINDINGS), timeout=60, what="the CERT notifying")
    wait_for(lambda: "The outbox to" in pipeline.log(BOT), timeout=30, what="the outbox waiting")
    hub.start()
    wait_for(lambda: all_notified(hub), timeout=60, what="the hub hearing of every notification")
    # The owner of finding 3 answers at the CERT (its feedback service writes the CERT's ledger).
    ledger = Ledger(sqlite_url(tmp_path / "cert-spool.sqlite"), name=BOT)
    [record] = [r for r in ledger.records() if r["upstream_finding_id"] == hub_id(3)]
    ledger.record_answer(record["finding_id"], "GM0363", "disputed", note="Not our system.")
    ledger.close()
    wait_for(lambda: hub_states(hub)[hub_id(3)] == "disputed", timeout=30, what="the answer at the hub")
    wait_for(lambda: cert_changes(hub) == expected(tmp_path), timeout=30, what="each change once at the hub")
    assert not pipeline.log_lines([BOT], "ERROR")


def test_a_sigkill_while_the_hub_s_answer_is_on_its_way_loses_nothing_and_applies_nothing_twice(
    tmp_path, hub, intelmq_pipeline
):
    with HoldingRelay(hub.url) as relay:
        relay.hold_next.set()  # the first batch's answer waits until the bot is dead
        runtime = {BOT: cert_bot(tmp_path, relay.url, token_file(tmp_path, hub.ibd_token), upstream_batch=5)}
        pipeline = intelmq_pipeline(runtime)
        pipeline.start()
        pipeline.push(BOT, *[forwarded_event(n) for n in FINDINGS])
        assert relay.held.wait(60), "No batch reached the hub."
        [first] = relay.answers
        assert first["applied"] >= 1 and first["refused"] == 0  # applied; the bot never hears so
        pipeline.kill(BOT)
        wait_for(lambda: pipeline.status(BOT) != "running", timeout=30, what="the bot to die")
        relay.release.set()
        pipeline.start(BOT)
        wait_for(lambda: all_notified(hub), timeout=90, what="every notification at the hub")
        wait_for(lambda: cert_changes(hub) == expected(tmp_path), timeout=30, what="each change once at the hub")
        # The batch the bot never heard of went again and was taken as duplicates.
        again = [a for a in relay.answers[1:] if a["duplicate"]]
        assert again and again[0]["duplicate"] == first["applied"]
        assert len(cert_changes(hub)) == 2 * len(FINDINGS)
