"""SIGKILL bots of the example chain while 5,000 findings cross it: none lost, none told twice."""

import csv
import io
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from intelmq_nsm.demo.synthetic import synthetic_example
from tests.harness import HarnessDemo, wait_for

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"
FINDINGS = 5000
REPORTS = 10
#: The bots a SIGKILL may hit. IntelMQ's core deduplicator is left alone: it stores a
#: message's hash before it sends the message, so a kill between the two drops it
#: (intelmq/bots/experts/deduplicator/expert.py in IntelMQ 3.5).
KILLABLE = (
    "nsm-intake",
    "nsm-report-parser",
    "nsm-constituency-expert",
    "ibd-digest-mail",
    "ibd-digest-archive",
)
SEED = 20261129


def kill_and_restart(pipeline, bot_id: str) -> None:
    busy = {queue: n for queue, n in pipeline.queue_sizes().items() if n}
    print(f"SIGKILL {bot_id} while queued: {busy}")
    pipeline.kill(bot_id)
    wait_for(lambda: pipeline.status(bot_id) != "running", timeout=30, what=f"{bot_id} to die")
    pipeline.ctl("start", bot_id, check=True, timeout=60)
    wait_for(lambda: pipeline.status(bot_id) == "running", timeout=30, what=f"{bot_id} to run again")


def delivered(paths) -> dict:
    """Finding address → ids of the distinct digests (by digest id) that held it, and their owners."""
    seen = defaultdict(set)
    for path in paths:
        digest = json.loads(path.read_text(encoding="utf-8"))
        for finding in digest["findings"]:
            seen[finding["ip"]].add((digest["id"], digest["organisation"]["id"]))
    return seen


def test_sigkilled_bots_lose_nothing_and_repeat_no_finding(tmp_path):
    example, expected = synthetic_example(EXAMPLE, tmp_path / "example", FINDINGS, FINDINGS // REPORTS)
    rng = random.Random(SEED)
    demo = HarnessDemo(example, tmp_path / "run", progress=lambda message: None, timeout=600)
    runtime = demo.preflight()
    kills = []
    try:
        demo.start(runtime)
        for report in demo.reports():
            assert demo.submit(report)[0] == 202
            if len(kills) < REPORTS // 2 or rng.random() < 0.5:
                time.sleep(rng.uniform(0.2, 1.5))  # let the report get some way into the chain
                victim = rng.choice(KILLABLE)
                kill_and_restart(demo.pipeline, victim)
                kills.append(victim)
        victim = rng.choice(KILLABLE[3:])  # once more, a digest bot, while the digests go out
        kill_and_restart(demo.pipeline, victim)
        kills.append(victim)
        demo.wait_until_delivered()

        archive = delivered((demo.workdir / "var/lib/bots/ibd-digest-archive/digests").glob("*.json"))
        mails = defaultdict(set)
        for _, _, message in demo.sink.messages:
            [attachment] = list(message.iter_attachments())
            for row in csv.DictReader(io.StringIO(attachment.get_content())):
                mails[row["ip"]].add(message["X-NSM-Digest-Id"])
    finally:
        demo.close()

    assert len(kills) >= 5, kills
    assert len(expected) == FINDINGS
    # Every finding in exactly one archived digest, of the organisation that owns it.
    assert set(archive) == set(expected), f"lost: {len(set(expected) - set(archive))} (kills: {kills})"
    twice = {address: digests for address, digests in archive.items() if len(digests) != 1}
    assert twice == {}, f"{len(twice)} findings in two digests (kills: {kills})"
    wrong = {a: d for a, d in archive.items() if {org for _, org in d} != {expected[a]}}
    assert wrong == {}
    # By mail too: a repeated mail carries the same digest id, never a second digest.
    assert {address for address in mails} == set(expected)
    assert {address: ids for address, ids in mails.items() if len(ids) != 1} == {}
    assert demo.pipeline.dumps() == {}
