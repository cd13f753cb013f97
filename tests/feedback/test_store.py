"""The feedback store on both ledger backends: what a link covers, answers and references."""

import time

import pytest

from intelmq_nsm.digest import notify
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.ledger import Ledger
from intelmq_nsm.feedback.answers import ConflictingReference, FeedbackConfig, FeedbackStore, UnknownFinding
from intelmq_nsm.feedback.links import Link
from intelmq_nsm.testbed.sample_events import event, organisation

AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")


@pytest.fixture
def store(ledger_url):
    ledger = Ledger(ledger_url, name="ibd-digest-mail")
    now = time.time()
    recorded = []
    for n, org in ((1, AMSTERDAM), (2, AMSTERDAM), (3, UTRECHT)):
        record = ledger.observe(notify.observations(findings_of(event(n, [org]))), now)[0]
        recorded.append((record["finding_id"], org["id"]))
    ledger.record_delivery("digest-a", [(f, "GM0363", "new") for f, o in recorded if o == "GM0363"], now)
    ledger.record_delivery("digest-u", [(f, "GM0344", "new") for f, o in recorded if o == "GM0344"], now)
    store = FeedbackStore(FeedbackConfig(ledger_url, "ibd-digest-mail"), ledger=ledger)
    store.recorded = recorded
    yield store
    store.close()


def test_a_link_covers_its_organisations_findings_in_its_digest(store):
    mine = store.findings_for(Link("digest-a", "GM0363", None, 0))
    assert sorted(r["finding_id"] for r in mine) == sorted(f for f, o in store.recorded if o == "GM0363")
    assert store.findings_for(Link("digest-a", "GM0344", None, 0)) == []
    assert store.findings_for(Link("digest-u", "GM0363", None, 0)) == []
    foreign = next(f for f, o in store.recorded if o == "GM0344")
    with pytest.raises(UnknownFinding):
        store.answer(Link("digest-a", "GM0363", None, 0), foreign, "fixed")


def test_answers_keep_history_and_references_are_idempotent(store):
    finding = next(f for f, o in store.recorded if o == "GM0363")
    link = Link("digest-a", "GM0363", None, 0)
    assert store.answer(link, finding, "not-ours", "Van de provincie.")["state"] == "disputed"
    created, result = store.api_answer("IBD-tickets", finding, "GM0363", "fixed-reported", "", "T-1")
    assert created and result["previous_state"] == "disputed"
    assert store.api_answer("IBD-tickets", finding, "GM0363", "fixed-reported", "", "T-1")[0] is False
    with pytest.raises(ConflictingReference):
        store.api_answer("IBD-tickets", finding, "GM0363", "open", "", "T-1")
    # Another client's reference of the same text is its own.
    assert store.api_answer("Other", finding, "GM0363", "open", "", "T-1")[0] is True
    record = next(r for r in store.findings_for(link) if r["finding_id"] == finding)
    assert [h["state"] for h in record["history"]] == ["open", "notified", "disputed", "fixed-reported", "open"]


def test_an_owners_fixed_on_a_verified_fix_is_kept_in_the_history_and_the_fix_stays(ledger_url):
    """ "Opgelost" on the link of a digest that reported verified fixes: the ledger keeps the
    answer in the history, the verified fix stays, and the case's figures do not move."""
    from intelmq_nsm.digest.ledger.outcome import case_outcome

    ledger = Ledger(ledger_url, name="ibd-digest-mail")
    store = FeedbackStore(FeedbackConfig(ledger_url, "ibd-digest-mail"), ledger=ledger)
    try:
        now = time.time()
        ids = []
        for n in range(1, 11):
            [record] = ledger.observe(notify.observations(findings_of(event(n, [AMSTERDAM]))), now)
            ids.append(record["finding_id"])
        ledger.record_delivery("digest-new", [(f, "GM0363", "new") for f in ids], now)
        fixed = []
        for n in range(1, 4):
            rescan = event(n, [AMSTERDAM], **{"extra.nsm.result": "not-vulnerable", "time.observation": "2024-05-09"})
            [record] = ledger.observe(notify.observations(findings_of(rescan)), now + 86400)
            assert record["kind"] == "fixed"
            fixed.append(record["finding_id"])
        ledger.record_delivery("digest-fixed", [(f, "GM0363", "fixed") for f in fixed], now + 86400)
        before = case_outcome(ledger, "DIVD-2024-00012", now=now + 2 * 86400)
        assert (before["fixed_verified"], before["open"]) == (3, 7)

        record = store.answer(Link("digest-fixed", "GM0363", None, 0), fixed[0], "fixed", "Gepatcht.", now + 2 * 86400)

        assert record["state"] == "fixed-verified"
        last = record["history"][-1]
        assert (last["source"], last["old_state"], last["state"], last["requested"], last["note"]) == (
            "owner",
            "fixed-verified",
            "fixed-verified",
            "fixed-reported",
            "Gepatcht.",
        )
        after = case_outcome(ledger, "DIVD-2024-00012", now=now + 2 * 86400)
        assert (after["fixed_verified"], after["open"]) == (3, 7)
        [answer] = ledger.answers()
        assert (answer["state"], answer["answer"]) == ("fixed-verified", "fixed-reported")
        # The same answer on a finding that is still open is the owner's word, as before.
        assert store.answer(Link("digest-new", "GM0363", None, 0), ids[5], "fixed")["state"] == "fixed-reported"
    finally:
        store.close()
