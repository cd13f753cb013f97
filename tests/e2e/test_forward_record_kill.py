"""SIGKILL of the hub's forward-record output mid-batch, on real components and without
RabbitMQ: the hub's IntelMQ root (its own redis-server, bots started by intelmqctl) running
the one-installation example as the hub, with the record output of
``runtime-examples/forward-leg/hub.yaml`` on the IBD's path. IntelMQ's AMQP output, the
path's other queue, is left out: its own kill is tested on RabbitMQ (test_forward_leg.py).

The blow falls after the record of the message the bot holds was committed and before
IntelMQ acknowledged that message (the bot is stopped with SIGSTOP until it is there, then
SIGKILLed), so that the bot is handed a repeat of a recorded event when it starts again,
every run. Nothing lost and nothing counted twice: the hub's ledger holds each finding once,
forwarded to ``cert:ibd``, seen once and with one line of history, and the researcher's
``GET /v1/cases/<id>`` at the hub counts every one of them forwarded.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from intelmq_nsm import event_contract as ec
from intelmq_nsm.intake.cases import CaseBook
from intelmq_nsm.testbed.chain import ExampleChain
from intelmq_nsm.testbed.layout import bots_of
from intelmq_nsm.testbed.sample_events import hub_event
from intelmq_nsm.testbed.tiers import AMQP_OUTPUT_MODULE, EXPERT, hub_runtime
from tests.harness import HarnessPipeline, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "runtime-examples" / "nsm-ibd"
SNIPPETS = REPO / "runtime-examples" / "forward-leg"
RECORD = "ibd-forward-record"
#: A case of its own, so that the case view counts this batch only; the example's researcher.
CASE, RESEARCHER = "DIVD-2026-01500", "DIVD"
TOTAL = 1500
COLLECTED = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def hub_without_rabbitmq() -> dict:
    """The hub's runtime with the IBD's path going to the forward-record output only."""
    example = yaml.safe_load((EXAMPLE / "runtime.yaml").read_text(encoding="utf-8"))
    runtime = hub_runtime(example, SNIPPETS, "ibd")
    for bot_id in bots_of(runtime, AMQP_OUTPUT_MODULE):
        del runtime[bot_id]
    runtime[EXPERT]["parameters"]["destination_queues"]["ibd"] = [f"{RECORD}-queue"]
    return runtime


def batch() -> list:
    """``TOTAL`` distinct findings on the IBD's path, each from a report of its own (its own
    ``time.observation``): the events of one report are one observation in the ledger, so
    with one report for all a repeat counted as a second sighting would not show in
    ``times_seen``."""
    events = []
    for n in range(TOTAL):
        event = hub_event(n, case=CASE)
        event["time.observation"] = (COLLECTED + timedelta(seconds=n)).isoformat()
        events.append(event)
    return events


@pytest.fixture
def hub(tmp_path):
    chain = ExampleChain(EXAMPLE, tmp_path / "hub", pipeline_class=HarnessPipeline)
    try:
        chain.start(hub_without_rabbitmq())
        yield chain
    finally:
        chain.close()


def test_a_sigkilled_forward_record_output_mid_batch_records_each_finding_once_and_counts_it_once(hub):
    pipeline = hub.pipeline
    events = batch()
    assert len({e[ec.FINDING_ID] for e in events}) == TOTAL
    ledger = hub.ledger(RECORD)
    cases = CaseBook(pipeline.runtime["nsm-intake"]["parameters"]["case_file"])
    try:
        cases.assign(CASE, RESEARCHER)  # as an operator does: intelmq-nsm cases assign
    finally:
        cases.close()
    pipeline.stop(RECORD)
    pipeline.push(RECORD, *events)
    held = []

    def part_way() -> bool:
        return 20 < TOTAL - pipeline.waiting(RECORD) < TOTAL - 100

    reads, reading = ThreadPoolExecutor(1), []

    def recorded_not_acknowledged() -> bool:
        # The blow falls after the record of the message in hand was committed and before
        # IntelMQ acknowledged it: the message comes back from the bot's internal queue when
        # it starts again, a repeat of what the ledger holds. Asked with the bot stopped: a
        # bot stopped inside its transaction holds the ledger's lock, which the ledger's
        # reads wait for (BEGIN IMMEDIATE), so a read that does not answer at once says "not
        # committed" and is left to finish once the bot goes on.
        in_hand = pipeline.in_hand(RECORD)
        if not in_hand or (reading and not reading[-1].done()):
            return False
        reading.append(reads.submit(ledger.history_of, in_hand[0][ec.FINDING_ID]))
        try:
            return bool(reading[-1].result(timeout=0.1))
        except FutureTimeout:
            return False

    def keep_what_it_held():
        held.extend(pipeline.in_hand(RECORD))

    try:
        pipeline.kill_part_way(RECORD, part_way, keep_what_it_held, at=recorded_not_acknowledged)
    finally:
        reads.shutdown()
    print(f"Killed after {len(reading)} reads, holding {[m[ec.FINDING_ID] for m in held]}, already recorded.")
    wait_for(
        lambda: ledger.count() == TOTAL and not any(pipeline.queue_sizes().values()),
        timeout=120,
        what=f"{TOTAL} findings recorded and every queue empty",
    )
    pipeline.wait_drained(timeout=60, settle=0.5)
    try:
        records, changes = ledger.case_records(CASE)
    finally:
        ledger.close()

    [repeat] = held  # the message in hand, recorded before the blow
    assert Counter(c["finding_id"] for c in changes)[repeat[ec.FINDING_ID]] == 1
    # Every finding once, forwarded to the IBD, seen once: a repeat counted as a second
    # sighting would raise times_seen and move last_seen.
    assert Counter(r["finding_id"] for r in records) == Counter(e[ec.FINDING_ID] for e in events)
    assert {(r["org_id"], r["state"], r["constituency"]) for r in records} == {("cert:ibd", "forwarded", "ibd")}
    counted = [(r["finding_id"], r["times_seen"], r["first_seen"], r["last_seen"]) for r in records]
    assert [c for c in counted if c[1] != 1 or c[2] != c[3]] == []
    # ...and one change in its history: forwarded.
    assert Counter(c["finding_id"] for c in changes) == Counter(e[ec.FINDING_ID] for e in events)
    assert {c["state"] for c in changes} == {"forwarded"}
    assert {k: n for k, n in pipeline.queue_sizes().items() if n} == {}
    assert pipeline.dumps() == {}
    assert pipeline.log_lines([RECORD]) == []

    case = hub.intake.case(CASE)
    [ibd] = case["constituencies"]
    assert (ibd["constituency"], ibd["forwarded"], ibd["findings"]) == ("ibd", TOTAL, TOTAL)
    assert ibd["by_state"] == {"forwarded": TOTAL}
    assert case["forwarded"] == TOTAL
