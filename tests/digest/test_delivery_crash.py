"""Kills of a delivery process against real receivers: an accepted mail is never sent twice,
and an attempt cut short is visible and repeated under the same id."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.sample_events import event, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
ORGS = [organisation("GM0363", "Amsterdam"), organisation("GM0344", "Utrecht"), organisation("GM0599", "Rotterdam")]


class Worker:
    """``tests.digest.delivery_worker`` as a process of its own, killed with SIGKILL."""

    def __init__(self, spool_file: Path, kind: str, target, log: Path):
        self.args = [sys.executable, "-m", "tests.digest.delivery_worker", str(spool_file), kind, str(target)]
        self.log = log
        self.process = None

    def start(self) -> "Worker":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, stderr=log, stdout=subprocess.DEVNULL)
        return self

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def spooled(tmp_path, organisations) -> Path:
    path = tmp_path / "spool.sqlite"
    spool = DigestSpool(path)
    for n, org in enumerate(organisations):
        spool.add(findings_of(event(n, [org])), now=0)
    spool.close()
    return path


def states(path: Path) -> dict:
    spool = DigestSpool(path)
    try:
        return {d["id"]: d for d in spool.digests()}
    finally:
        spool.close()


def test_a_mail_accepted_before_a_slow_quit_is_delivered_once_across_kills(tmp_path):
    path = spooled(tmp_path, ORGS)
    worker = Worker(path, "smtp", None, tmp_path / "worker.log")
    with SmtpSink(quit_delay=30) as sink:
        worker.args[-1] = str(sink.port)
        try:
            for round_ in range(1, len(ORGS) + 1):
                worker.start()
                # The server accepted the round's mail and holds its answer to QUIT: kill now.
                wait_for(lambda n=round_: sink.quits >= n, timeout=30, what=f"QUIT of mail {round_}")
                worker.kill()
                delivered = [d for d in states(path).values() if d["state"] == "delivered"]
                assert len(delivered) == round_, states(path)
            worker.start()  # nothing is left to send
            wait_for(lambda: "delivering" in worker.log.read_text(), timeout=30, what="the last start")
            wait_for(lambda: all(d["state"] == "delivered" for d in states(path).values()), timeout=10)
        finally:
            worker.stop()
        assert sorted(sink.digest_ids().values()) == [1, 1, 1], sink.digest_ids()
    assert set(sink.digest_ids()) == set(states(path))
    assert "interrupted" not in worker.log.read_text()


@pytest.mark.parametrize("kind", ["smtp", "rest"])
def test_an_interrupted_attempt_is_visible_and_repeated_with_the_same_id(tmp_path, kind):
    path = spooled(tmp_path, ORGS[:1])
    receiver = SmtpSink(data_delay=30) if kind == "smtp" else Receiver(script=["hold"])
    worker = Worker(path, kind, receiver.port if kind == "smtp" else receiver.url, tmp_path / "worker.log")
    with receiver:
        try:
            worker.start()
            # The receiver has the digest, the sender has no answer yet.
            if kind == "smtp":
                wait_for(lambda: receiver.messages, timeout=30, what="the mail to arrive")
            else:
                assert receiver.held.wait(30)
            [(digest_id, row)] = states(path).items()
            assert row["state"] == "attempting" and row["attempt_started"] is not None, row
            worker.kill()
            assert states(path)[digest_id]["state"] == "attempting"
            if kind == "smtp":
                receiver.data_delay = 0
            else:
                receiver.release.set()
            worker.start()
            wait_for(lambda: states(path)[digest_id]["state"] == "delivered", timeout=30, what="the repeat")
        finally:
            worker.stop()
        row = states(path)[digest_id]
        assert row["attempts"] == 2
        log = worker.log.read_text()
        assert f"Digest {digest_id}: the attempt started at" in log and "may already hold a copy" in log
        if kind == "smtp":
            # Two copies reached the server, both recognisable as the one digest.
            assert receiver.digest_ids() == {digest_id: 2}
            assert len({message["Message-ID"] for _, _, message in receiver.messages}) == 1
        else:
            receiver.wait_for(lambda r: len(r.requests) == 2)
            assert receiver.keys() == {digest_id: 2}
