"""The example NSM→IBD chain on IntelMQ's AMQP pipeline (a private RabbitMQ), and what that
pipeline does and does not do for these bots."""

import csv
import io
import json
import time
from pathlib import Path

import pytest
import redis
import yaml

from intelmq_nsm.demo import Demo, finding_address
from intelmq_nsm.testbed.pipeline import STATISTICS_DB, Pipeline, wait_for
from intelmq_nsm.testbed.rabbitmq import INTELMQCTL_MANAGEMENT_PORT, port_is_free
from intelmq_nsm.testbed.spools import spool_digests
from tests.e2e.test_nsm_ibd_example import CONTACTS, EXPECTED_DEFAULT
from tests.e2e.test_nsm_ibd_example import EXPECTED_DEMO as EXPECTED
from tests.harness import HarnessPipeline, csv_attachment

# Run after the parallel part of the test command, in one process (see scripts/test).
pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq]

EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"


@pytest.fixture(scope="module")
def amqp_demo(rabbitmq_server, tmp_path_factory):
    """The example run as ``intelmq-nsm demo --broker amqp`` runs it, on the session's RabbitMQ."""
    workdir = tmp_path_factory.mktemp("amqp-demo")
    demo = Demo(
        EXAMPLE,
        workdir / "run",
        progress=lambda message: None,
        timeout=240,
        broker="amqp",
        rabbitmq=rabbitmq_server,
        charts=workdir / "charts",
        pipeline_class=HarnessPipeline,
    )
    summary = demo.run()
    return demo, summary


def test_the_chain_runs_on_amqp_with_every_address_on_loopback(amqp_demo, rabbitmq_server):
    demo, _ = amqp_demo
    settings = yaml.safe_load((demo.workdir / "intelmq" / "etc" / "runtime.yaml").read_text())["global"]
    assert settings["source_pipeline_broker"] == settings["destination_pipeline_broker"] == "amqp"
    hosts = {settings[k] for k in ("source_pipeline_host", "destination_pipeline_host", "statistics_host")}
    assert hosts == {"127.0.0.1"}
    assert settings["source_pipeline_port"] == settings["destination_pipeline_port"] == rabbitmq_server.port
    listening = rabbitmq_server.listening_addresses()
    assert listening and all(a.startswith(("127.0.0.1:", "[::1]:")) for a in listening), listening


def test_every_digest_on_amqp_holds_exactly_its_organisations_findings(amqp_demo):
    _, summary = amqp_demo
    delivered = {(row["organisation"], row["constituency"]): set(row["findings"]) for row in summary.rows}
    assert delivered == EXPECTED
    assert set(summary.default_findings) == EXPECTED_DEFAULT
    assert all(row["failed"] == [] for row in summary.rows)
    assert summary.dumped == {}


def test_named_paths_with_two_queues_reach_both_outputs_on_amqp(amqp_demo):
    """The expert's ``ibd`` path has two queues (mail and archive): both get every digest."""
    demo, summary = amqp_demo
    for row in summary.rows:
        expected = {"file", "smtp"} if row["constituency"] == "ibd" else {"file"}
        assert set(row["channels"]) == expected, row
    spool = demo.workdir / "var" / "lib" / "bots" / "ibd-digest-mail" / "spool.sqlite"
    digests = {digest.id: digest for _, digest in spool_digests(spool)}
    assert len(demo.chain.sink.messages) == len(digests)
    # Round one (the demo's rescan round and its answers come after it): one mail per
    # municipality of the ibd path, each with exactly its findings.
    first_round = {d for row in summary.rows for d in row["digests"]}
    mails = [(r, m) for _, r, m in demo.chain.sink.messages if m["X-NSM-Digest-Id"] in first_round]
    assert len(mails) == len([r for r in summary.rows if r["constituency"] == "ibd"])
    for recipients, message in mails:
        digest = digests[message["X-NSM-Digest-Id"]]
        organisation = digest.organisation["id"]
        if organisation in CONTACTS:
            assert recipients == [CONTACTS[organisation]]
        rows = list(csv.DictReader(io.StringIO(csv_attachment(message))))
        assert {finding_address(row) for row in rows} == EXPECTED[(organisation, "ibd")]


def test_no_bot_logged_an_error_on_amqp(amqp_demo):
    demo, _ = amqp_demo
    assert demo.chain.pipeline.log_lines(level="ERROR") == []


# -- what IntelMQ 3.5's AMQP pipeline does for these bots, one behaviour per test ----------


def file_chain(tmp_path, redis_server, broker) -> HarnessPipeline:
    """Parser → file output on the given broker: small enough to watch one message."""
    runtime = {
        "nsm-report-parser": {
            "module": "intelmq.bots.parsers.nsm.report",
            "parameters": {"destination_queues": {"_default": ["file-output-queue"]}},
        },
        "file-output": {
            "module": "intelmq.bots.outputs.file.output",
            "parameters": {"file": str(tmp_path / "events.jsonl"), "hierarchical_output": False},
        },
    }
    return HarnessPipeline(tmp_path / "intelmq", redis_server, runtime, broker=broker).setup()


def report_message(findings: int, number: int = 1) -> dict:
    import base64

    report = {
        "schema": "nsm-report/1",
        "case": {"id": f"AMQP-2026-{number:05d}", "title": "AMQP test", "severity": "high"},
        "reporter": {"organisation": "DIVD"},
        "findings": [
            {"ip": f"2001:db8:a:{number:x}::{i + 1:x}", "port": 443, "observed": "2026-11-01T12:00:00Z"}
            for i in range(findings)
        ],
    }
    raw = base64.b64encode(json.dumps(report).encode()).decode()
    return {"__type": "Report", "raw": raw, "feed.name": "AMQP test", "time.observation": "2026-11-01T12:00:00+00:00"}


def test_statistics_stay_on_redis_when_messages_cross_rabbitmq(tmp_path, redis_server, amqp_broker):
    """IntelMQ's AMQP pipeline keeps statistics in Redis: each bot's counters appear there."""
    pipeline = file_chain(tmp_path, redis_server, amqp_broker)
    try:
        pipeline.start()
        pipeline.push("nsm-report-parser", report_message(5))
        events = pipeline.wait_for_file_output(tmp_path / "events.jsonl", 5)
        pipeline.wait_drained(settle=1.0)
        stats = redis.Redis(port=redis_server.port, db=STATISTICS_DB, decode_responses=True)
        # Bots flush their counters every 2 s and at stop.
        pipeline.stop()
        # "success" counts turns of the bot's main loop, not messages; path totals count messages.
        assert int(stats.get("nsm-report-parser.stats.success")) >= 1
        assert stats.get("nsm-report-parser.total._default") == "5"
        assert int(stats.get("file-output.stats.success")) >= 5
        assert stats.get("file-output.stats.failure") == "0"
        events = Pipeline.read_file_output(tmp_path / "events.jsonl")
    finally:
        pipeline.close()
    assert len(events) == 5
    # On RabbitMQ no message waits in an ``-internal`` list: nothing of the kind in Redis.
    assert list(redis_server.client().scan_iter(match="*-queue*")) == []


def test_a_sigkilled_bot_loses_no_message_on_amqp(tmp_path, redis_server, amqp_broker):
    """An unacknowledged message goes back to its queue when its consumer dies."""
    pipeline = file_chain(tmp_path, redis_server, amqp_broker)
    try:
        pipeline.start("nsm-report-parser")
        # The output is not running: events wait in its queue; then it starts, is killed
        # while it works through them, and starts again.
        pipeline.push("nsm-report-parser", *[report_message(100, number=n) for n in range(1, 4)])
        wait_for(lambda: pipeline.queue_sizes().get("file-output-queue", 0) >= 300, timeout=120, what="300 events")
        pipeline.start("file-output")
        wait_for(lambda: len(Pipeline.read_file_output(tmp_path / "events.jsonl")) >= 30, timeout=60, what="30")
        pipeline.kill("file-output")
        wait_for(lambda: pipeline.status("file-output") != "running", timeout=30, what="the output to die")
        pipeline.start("file-output")
        pipeline.wait_drained(timeout=120, settle=1.5)
        events = Pipeline.read_file_output(tmp_path / "events.jsonl")
    finally:
        pipeline.close()
    addresses = [e["source.ip"] for e in events]
    # 300 distinct findings, none lost; at-least-once: a kill between write and
    # acknowledgement may repeat the one message in hand (the digest output's spool
    # ignores such repeats; the core file output writes them).
    assert len(set(addresses)) == 300
    assert len(addresses) - len(set(addresses)) <= 1


def test_intelmqctl_lists_amqp_queue_counts_from_the_management_port(tmp_path, redis_server, amqp_broker):
    """``intelmqctl list queues`` reads counts over the management API at port 15672 of the
    pipeline host, fixed in IntelMQ 3.5's code: only a RabbitMQ with its management API on
    that port can be inspected with intelmqctl."""
    if amqp_broker.management_port != INTELMQCTL_MANAGEMENT_PORT:
        pytest.skip("Port 15672 was taken on this machine when the private RabbitMQ started.")
    pipeline = file_chain(tmp_path, redis_server, amqp_broker)
    pipeline.push("file-output", *[{"__type": "Event", "source.ip": f"192.0.2.{i}"} for i in range(1, 4)])

    def listed():
        queues = pipeline.ctl_json("list", "queues")
        return queues.get("file-output", {}).get("source_queue") == ["file-output-queue", 3] and queues

    queues = wait_for(listed, timeout=15, interval=0.5, what="intelmqctl to count 3 messages")
    assert queues["nsm-report-parser"]["source_queue"] == ["nsm-report-parser-queue", 0]
    # intelmqctl check reads the same counts: a queue no bot reads is reported.
    amqp_broker.publish("orphan-queue", '{"__type": "Event"}')
    wait_for(
        lambda: any("orphan-queue" in m for _, m in pipeline.check()["lines"]),
        timeout=15,
        interval=0.5,
        what="intelmqctl check to report the orphaned queue",
    )
    # intelmqctl clear deletes an AMQP queue (the Redis broker empties it); the next bot to
    # use it declares it again.
    assert pipeline.ctl("clear", "file-output-queue").returncode == 0
    wait_for(lambda: "file-output-queue" not in amqp_broker.queue_sizes(), timeout=10, what="the queue to go")
    pipeline.push("file-output", {"__type": "Event", "source.ip": "192.0.2.9"})
    pipeline.start("file-output")
    try:
        events = pipeline.wait_for_file_output(tmp_path / "events.jsonl", 1)
    finally:
        pipeline.close()
    assert [e["source.ip"] for e in events] == ["192.0.2.9"]


def test_the_harness_stops_rabbitmq_and_its_epmd_by_pid(tmp_path, redis_server):
    """A server of its own: after stop no process of it is left, epmd included.

    Its management API is not on port 15672, where intelmqctl looks for queue counts:
    ``intelmqctl check`` then reports that it cannot reach the pipeline (the demo, whose
    RabbitMQ takes 15672 where it is free, ignores that one line where it is not).
    """
    from intelmq_nsm.testbed.rabbitmq import RabbitMQServer, process_alive

    server = RabbitMQServer(intelmqctl_port=False).start()
    try:
        pids = server._group_pids()
        listening = server.listening_addresses()
        broker = server.vhost("check")
        pipeline = file_chain(tmp_path, redis_server, broker)
        broker.publish("orphan-queue", '{"__type": "Event"}')  # a queue no bot reads
        check = pipeline.check()
    finally:
        started = time.monotonic()
        server.stop()
    assert len(pids) >= 2  # the Erlang VM and epmd at least
    assert listening and all(a.startswith(("127.0.0.1:", "[::1]:")) for a in listening), listening
    assert time.monotonic() - started < 60
    assert [pid for pid in pids if process_alive(pid)] == []
    assert server.management_port != INTELMQCTL_MANAGEMENT_PORT
    # intelmqctl asks port 15672 for this server's queues: there is nothing (an error) or
    # another RabbitMQ (this test session's), which has no such virtual host; either way
    # it does not see the orphaned queue that it reports on a server it can read.
    assert not any("orphan-queue" in message for _, message in check["lines"]), check
    if not port_is_free(INTELMQCTL_MANAGEMENT_PORT):
        return
    errors = [message for level, message in check["lines"] if level == "error"]
    assert any("Could not connect to pipeline" in m and "port=15672" in m for m in errors), check
