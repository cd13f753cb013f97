"""Two IntelMQ hosts on one RabbitMQ: runtime-examples/two-hosts as it is, intake and parser on
one IntelMQ root, deduplicator, expert and outputs on another, each with its own process
manager, Redis (statistics, cache) and files; shared are the broker's virtual host and the
finding ledger on one PostgreSQL (the digest outputs' ``ledger_url``)."""

from pathlib import Path

import pytest
import yaml

from intelmq_nsm.demo.summary import event_finding, finding_address
from intelmq_nsm.testbed.chain import DIGEST_MODULE, INTAKE_MODULE, PACE, TOKEN_FILE, example_reports, settled
from intelmq_nsm.testbed.client import IntakeClient
from intelmq_nsm.testbed.layout import (
    SHADOWSERVER_SCHEMA,
    bots_of,
    install_example_files,
    install_feed_files,
    localise_runtime,
)
from intelmq_nsm.testbed.pipeline import Pipeline, RedisServer, free_port, wait_for
from intelmq_nsm.testbed.signing import make_signing_keys
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from intelmq_nsm.testbed.spools import spool_digests
from tests.e2e.test_nsm_ibd_example import EXPECTED, EXPECTED_DEFAULT
from tests.harness import HarnessPipeline

# Run after the parallel part of the test command, in one process (see scripts/test).
pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "runtime-examples" / "nsm-ibd"
TWO_HOSTS = ROOT / "runtime-examples" / "two-hosts"


class Host:
    """One IntelMQ host of the layout: its runtime file, folder, Redis and pipeline."""

    def __init__(self, name: str, workdir: Path, broker, overrides: dict, ledger_url=None):
        self.name = name
        self.workdir = workdir
        runtime = yaml.safe_load((TWO_HOSTS / name / "runtime.yaml").read_text(encoding="utf-8"))
        self.runtime = localise_runtime(runtime, workdir, overrides)
        if ledger_url:
            for bot_id in bots_of(self.runtime, DIGEST_MODULE):
                self.runtime[bot_id]["parameters"]["ledger_url"] = ledger_url
        install_example_files(EXAMPLE, workdir)
        # The routing host's mail output signs: a fresh key in its GnuPG home, as the demo makes.
        self.signing_keys = make_signing_keys(self.runtime, workdir)
        self.redis = RedisServer(workdir / "redis").start()
        self.pipeline = HarnessPipeline(workdir / "intelmq", self.redis, self.runtime, broker=broker).setup()
        install_feed_files(EXAMPLE, self.runtime, self.pipeline.root)

    def spools(self, module: str = DIGEST_MODULE):
        runtime = self.pipeline.runtime
        return {b: Path(runtime[b]["parameters"]["spool_file"]) for b in bots_of(runtime, module)}

    def close(self):
        self.pipeline.close()
        self.redis.stop()
        for key in self.signing_keys:
            key.close()


def test_the_example_split_over_two_hosts_delivers_every_digest(tmp_path, amqp_broker, postgres_server):
    ledger_url = postgres_server.create_database("two_hosts_ledger")
    sink = SmtpSink().start()
    intake_port = free_port()
    overrides = {"http_port": intake_port, "smtp_port": sink.port, **PACE}
    hosts = []
    try:
        intake = Host("intake-host", tmp_path / "intake-host", amqp_broker, overrides)
        hosts.append(intake)
        routing = Host("routing-host", tmp_path / "routing-host", amqp_broker, overrides, ledger_url)
        hosts.append(routing)
        assert set(intake.pipeline.bot_ids) == {
            "nsm-intake", "nsm-report-parser", "shadowserver-collector", "shadowserver-parser"
        }  # fmt: skip
        assert set(routing.pipeline.bot_ids).isdisjoint(intake.pipeline.bot_ids)
        for host in hosts:
            check = host.pipeline.check()
            assert [line for line in check["lines"] if line[0] == "error"] == [], host.name
        routing.pipeline.start()
        intake.pipeline.start()

        # The researcher's side is the intake host: the test bed's client posts as the demo does.
        client = IntakeClient(intake_port, (EXAMPLE / TOKEN_FILE).read_text(encoding="utf-8").strip())
        for report in example_reports(EXAMPLE):
            assert client.submit(report)[0] == 202

        def delivered_some(path: Path) -> bool:
            from intelmq_nsm.digest.spool import DigestSpool

            spool = DigestSpool(path)
            try:
                return bool(spool.counts().get("delivered", 1))
            finally:
                spool.close()

        def all_settled():
            return settled(
                amqp_broker.queue_sizes(), intake.spools(INTAKE_MODULE).values(), routing.spools().values()
            ) and all(path.exists() and delivered_some(path) for path in routing.spools().values())

        unclaimed = Path(routing.pipeline.runtime["unclaimed-file-output"]["parameters"]["file"])
        wait_for(
            lambda: len(Pipeline.read_file_output(unclaimed)) >= len(EXPECTED_DEFAULT) and all_settled(),
            timeout=180,
            interval=1.0,
            what="every digest delivered on the routing host",
        )
        wait_for(all_settled, timeout=30, interval=1.0, what="settled once more")

        delivered = {}
        for bot_id, path in routing.spools().items():
            for state, digest in spool_digests(path):
                assert state == "delivered", (bot_id, digest.id, digest.last_error)
                key = (digest.organisation["id"], digest.constituency)
                delivered.setdefault(key, set()).update(finding_address(f) for f in digest.findings)
        default = {finding_address(event_finding(e)) for e in Pipeline.read_file_output(unclaimed)}
        dumps = {host.name: host.pipeline.dumps() for host in hosts}
        errors = {host.name: host.pipeline.log_lines(level="ERROR") for host in hosts}
        # Each host's own files: the intake host holds no digest, the routing host no intake spool.
        intake_files = {p.name for p in (intake.workdir / "var" / "lib" / "bots").iterdir()}
        routing_files = {p.name for p in (routing.workdir / "var" / "lib" / "bots").iterdir()}
        mails = len(sink.messages)
        # Counted in the ledger right after each delivery: wait for the last count too.
        expected_orgs = {org for org, _ in EXPECTED}
        wait_for(
            lambda: {org for _, org, state in shared_ledger(ledger_url) if state == "notified"} >= expected_orgs,
            timeout=30,
            interval=1.0,
            what="the shared ledger to count every delivered digest",
        )
        ledgered = shared_ledger(ledger_url)
    finally:
        for host in reversed(hosts):
            host.close()
        sink.stop()

    assert delivered == EXPECTED
    assert default == EXPECTED_DEFAULT
    assert mails == len([key for key in EXPECTED if key[1] == "ibd"])
    assert dumps == {"intake-host": {}, "routing-host": {}}
    assert errors == {"intake-host": [], "routing-host": []}
    # The intake's and the feed collector's state, the intake's case book (with SQLite's
    # journal files while it is open); the Shadowserver parser's schema is in IntelMQ's own
    # state folder of the host.
    assert {n for n in intake_files if not n.startswith("nsm-cases.sqlite")} == {"nsm-intake", "shadowserver-collector"}
    assert "nsm-cases.sqlite" in intake_files
    assert (intake.pipeline.root / "var" / "lib" / "bots" / SHADOWSERVER_SCHEMA).is_file()
    # The outputs keep their findings' lives in the one PostgreSQL ledger both hosts may reach.
    assert ledgered and {state for _, _, state in ledgered} == {"notified"}
    assert {org for _, org, _ in ledgered} == {org for org, _ in EXPECTED}
    assert "nsm-intake" not in routing_files and "ibd-digest-mail" in routing_files


def test_the_two_host_runtimes_are_the_example_split_in_two():
    """The two-host files hold the example's bots, each once, with the same parameters."""
    example = yaml.safe_load((EXAMPLE / "runtime.yaml").read_text(encoding="utf-8"))
    parts = {h: yaml.safe_load((TWO_HOSTS / h / "runtime.yaml").read_text()) for h in ("intake-host", "routing-host")}
    bots = {b: bot for part in parts.values() for b, bot in part.items() if b != "global"}
    assert sorted(bots) == sorted(b for b in example if b != "global")
    assert all(bots[b] == example[b] for b in bots)
    for part in parts.values():
        settings = part["global"]
        assert settings["source_pipeline_broker"] == settings["destination_pipeline_broker"] == "amqp"
        # Set on every host: left out, intelmqctl's AMQP code uses an address of its own.
        assert settings["source_pipeline_host"] == settings["destination_pipeline_host"]
        assert settings["source_pipeline_amqp_virtual_host"] == "nsm"
    assert parts["intake-host"]["global"] == parts["routing-host"]["global"]


def shared_ledger(url: str) -> set:
    """``(ledger name, organisation, state)`` of every finding in the PostgreSQL ledger."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT ledger, org_id, state FROM ledger_findings")).fetchall()
    finally:
        engine.dispose()
    return {tuple(row) for row in rows}
