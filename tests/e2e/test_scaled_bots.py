"""The parser and the constituency expert as three bot ids each behind ``load_balance``, on
Redis and on RabbitMQ, with one instance of each SIGKILLed mid-run and restarted: every
finding reaches its organisation's digests exactly once."""

import signal
import time
from pathlib import Path

import pytest
import redis

from intelmq_nsm.testbed.chain import ExampleChain
from intelmq_nsm.testbed.pipeline import STATISTICS_DB, wait_for
from intelmq_nsm.testbed.scaling import instance_ids, scale_out
from intelmq_nsm.testbed.synthetic import synthetic_example
from tests.harness import HarnessPipeline, archived, mailed

# Run after the parallel part of the test command, in one process (see scripts/test).
pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq]

EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"
INSTANCES = 3
FINDINGS = 1200
REPORTS = 6
PARSER, EXPERT = "nsm-report-parser", "nsm-constituency-expert"


def scaled(runtime: dict) -> dict:
    return scale_out(scale_out(runtime, PARSER, INSTANCES), EXPERT, INSTANCES)


@pytest.fixture(params=["redis", "amqp"])
def broker(request):
    """The broker name, and the session's RabbitMQ for amqp."""
    if request.param == "amqp":
        return "amqp", request.getfixturevalue("rabbitmq_server")
    return "redis", None


def test_three_instances_each_deliver_every_finding_exactly_once_despite_a_sigkill(tmp_path, broker):
    name, rabbitmq = broker
    example, expected = synthetic_example(EXAMPLE, tmp_path / "example", FINDINGS, FINDINGS // REPORTS)
    chain = ExampleChain(
        example, tmp_path / "run", pipeline_class=HarnessPipeline, timeout=300, broker=name, rabbitmq=rabbitmq
    )
    runtime = scaled(chain.runtime())
    kills = []
    try:
        chain.start(runtime)
        assert chain.pipeline.runtime["nsm-intake"]["parameters"]["load_balance"] is True
        assert chain.pipeline.runtime["deduplicator-expert"]["parameters"]["load_balance"] is True
        for number, report in enumerate(chain.reports()):
            if number == REPORTS // 2:
                # Mid-run: an expert instance with events in hand and more queued for it.
                # It is paused first, so its queue fills whatever the machine's speed: a
                # fast expert would otherwise keep its queue empty and the kill would find
                # nothing to lose.
                chain.pipeline.kill(f"{EXPERT}-2", signal.SIGSTOP)
            assert chain.submit(report)[0] == 202
            if number == REPORTS // 2:
                wait_for(
                    lambda: chain.pipeline.queue_sizes().get(chain.pipeline.queue(f"{EXPERT}-2"), 0),
                    timeout=60,
                    what="events queued for the paused expert",
                )
                for victim in (f"{EXPERT}-2", f"{PARSER}-1"):
                    chain.pipeline.kill_and_restart(victim)
                    kills.append(victim)
        chain.wait_until_delivered()
        stats = redis.Redis(port=chain.redis.port, db=STATISTICS_DB, decode_responses=True)
        time.sleep(2.5)  # bots flush their counters every 2 s
        handled = {b: int(stats.get(f"{b}.stats.success") or 0) for b in instance_ids(EXPERT, 3)}
        archive = archived(chain.workdir / "var/lib/bots/ibd-digest-archive/digests")
        mails = mailed(chain.sink.messages)
        dumps = chain.pipeline.dumps()
        errors = chain.pipeline.log_lines(level="ERROR")
    finally:
        chain.close()

    assert kills == [f"{EXPERT}-2", f"{PARSER}-1"]
    # Every instance took a share of the events (counters restart with a restarted bot).
    assert all(n > 0 for n in handled.values()), handled
    assert len(expected) == FINDINGS
    assert set(archive) == set(expected), f"lost: {len(set(expected) - set(archive))}"
    assert {a: d for a, d in archive.items() if len(d) != 1} == {}, "findings in two digests"
    assert {a: d for a, d in archive.items() if {org for _, org in d} != {expected[a]}} == {}
    assert set(mails) == set(expected)
    assert {a: ids for a, ids in mails.items() if len(ids) != 1} == {}
    assert dumps == {}
    assert errors == []
