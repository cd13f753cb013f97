"""SIGKILL the digest outputs while a rescan round crosses the example chain: every finding
is notified exactly once per due notification (once as new, once as a reminder)."""

import json
import random
import time

import pytest

from intelmq_nsm.demo.rounds import ROUND_TWO_CLOCK
from intelmq_nsm.testbed.chain import ExampleChain
from intelmq_nsm.testbed.synthetic import synthetic_example
from tests.e2e.test_chaos import EXAMPLE
from tests.harness import HarnessPipeline, archived, mailed

pytestmark = pytest.mark.e2e

FINDINGS = 1000
REPORTS = 8
OUTPUTS = ("ibd-digest-mail", "ibd-digest-archive")
SEED = 20261201


def rescan(example) -> None:
    """The same reports as a rescan a week later: the same findings, a later scan time."""
    for path in (example / "reports").glob("*.json"):
        report = json.loads(path.read_text(encoding="utf-8"))
        for finding in report["findings"]:
            finding["observed"] = "2026-11-08T12:00:00Z"
        path.write_text(json.dumps(report), encoding="utf-8")


def archived_by_kind(chain) -> dict:
    """(address, kind) → the distinct archived digests (by id) that held it."""
    return archived(
        chain.workdir / "var/lib/bots/ibd-digest-archive/digests",
        key=lambda digest, finding: ((finding["ip"], finding["kind"]), digest["id"]),
    )


def mailed_by_kind(chain) -> dict:
    """(address, kind) → the distinct mailed digests (by id) that held it."""
    return mailed(chain.sink.messages, key=lambda row: (row["ip"], row["kind"]))


def test_sigkilled_outputs_during_a_rescan_notify_each_finding_once_per_due_notification(tmp_path):
    example, expected = synthetic_example(EXAMPLE, tmp_path / "example", FINDINGS, FINDINGS // REPORTS)
    rng = random.Random(SEED)
    chain = ExampleChain(example, tmp_path / "run", pipeline_class=HarnessPipeline, timeout=600)
    runtime = chain.runtime()
    kills = []
    try:
        chain.start(runtime)
        for report in chain.reports():
            assert chain.submit(report)[0] == 202
        chain.wait_until_delivered()
        first = archived_by_kind(chain)
        assert {address for address, kind in first} == set(expected)
        assert {kind for _, kind in first} == {"new"}

        chain.set_clock(ROUND_TWO_CLOCK)
        rescan(example)
        for report in chain.reports():
            assert chain.submit(report)[0] == 202
            time.sleep(rng.uniform(0.2, 1.0))
            victim = rng.choice(OUTPUTS)
            chain.pipeline.kill_and_restart(victim)
            kills.append(victim)
        chain.wait_until_delivered()
        archive, mails = archived_by_kind(chain), mailed_by_kind(chain)
        dumps = chain.pipeline.dumps()
    finally:
        chain.close()

    assert len(kills) == REPORTS and set(kills) == set(OUTPUTS), kills
    due = {(address, kind) for address in expected for kind in ("new", "reminder")}
    for seen, channel in ((archive, "archive"), (mails, "mail")):
        assert set(seen) == due, f"{channel}: missing {len(due - set(seen))}, extra {len(set(seen) - due)}"
        twice = {key: ids for key, ids in seen.items() if len(ids) != 1}
        assert twice == {}, f"{channel}: {len(twice)} notifications in two digests (kills: {kills})"
    assert dumps == {}
