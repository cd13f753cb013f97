"""The durable spool and idempotency record."""

import threading

from intelmq_nsm.intake.spool import ACCEPTED, QUEUED, SPOOLED, Submission, SubmissionSpool


def submission(sid="a" * 64, reports=2) -> Submission:
    return Submission(sid, "DIVD", "0badc0de", "text/csv", ACCEPTED, 10, reports, 1.0, 1.0)


def test_a_submission_is_stored_once_and_its_reports_survive_a_reopen(tmp_path):
    spool = SubmissionSpool(tmp_path / "spool.sqlite")
    stored, created = spool.accept(submission(), [({"feed_code": "divd"}, b"one"), ({"feed_code": "divd"}, b"two")])
    assert created and stored.state == ACCEPTED
    again, created = spool.accept(submission(), [({}, b"other")])
    assert not created and again.id == stored.id
    spool.close()
    spool = SubmissionSpool(tmp_path / "spool.sqlite")
    assert [(i.part, i.raw, i.meta) for i in spool.pending()] == [
        (1, b"one", {"feed_code": "divd"}),
        (2, b"two", {"feed_code": "divd"}),
    ]


def test_states_follow_sending(tmp_path):
    spool = SubmissionSpool(tmp_path / "spool.sqlite")
    spool.accept(submission(), [({}, b"one"), ({}, b"two")])
    assert spool.mark_spooled() == 1 and spool.get("a" * 64).state == SPOOLED
    first, second = spool.pending()
    spool.sent(first)
    assert spool.get("a" * 64).state == SPOOLED and spool.pending_count() == 1
    spool.sent(second)
    assert spool.get("a" * 64).state == QUEUED and spool.pending_count() == 0
    assert spool.mark_spooled() == 0
    assert spool.get("b" * 64) is None


def test_concurrent_accepts_of_one_id_store_one_submission(tmp_path):
    spool = SubmissionSpool(tmp_path / "spool.sqlite")
    results = []
    barrier = threading.Barrier(8)

    def accept():
        barrier.wait()
        results.append(spool.accept(submission(), [({}, b"one")])[1])

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert spool.pending_count() == 1
