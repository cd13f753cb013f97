"""``intelmq-nsm spool``: list, show, retry, purge and flush on a real spool file."""

import json

from intelmq_nsm.cli import main
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.sample_events import event, organisation

AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")


def make_spool(path):
    spool = DigestSpool(path)
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    spool.add(findings_of(event(2, [UTRECHT])), now=0)
    first, second = spool.form_digests(max_events=10, max_age=0, now=1)
    spool.mark_failed(first, "POST answered 422: 'bad'")
    spool.mark_delivered(second, now=2)
    spool.mark_recorded(second)  # counted in the ledger
    spool.add(findings_of(event(3, [UTRECHT])), now=3)
    return spool, first, second


def test_list_shows_states_counts_and_errors(tmp_path, capsys):
    _, failed, _ = make_spool(tmp_path / "s.sqlite")
    assert main(["spool", str(tmp_path / "s.sqlite"), "list"]) == 0
    out = capsys.readouterr().out
    assert "0 pending, 0 attempting, 1 delivered, 1 failed digests; 1 findings not yet in a digest." in out
    assert f"{failed[:16]}  failed" in out and "last error: POST answered 422" in out
    main(["spool", str(tmp_path / "s.sqlite"), "list", "--state", "failed", "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in listing["digests"]] == [failed]


def test_show_renders_the_digest(tmp_path, capsys):
    _, failed, _ = make_spool(tmp_path / "s.sqlite")
    main(["spool", str(tmp_path / "s.sqlite"), "show", failed[:10], "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == failed
    main(["spool", str(tmp_path / "s.sqlite"), "show", failed[:10], "--language", "en"])
    captured = capsys.readouterr()
    assert captured.out.startswith("TLP:AMBER Recipients may share") and "\n\nDear " in captured.out
    assert "state failed, attempts 1" in captured.err


def test_retry_puts_a_failed_digest_back_and_purge_removes_delivered(tmp_path, capsys):
    spool, failed, delivered = make_spool(tmp_path / "s.sqlite")
    assert main(["spool", str(tmp_path / "s.sqlite"), "retry", failed[:12]]) == 0
    assert spool.due() == [failed]
    assert main(["spool", str(tmp_path / "s.sqlite"), "retry", delivered]) == 1  # delivered: nothing to do
    assert main(["spool", str(tmp_path / "s.sqlite"), "purge", "--older-than-days", "0"]) == 0
    assert "Purged 1 delivered" in capsys.readouterr().out
    assert [d["id"] for d in spool.digests()] == [failed]


def test_flush_forms_digests_from_waiting_findings(tmp_path, capsys):
    spool, _, _ = make_spool(tmp_path / "s.sqlite")
    main(["spool", str(tmp_path / "s.sqlite"), "flush"])
    assert "Formed 1 digest(s)" in capsys.readouterr().out
    assert spool.counts()["waiting_findings"] == 0 and spool.counts()["pending"] == 1
