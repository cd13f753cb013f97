"""SIGKILL bots of the example chain while 1,200 findings cross it: none lost, and
every digest told once, counted at the SMTP server and at the REST receiver.

The kill schedule follows a seed: CI runs the fixed ``SEEDS``; ``NSM_CHAOS_SEED=N`` (or
``NSM_CHAOS_SEED=random``, several separated by commas) runs others. Each run prints its
seed, and the seed is in the test's id.
"""

import functools
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from intelmq_nsm.testbed.chain import ExampleChain
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from intelmq_nsm.testbed.synthetic import synthetic_example
from tests.harness import HarnessPipeline, archived, mailed

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"
FINDINGS = 1200
REPORTS = 6
#: The bots a SIGKILL may hit. IntelMQ's core deduplicator is left alone: it stores a
#: message's hash before it sends the message, so a kill between the two drops it
#: (intelmq/bots/experts/deduplicator/expert.py in IntelMQ 3.5).
KILLABLE = (
    "nsm-intake",
    "nsm-report-parser",
    "nsm-constituency-expert",
    "ibd-digest-mail",
    "ibd-digest-rest",
    "ibd-digest-archive",
)
DIGEST_BOTS = KILLABLE[3:]
SEEDS = (20261129, 1301)
#: Receivers slow to finish: the SMTP server answers QUIT, the REST receiver its requests,
#: after this long, so that kills land while a digest is on its way.
QUIT_DELAY = 0.1
REST_DELAY = 0.02
#: Digests go out 6 s after their oldest finding (the demo's 3 s would make more, smaller ones).
PACE = {"max_age": 6, "delivery_interval": 0.5}
INTERRUPTED = re.compile(r"Digest ([0-9a-f]{64}): the attempt started at .* was interrupted")


def seeds() -> list:
    chosen = os.environ.get("NSM_CHAOS_SEED", "").strip()
    if not chosen:
        return list(SEEDS)
    return [random.SystemRandom().randrange(2**32) if s == "random" else int(s) for s in chosen.split(",")]


def with_rest_output(runtime: dict, url: str) -> dict:
    """The example runtime plus a REST digest bot on the ibd path, beside the mail and the archive."""
    runtime = json.loads(json.dumps(runtime))
    runtime["ibd-digest-rest"] = {
        "bot_id": "ibd-digest-rest",
        "name": "IBD digests (REST)",
        "group": "Output",
        "groupname": "outputs",
        "module": "intelmq.bots.outputs.nsm.digest",
        "description": "The same digests to the IBD's intake API.",
        "enabled": True,
        "run_mode": "continuous",
        "parameters": {
            "channel": "rest",
            "constituency": "ibd",
            "spool_file": "/opt/intelmq/var/lib/bots/ibd-digest-rest/spool.sqlite",
            "rest_url": url,
            "rest_secret": "chaos-secret",
            "rest_timeout": 10,
            "max_events": 500,
            "max_age": 3600,
            "delivery_interval": 5,
        },
    }
    runtime["nsm-constituency-expert"]["parameters"]["destination_queues"]["ibd"].append("ibd-digest-rest-queue")
    return runtime


def delivered_ids(spool_file: Path) -> set:
    from intelmq_nsm.digest.spool import DigestSpool

    spool = DigestSpool(spool_file)
    try:
        assert {d["state"] for d in spool.digests()} <= {"delivered"}, spool.counts()
        return {d["id"] for d in spool.digests()}
    finally:
        spool.close()


def not_once(arrivals: Counter, interrupted: set) -> dict:
    """Digests that did not arrive exactly once. A digest whose attempt a kill cut short
    (the bot logged it) may arrive twice under its one id; nothing may arrive three times."""
    return {d: n for d, n in arrivals.items() if n != 1 and not (n == 2 and d in interrupted)}


@pytest.mark.parametrize("seed", seeds(), ids=lambda seed: f"seed={seed}")
def test_sigkilled_bots_lose_nothing_and_tell_each_digest_once(tmp_path, monkeypatch, seed):
    print(f"chaos seed {seed}: NSM_CHAOS_SEED={seed} repeats this kill schedule")
    example, expected = synthetic_example(EXAMPLE, tmp_path / "example", FINDINGS, FINDINGS // REPORTS)
    rng = random.Random(seed)
    # The example chain with an SMTP sink slow to answer QUIT.
    chain = ExampleChain(
        example,
        tmp_path / "run",
        pipeline_class=HarnessPipeline,
        pace=PACE,
        sink_factory=functools.partial(SmtpSink, quit_delay=QUIT_DELAY),
        timeout=600,
    )
    kills = []
    with Receiver(delay=REST_DELAY) as receiver:
        runtime = with_rest_output(chain.runtime(), receiver.url)
        try:
            chain.start(runtime)
            for report in chain.reports():
                assert chain.submit(report)[0] == 202
                if len(kills) < REPORTS // 2 or rng.random() < 0.5:
                    time.sleep(rng.uniform(0.2, 1.5))  # let the report get some way into the chain
                    victim = rng.choice(KILLABLE)
                    chain.pipeline.kill_and_restart(victim)
                    kills.append(victim)
            # Then digest bots, while the digests go out (they form after the demo's max_age).
            for _ in range(rng.randint(2, 4)):
                time.sleep(rng.uniform(0.5, 3.0))
                victim = rng.choice(DIGEST_BOTS)
                chain.pipeline.kill_and_restart(victim)
                kills.append(victim)
            chain.wait_until_delivered()

            lib = chain.workdir / "var/lib/bots"
            archive = archived(lib / "ibd-digest-archive/digests")
            mails = chain.sink.digest_ids()
            by_mail = mailed(chain.sink.messages)
            posts = receiver.keys()
            posted = defaultdict(set)
            for document in receiver.accepted:
                for finding in document["findings"]:
                    posted[finding["ip"]].add(document["id"])
            spooled = {bot: delivered_ids(lib / bot / "spool.sqlite") for bot in DIGEST_BOTS}
            interrupted = {bot: set(INTERRUPTED.findall(chain.pipeline.log(bot))) for bot in DIGEST_BOTS}
            dumps = chain.pipeline.dumps()
        finally:
            chain.close()

    run = f"(seed {seed}, kills: {kills})"
    print(f"{len(mails)} mails, {len(posts)} POSTs, {len(kills)} kills: {kills}")
    print(f"interrupted attempts, sent again under the same id: { {b: len(i) for b, i in interrupted.items()} }")
    assert len(kills) >= 5, kills
    assert len(expected) == FINDINGS
    # Every finding in exactly one archived digest, of the organisation that owns it.
    assert set(archive) == set(expected), f"lost: {len(set(expected) - set(archive))} {run}"
    assert {a: d for a, d in archive.items() if len(d) != 1} == {}, f"findings in two digests {run}"
    assert {a: d for a, d in archive.items() if {org for _, org in d} != {expected[a]}} == {}
    # Each digest arrived once at the SMTP server and once at the REST receiver, and they
    # are exactly the digests the bots' spools hold as delivered.
    assert set(mails) == spooled["ibd-digest-mail"], run
    assert set(posts) == spooled["ibd-digest-rest"], run
    assert not_once(mails, interrupted["ibd-digest-mail"]) == {}, f"mails not sent exactly once {run}"
    assert not_once(posts, interrupted["ibd-digest-rest"]) == {}, f"POSTs not sent exactly once {run}"
    # Every finding reached the IBD by mail and by REST, in one digest each.
    assert set(by_mail) == set(expected) and {a: i for a, i in by_mail.items() if len(i) != 1} == {}, run
    assert set(posted) == set(expected) and {a: i for a, i in posted.items() if len(i) != 1} == {}, run
    assert dumps == {}
