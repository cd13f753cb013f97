"""An example chain running: an example configuration (runtime.yaml, registry, token file,
sample reports) on a private Redis (or RabbitMQ) and IntelMQ root, with an SMTP sink for its
mail outputs and a fresh signing key for its outputs that sign, fed over HTTP and waited for
until nothing waits anywhere.

The demo runs ``runtime-examples/nsm-ibd`` on it; the end-to-end tests and
``benchmarks/chain.py`` run that example (or a synthetic one shaped like it) with their
own changes to the runtime: more bot ids, another output, a slow receiver, a kill.
"""

import contextlib
from pathlib import Path
from typing import Callable, Optional

import yaml

from intelmq_nsm.testbed.client import IntakeClient
from intelmq_nsm.testbed.layout import (
    bots_of,
    drop_feed_file,
    example_feeds,
    feed_folders,
    install_example_files,
    install_feed_files,
    localise_runtime,
)
from intelmq_nsm.testbed.pipeline import LOOPBACK, ExternalRedis, Pipeline, RedisServer, free_port, wait_for
from intelmq_nsm.testbed.rabbitmq import INTELMQCTL_MANAGEMENT_PORT, RabbitMQServer
from intelmq_nsm.testbed.signing import make_signing_keys
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from intelmq_nsm.testbed.spools import spool_digests

DIGEST_MODULE = "intelmq.bots.outputs.nsm.digest"
INTAKE_MODULE = "intelmq.bots.collectors.nsm.intake"
FILE_OUTPUT_MODULE = "intelmq.bots.outputs.file.output"
FORWARD_RECORD_MODULE = "intelmq.bots.outputs.nsm.forward_record"
#: The bots that write a finding ledger, each with the parameter that names its SQLite
#: file when no ``ledger_url`` is set.
LEDGER_FILES = {DIGEST_MODULE: "spool_file", FORWARD_RECORD_MODULE: "ledger_file"}
#: The example's researcher token; the example's token file holds only its salted hash.
TOKEN_FILE = "demo-token.txt"  # noqa: S105 (a file name, not a secret)
#: Digests go out after a few seconds, not after the example's hour; file collectors look
#: for reports every second, not every five minutes.
PACE = {"max_age": 3, "delivery_interval": 0.5, "rate_limit": 1}
#: Report files among an example's ``reports/`` (``NAME.case.json`` is a CSV's case
#: metadata, ``answers.json`` the owners' answers of a rescan).
REPORT_SUFFIXES = (".json", ".jsonl", ".csv")
NOT_REPORTS = (".case.json", "answers.json")


def example_reports(example: Path, folder: str = "") -> list:
    """The sample reports of ``example`` (of its rescan: ``folder="rescan"``), sorted."""
    reports = (Path(example) / "reports" / folder).glob("*")
    return sorted(p for p in reports if p.suffix in REPORT_SUFFIXES and not p.name.endswith(NOT_REPORTS))


def ledger_of(bot_id: str, bot: dict) -> Optional[tuple]:
    """``(URL, name)`` of the finding ledger a runtime's bot writes, as the bot opens it
    (the URL None when the runtime leaves the bot its default file); None for a bot that
    writes no ledger."""
    from intelmq_nsm.digest.ledger import sqlite_url

    parameter = LEDGER_FILES.get(bot.get("module"))
    if parameter is None:
        return None
    parameters = bot.get("parameters", {})
    url = parameters.get("ledger_url") or (sqlite_url(parameters[parameter]) if parameters.get(parameter) else None)
    return url, parameters.get("ledger_name") or bot_id


def settled(queue_sizes: dict, intake_spools=(), digest_spools=(), feed_folders=()) -> bool:
    """Nothing waits anywhere: no message in a queue (``queue_sizes``), no report in an
    intake's spool or a file collector's folder, no finding or digest undelivered in a
    digest spool."""
    from intelmq_nsm.digest.spool import DigestSpool
    from intelmq_nsm.intake.spool import SubmissionSpool

    if any(queue_sizes.values()):
        return False
    if any(any(Path(folder).glob("*.csv")) for folder in feed_folders):
        return False
    for path in map(Path, intake_spools):
        if path.exists():
            spool = SubmissionSpool(path)
            try:
                if spool.pending_count():
                    return False
            finally:
                spool.close()
    for path in map(Path, digest_spools):
        if not path.exists():
            continue
        spool = DigestSpool(path)
        try:
            counts = spool.counts()
        finally:
            spool.close()
        if counts["waiting_findings"] or counts["pending"] or counts["attempting"]:
            return False
    return True


def wait_settled(settled: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``settled()`` says so twice in a row, a second apart: a message may still
    be crossing a bot the first time."""
    last = [False]

    def settled_twice():
        now = settled()
        both, last[0] = now and last[0], now
        return both

    wait_for(settled_twice, timeout=timeout, interval=1.0, what=what)


class ExampleChain:
    """One example configuration running on private servers; ``close()`` stops what it started.

    ``redis_url``: use that Redis instead of a private redis-server. ``broker="amqp"``:
    messages cross a RabbitMQ (``rabbitmq``, a running RabbitMQServer that stays running,
    else a private one started here), statistics stay on Redis. ``pipeline_class``: the
    Pipeline (the tests give theirs); ``pace``: the digest outputs' parameters that make
    them deliver soon; ``sink_factory``: makes the SMTP sink (a slow one, for instance).
    """

    def __init__(
        self,
        example: Path,
        workdir: Path,
        *,
        redis_url: Optional[str] = None,
        broker: str = "redis",
        rabbitmq=None,
        pipeline_class=Pipeline,
        pace: Optional[dict] = None,
        sink_factory: Callable[[], SmtpSink] = SmtpSink,
        progress: Callable[[str], None] = lambda message: None,
        timeout: float = 300.0,
    ):
        if broker not in ("redis", "amqp"):
            raise ValueError(f"Unknown broker {broker!r}: redis or amqp.")
        self.example = Path(example)
        self.workdir = Path(workdir)
        self.redis_url = redis_url
        self.broker = broker
        self.rabbitmq = rabbitmq
        self.pipeline_class = pipeline_class
        self.pace = PACE if pace is None else pace
        self.sink_factory = sink_factory
        self.progress = progress
        self.timeout = timeout
        self.redis = None
        self.sink = None
        self.pipeline = None
        self.intake = None  # the IntakeClient of the researcher, once started
        self.feed_folders = []  # where the file collectors look for a feed's reports, once started
        self.signing_keys = []  # the fresh keys of the outputs that sign (SigningKey)
        self._own_rabbitmq = False

    # -- the example -------------------------------------------------------------------

    def runtime(self) -> dict:
        """The example's runtime.yaml, as written."""
        return yaml.safe_load((self.example / "runtime.yaml").read_text(encoding="utf-8"))

    def reports(self, folder: str = "") -> list:
        return example_reports(self.example, folder)

    def feeds(self, folder: str = "") -> list:
        """The example's feed reports (its second source: files a file collector picks up)."""
        return example_feeds(self.example, folder)

    def token(self) -> str:
        """The researcher's token; empty for an example without an intake (a CERT's instance)."""
        path = self.example / TOKEN_FILE
        return path.read_text(encoding="utf-8").strip() if path.exists() else ""

    # -- start -------------------------------------------------------------------------

    def start(
        self,
        runtime: dict,
        check: bool = True,
        before: Optional[Callable[[dict], None]] = None,
        prepare: Optional[Callable[[Pipeline], None]] = None,
    ) -> None:
        """Redis, the SMTP sink and the example's bots, running on the private IntelMQ root.

        ``check``: refuse to start when ``intelmqctl check`` reports an error or warning.
        ``before``: called with the localised runtime before the pipeline is laid out (the
        demo puts its feedback service's address into the mail output's parameters there).
        ``prepare``: called with the pipeline laid out, before it is checked and started (a
        hub takes its CERTs' claims there, as an operator does before the first start).
        """
        from intelmq_nsm.testbed.pipeline import HarnessError, redis_server_binary

        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.redis_url:
            self.progress(f"Using the Redis at {self.redis_url}.")
            self.redis = ExternalRedis(self.redis_url).start()
        else:
            self.progress(f"Starting a private redis-server ({redis_server_binary()}).")
            self.redis = RedisServer(self.workdir / "redis").start()
        self.sink = self.sink_factory().start()
        self.progress(f"Started an SMTP sink on {LOOPBACK}:{self.sink.port} for the IBD's mail.")

        intake_port = free_port()
        self.intake = IntakeClient(intake_port, self.token())
        overrides = {"http_port": intake_port, "smtp_port": self.sink.port, **self.pace}
        runtime = localise_runtime(runtime, self.workdir, overrides)
        install_example_files(self.example, self.workdir)
        self.feed_folders = feed_folders(runtime)
        self.signing_keys = make_signing_keys(runtime, self.workdir)
        for key in self.signing_keys:
            self.progress(
                f"Made a fresh signing key {key.fingerprint} in {key.home} for {', '.join(key.bot_ids)}"
                + (f" (its passphrase in {key.passphrase_file})." if key.passphrase_file else ".")
            )
        if before is not None:
            before(runtime)
        self.pipeline = self.pipeline_class(
            self.workdir / "intelmq", self.redis, runtime, broker=self._amqp_broker()
        ).setup()
        install_feed_files(self.example, runtime, self.pipeline.root)
        if prepare is not None:
            prepare(self.pipeline)
        problems = [line for line in self.pipeline.check()["lines"] if line[0] in ("error", "warning")] if check else []
        if self.broker == "amqp" and self.rabbitmq.management_port != INTELMQCTL_MANAGEMENT_PORT:
            # intelmqctl check reads AMQP queue counts from port 15672 of the pipeline host
            # only (fixed in IntelMQ 3.5); another RabbitMQ holds it here, so that part fails.
            problems = [line for line in problems if f"port={INTELMQCTL_MANAGEMENT_PORT}" not in line[1]]
        if problems:
            raise HarnessError("intelmqctl check found problems: " + "; ".join(m for _, m in problems))
        bots = self.pipeline.bot_ids
        self.progress(f"Starting {len(bots)} bots with intelmqctl: {', '.join(bots)}.")
        self.pipeline.start()

    def _amqp_broker(self):
        """The RabbitMQ virtual host the pipeline uses with ``broker="amqp"``, else None."""
        if self.broker != "amqp":
            return None
        if self.rabbitmq is None:
            self.progress("Starting a private RabbitMQ (/usr/lib/rabbitmq/bin/rabbitmq-server).")
            self._own_rabbitmq = True
            self.rabbitmq = RabbitMQServer().start()
        vhost = f"nsm-demo-{self.workdir.name}"
        self.progress(f"Messages go through RabbitMQ on {LOOPBACK}:{self.rabbitmq.port}, virtual host {vhost}.")
        return self.rabbitmq.vhost(vhost)

    # -- feed and wait -----------------------------------------------------------------

    def submit(self, report: Path) -> tuple:
        """POST one report to the intake as the example's researcher; ``(status, submission id)``."""
        return self.intake.submit(report)

    def deliver_feed(self, report: Path) -> Path:
        """Put one feed report into the (first) file collector's folder, as the feed's
        delivery would; the collector picks it up within its ``rate_limit``."""
        if not self.feed_folders:
            raise ValueError("The example has no file collector to deliver a feed's report to.")
        return drop_feed_file(report, self.feed_folders[0])

    def bots(self, module: str) -> dict:
        """``{bot id: bot}`` of the running runtime's bots of ``module``."""
        return {b: self.pipeline.runtime[b] for b in bots_of(self.pipeline.runtime, module)}

    def spool_files(self, module: str) -> list:
        return [Path(bot["parameters"]["spool_file"]) for bot in self.bots(module).values()]

    def settled(self) -> bool:
        """Nothing waits anywhere: no report in the intake's spool, no message in a queue,
        no finding or digest undelivered in a digest spool."""
        return settled(
            self.pipeline.queue_sizes(),
            self.spool_files(INTAKE_MODULE),
            self.spool_files(DIGEST_MODULE),
            self.feed_folders,
        )

    def wait_until_delivered(self) -> None:
        wait_settled(self.settled, self.timeout, "all digests to be delivered")

    def set_clock(self, offset: float) -> None:
        """Restart the digest outputs with their clock ``offset`` seconds ahead."""
        bots = list(self.bots(DIGEST_MODULE))
        for bot_id in bots:
            self.pipeline.runtime[bot_id]["parameters"]["clock_offset"] = offset
        self.pipeline.write_runtime()
        self.pipeline.stop(*bots)
        self.pipeline.start(*bots)

    # -- read --------------------------------------------------------------------------

    def digests(self):
        """``(state, Digest)`` of every digest in every digest output's spool."""
        for path in self.spool_files(DIGEST_MODULE):
            yield from spool_digests(path)

    def ledgers(self):
        """``(bot id, Ledger)`` of every digest output (each in its spool file, named by bot id)."""
        for bot_id in self.bots(DIGEST_MODULE):
            yield bot_id, self.ledger(bot_id)

    def ledger(self, bot_id: str):
        """The finding ledger the running runtime's bot ``bot_id`` writes (a digest or
        forward-record output), opened as the bot opens it; the caller closes it."""
        from intelmq_nsm.digest.ledger import Ledger

        url, name = ledger_of(bot_id, self.pipeline.runtime[bot_id])
        return Ledger(url, name=name)

    # -- stop --------------------------------------------------------------------------

    def close(self) -> None:
        if self.pipeline:
            self.progress("Stopping the bots.")
            with contextlib.suppress(Exception):
                self.pipeline.close()
        for key in self.signing_keys:
            key.close()
        if self.sink:
            self.sink.stop()
        if self.redis:
            self.redis.stop()
        if self.rabbitmq is not None and self._own_rabbitmq:
            self.rabbitmq.stop()
