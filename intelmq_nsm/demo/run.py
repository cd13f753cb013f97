"""The example NSM→IBD pipeline, end to end, on a private Redis and IntelMQ root.

``intelmq-nsm demo`` takes ``runtime-examples/nsm-ibd/`` as an operator would: its
runtime.yaml, registry, token file and sample reports. It points the example's paths and
ports at a private working directory (see ``localise_runtime``), starts the pipeline with
intelmqctl, submits the sample reports over HTTP as a researcher would, waits until every
finding is delivered in a digest or has left on the ``_default`` path, prints who got
what, and stops everything it started.

Round two is the researchers' rescan a week later (``reports/rescan/``): the digest
outputs' clock is moved on (their ``clock_offset`` parameter), an owner's answer from
``reports/rescan/answers.json`` is recorded in the ledgers as the feedback service will,
the rescan reports are submitted, and the summary shows what each organisation got in
round two (reminders, verified fixes, the reopened finding) and the cases' statistics.

At the end the owners answer through the real feedback service (the mail digests carry
its links): one answer of each kind, made on the owners' page; then the researcher's view
of each case (``GET /v1/cases/<id>`` on the intake, with their token) is printed and each
case's chart saved (see :mod:`intelmq_nsm.demo.feedback_round`).
"""

import collections
import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import yaml

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.pipeline import (
    LOOPBACK,
    VENV_BIN,
    ExternalRedis,
    HarnessError,
    Pipeline,
    RedisServer,
    free_port,
    redis_server_binary,
    wait_for,
)
from intelmq_nsm.demo.rabbitmq import INTELMQCTL_MANAGEMENT_PORT, RabbitMQServer, rabbitmq_available
from intelmq_nsm.demo.smtp_sink import SmtpSink
from intelmq_nsm.demo.spools import spool_digests
from intelmq_nsm.demo.summary import Summary
from intelmq_nsm.digest.event_findings import NOT_VULNERABLE
from intelmq_nsm.event_contract import RESULT

#: Where the example keeps its files in a standard IntelMQ installation; the demo moves
#: this prefix into its working directory.
INTELMQ_PREFIX = "/opt/intelmq/"
DIGEST_MODULE = "intelmq.bots.outputs.nsm.digest"
INTAKE_MODULE = "intelmq.bots.collectors.nsm.intake"
FILE_OUTPUT_MODULE = "intelmq.bots.outputs.file.output"
#: The demo's researcher token; the example token file holds only its salted hash.
DEMO_TOKEN_FILE = "demo-token.txt"  # noqa: S105 (a file name, not a secret)
#: Digests go out after a few seconds in the demo, not after the example's hour.
DEMO_PACE = {"max_age": 3, "delivery_interval": 0.5}
MEDIA_TYPES = {".json": "application/json", ".jsonl": "application/x-ndjson", ".csv": "text/csv"}
#: The example in a source checkout, and the copy an installed package ships (setup.py
#: packs runtime-examples/nsm-ibd as intelmq_nsm/demo/example).
CHECKOUT_EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"
PACKAGED_EXAMPLE = Path(__file__).resolve().parent / "example"


def default_example() -> Path:
    """The example the demo runs: the checkout's runtime-examples/nsm-ibd, else the packaged copy."""
    for folder in (CHECKOUT_EXAMPLE, PACKAGED_EXAMPLE):
        if (folder / "runtime.yaml").exists():
            return folder
    raise DemoError(
        f"No example pipeline in {CHECKOUT_EXAMPLE} or {PACKAGED_EXAMPLE}: "
        "give the example folder with --example (runtime-examples/nsm-ibd of the source)."
    )


DAY = 86400
#: Round two plays a week and a day after round one: past the outputs' default reminder_after.
ROUND_TWO_CLOCK = 8 * DAY
RESCAN_FOLDER = "rescan"
ANSWERS_FILE = "answers.json"


def localise_runtime(runtime: dict, workdir: Path, overrides: dict) -> dict:
    """The example runtime with its paths moved under ``workdir`` and some parameters set.

    Every string parameter that starts with ``/opt/intelmq/`` moves to ``workdir/``; the
    parameters named in ``overrides`` (ports, and the digests' ``max_age`` so that the demo
    does not wait an hour) get the given values wherever a bot has them, and
    ``smtp_host`` becomes the loopback address. Nothing else changes.
    """
    runtime = json.loads(json.dumps(runtime))

    def move(value):
        if isinstance(value, str) and value.startswith(INTELMQ_PREFIX):
            return str(workdir / value[len(INTELMQ_PREFIX) :])
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    for bot_id, bot in runtime.items():
        if bot_id == "global":
            continue
        parameters = bot.setdefault("parameters", {})
        for key, value in list(parameters.items()):
            parameters[key] = move(value)
        for key, value in overrides.items():
            if key in parameters:
                parameters[key] = value
        if "smtp_host" in parameters:
            parameters["smtp_host"] = LOOPBACK
    return runtime


def install_example_files(example: Path, workdir: Path) -> None:
    """Put the example's registry and token file where its localised runtime expects them."""
    target = workdir / "etc" / "nsm"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(example / "registry", target / "registry", dirs_exist_ok=True)
    shutil.copy2(example / "tokens.json", target / "tokens.json")


def finding_address(finding: dict) -> str:
    """What a person recognises a finding by: its URL, else host name, else address and port."""
    if finding.get("url"):
        return finding["url"]
    host = finding.get("fqdn") or finding.get("ip") or "?"
    if not finding.get("port"):
        return host
    return f"[{host}]:{finding['port']}" if ":" in host else f"{host}:{finding['port']}"


def event_finding(event: dict) -> dict:
    """The digest row fields of an IntelMQ event, for findings that left on _default."""
    return {
        "url": event.get("source.url"),
        "fqdn": event.get("source.fqdn"),
        "ip": event.get("source.ip"),
        "port": event.get("source.port"),
    }


class Demo:
    """One run of the example pipeline; ``run()`` returns the Summary."""

    #: The pipeline the demo lays out and starts (the tests give one with their helpers).
    pipeline_class = Pipeline

    def __init__(
        self,
        example: Path,
        workdir: Path,
        redis_url: Optional[str] = None,
        progress: Callable[[str], None] = print,
        timeout: float = 300.0,
        broker: str = "redis",
        rabbitmq=None,
    ):
        self.example = Path(example)
        self.workdir = Path(workdir)
        self.redis_url = redis_url
        self.progress = progress
        self.timeout = timeout
        self.redis = None
        self.sink = None
        self.pipeline = None
        self.intake_port = 0
        self.feedback = None  # the feedback service, serving the mail output's ledger
        self.feedback_output = None  # that output's bot id
        self.mails_before = []  # mails the sink had received in the rounds before
        self.default_seen = collections.Counter()  # events of the _default file outputs summarised
        # broker "amqp": messages cross a RabbitMQ (``rabbitmq``, a running RabbitMQServer
        # that stays running, else a private one started here), statistics stay on Redis.
        if broker not in ("redis", "amqp"):
            raise DemoError(f"Unknown broker {broker!r}: redis or amqp.")
        self.broker = broker
        self.rabbitmq = rabbitmq
        self._own_rabbitmq = False

    # -- preflight ---------------------------------------------------------------------

    def preflight(self) -> dict:
        """Check what the demo needs before starting anything; return the example runtime."""
        if not (VENV_BIN / "intelmqctl").exists():
            raise DemoError(f"intelmqctl is not in {VENV_BIN}: install intelmq-nsm (scripts/main does).")
        runtime_file = self.example / "runtime.yaml"
        if not runtime_file.exists():
            raise DemoError(f"No example runtime at {runtime_file}: give the example folder with --example.")
        if not (self.example / DEMO_TOKEN_FILE).exists():
            raise DemoError(f"The example has no researcher token ({self.example / DEMO_TOKEN_FILE}).")
        if not self.reports():
            raise DemoError(f"The example has no sample reports in {self.example / 'reports'}.")
        if not self.redis_url:
            try:
                redis_server_binary()
            except HarnessError as exc:
                raise DemoError(f"{exc} Or give a running Redis with --redis-url redis://host:port.") from exc
        if self.broker == "amqp" and self.rabbitmq is None and not rabbitmq_available():
            raise DemoError("--broker amqp needs Debian's rabbitmq-server (/usr/lib/rabbitmq/bin) installed.")
        return yaml.safe_load(runtime_file.read_text(encoding="utf-8"))

    def reports(self, folder: str = "") -> list:
        """The sample reports (of round two: ``folder="rescan"``); ``NAME.case.json`` beside a
        CSV holds its case metadata."""
        reports = (self.example / "reports" / folder).glob("*")
        return sorted(
            p for p in reports if p.suffix in MEDIA_TYPES and not p.name.endswith((".case.json", ANSWERS_FILE))
        )

    # -- run ---------------------------------------------------------------------------

    def run(self) -> Summary:
        """Start, submit every sample report, wait for delivery, summarise, stop."""
        runtime = self.preflight()
        try:
            self.start(runtime)
            summary = Summary()
            self.submit_all(self.reports(), summary.submitted)
            self.progress("Waiting until every finding is delivered.")
            self.wait_until_delivered()
            self.summarise(summary)
            rescans = self.reports(RESCAN_FOLDER)
            if rescans:
                summary.round_two = self.round_two(rescans)
            if self.feedback is not None:
                summary.feedback = self.feedback_round()
            return summary
        finally:
            self.close()

    def submit_all(self, reports: list, submitted: list) -> None:
        for report in reports:
            status, submission = self.submit(report)
            submitted.append((report.name, status, submission))
            self.progress(f"Submitted {report.name}: HTTP {status}, submission {submission}.")

    def round_two(self, rescans: list) -> Summary:
        """The rescan a week later: move the outputs' clock, record the owners' answers,
        submit the rescan reports, wait; what round two delivered, and the case statistics."""
        before = {digest.id for _, digest in self.all_digests()}
        self.progress(f"Round two: the researchers' rescan, {ROUND_TWO_CLOCK // DAY} days later on the outputs' clock.")
        self.set_clock(ROUND_TWO_CLOCK)
        summary = Summary(round_no=2)
        summary.answers = self.record_answers()
        for report in rescans:
            try:
                self.submit_all([report], summary.submitted)
            except DemoError as exc:
                # A rescan this installation's report format cannot take (e.g. without the
                # per-finding result): said, and round two goes on with the others.
                summary.refused.append(f"{report.name}: {exc}")
                self.progress(f"{exc} Round two goes on without it.")
        self.progress("Waiting until every finding of the rescan is delivered.")
        self.wait_until_delivered()
        self.summarise(summary, exclude=before)
        summary.cases = self.case_statistics()
        return summary

    def set_clock(self, offset: float) -> None:
        """Restart the digest outputs with their clock ``offset`` seconds ahead."""
        bots = list(self._bots(DIGEST_MODULE))
        for bot_id in bots:
            self.pipeline.runtime[bot_id]["parameters"]["clock_offset"] = offset
        self.pipeline.write_runtime()
        self.pipeline.stop(*bots)
        self.pipeline.start(*bots)

    def ledgers(self):
        """``(bot id, Ledger)`` of every digest output (each in its spool file, named by bot id)."""
        from intelmq_nsm.digest.ledger import Ledger, sqlite_url

        for bot_id, bot in self._bots(DIGEST_MODULE).items():
            parameters = bot["parameters"]
            url = parameters.get("ledger_url") or sqlite_url(parameters["spool_file"])
            yield bot_id, Ledger(url, name=parameters.get("ledger_name") or bot_id)

    def record_answers(self) -> list:
        """The owners' answers of ``reports/rescan/answers.json`` into every ledger holding the
        finding (``{"case", "target", "state", "note"}``, target as ``address:port``)."""
        path = self.example / "reports" / RESCAN_FOLDER / ANSWERS_FILE
        if not path.exists():
            return []
        answers = json.loads(path.read_text(encoding="utf-8"))["answers"]
        recorded = []
        for bot_id, ledger in self.ledgers():
            try:
                for answer in answers:
                    for record in ledger.records(case_id=answer["case"]):
                        if record["target"] == answer["target"]:
                            ledger.record_answer(
                                record["finding_id"], record["org_id"], answer["state"], "owner", answer["note"]
                            )
                            recorded.append({**answer, "organisation": record["org_id"], "output": bot_id})
            finally:
                ledger.close()
        for answer in {(a["organisation"], a["target"], a["state"], a["note"]) for a in recorded}:
            self.progress(f"{answer[0]} answered for {answer[1]}: {answer[2]} ({answer[3]})")
        return recorded

    def case_statistics(self) -> dict:
        """Per constituency (its first digest output's ledger): per case, findings by state."""
        from intelmq_nsm.digest.ledger.stats import case_counts

        result = {}
        for bot_id, ledger in self.ledgers():
            constituency = self.pipeline.runtime[bot_id]["parameters"].get("constituency") or bot_id
            try:
                if constituency not in result:
                    result[constituency] = {case or "-": counts for case, counts in case_counts(ledger).items()}
            finally:
                ledger.close()
        return result

    def feedback_round(self) -> dict:
        """One owner answer per kind through the feedback service; the researcher's view of each case."""
        import intelmq_nsm.demo.feedback_round as feedback_round
        from intelmq_nsm.digest.ledger import Ledger, sqlite_url

        self.progress("The owners answer on the feedback service's page, one answer of each kind.")
        parameters = self.pipeline.runtime[self.feedback_output]["parameters"]
        ledger = Ledger(sqlite_url(parameters["spool_file"]), name=self.feedback_output)
        try:
            answered = feedback_round.answer_once_per_kind(self.feedback, self.sink.messages, ledger, self.progress)
            case_ids = {r["case_id"] for r in ledger.records() if r["case_id"]}
        finally:
            ledger.close()
        for _, other in self.ledgers():
            try:
                case_ids |= {r["case_id"] for r in other.records() if r["case_id"]}
            finally:
                other.close()
        token = (self.example / DEMO_TOKEN_FILE).read_text(encoding="utf-8").strip()
        self.progress("The researcher asks the intake what became of each case (GET /v1/cases/<id>).")
        views, charts = feedback_round.researcher_view(self.intake_port, token, case_ids, self.workdir / "charts")
        return {"answers": answered, "cases": views, "charts": charts}

    def all_digests(self):
        for bot in self._bots(DIGEST_MODULE).values():
            yield from spool_digests(Path(bot["parameters"]["spool_file"]))

    def start(self, runtime: dict, check: bool = True) -> None:
        """Redis, the SMTP sink and the example's bots, running on the private IntelMQ root.

        ``check``: refuse to start when ``intelmqctl check`` reports an error or warning.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.redis_url:
            self.progress(f"Using the Redis at {self.redis_url}.")
            self.redis = ExternalRedis(self.redis_url).start()
        else:
            self.progress(f"Starting a private redis-server ({redis_server_binary()}).")
            self.redis = RedisServer(self.workdir / "redis").start()
        self.sink = SmtpSink().start()
        self.progress(f"Started an SMTP sink on {LOOPBACK}:{self.sink.port} for the IBD's mail.")

        self.intake_port = free_port()
        overrides = {"http_port": self.intake_port, "smtp_port": self.sink.port, **DEMO_PACE}
        runtime = localise_runtime(runtime, self.workdir, overrides)
        install_example_files(self.example, self.workdir)
        self.start_feedback(runtime)
        self.pipeline = self.pipeline_class(
            self.workdir / "intelmq", self.redis, runtime, broker=self._amqp_broker()
        ).setup()
        problems = [line for line in self.pipeline.check()["lines"] if line[0] in ("error", "warning")] if check else []
        if self.broker == "amqp" and self.rabbitmq.management_port != INTELMQCTL_MANAGEMENT_PORT:
            # intelmqctl check reads AMQP queue counts from port 15672 of the pipeline host
            # only (fixed in IntelMQ 3.5); another RabbitMQ holds it here, so that part fails.
            problems = [line for line in problems if f"port={INTELMQCTL_MANAGEMENT_PORT}" not in line[1]]
        if problems:
            raise DemoError("intelmqctl check found problems: " + "; ".join(m for _, m in problems))
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

    def start_feedback(self, runtime: dict) -> None:
        """The feedback service for the first mail digest output, whose digests then carry its links."""
        import intelmq_nsm.demo.feedback_round as feedback_round

        mail = [
            b for b, bot in runtime.items() if bot.get("module") == DIGEST_MODULE and "smtp_port" in bot["parameters"]
        ]
        if not mail:
            return
        self.feedback_output = mail[0]
        parameters = runtime[self.feedback_output]["parameters"]
        port = free_port()
        secret = self.workdir / "etc" / "nsm" / "feedback-secret"
        secret.parent.mkdir(parents=True, exist_ok=True)
        self.feedback = feedback_round.start_service(Path(parameters["spool_file"]), self.feedback_output, secret, port)
        parameters["feedback_base_url"] = f"http://{LOOPBACK}:{port}"
        parameters["feedback_secret_file"] = str(secret)
        self.progress(f"Started the feedback service on {LOOPBACK}:{port} for the digests of {self.feedback_output}.")

    def submit(self, report: Path):
        """POST one report to the intake as the example's researcher; ``(status, submission id)``."""
        import requests

        token = (self.example / DEMO_TOKEN_FILE).read_text(encoding="utf-8").strip()
        url = f"http://{LOOPBACK}:{self.intake_port}/v1/reports"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": MEDIA_TYPES[report.suffix]}
        params = {}
        case_file = report.with_suffix(".case.json")
        if case_file.exists():  # case metadata of a CSV report goes in the query
            params = json.loads(case_file.read_text(encoding="utf-8"))
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.post(url, data=report.read_bytes(), headers=headers, params=params, timeout=30)
            except requests.ConnectionError:
                answer = None  # the intake is (re)starting
            if answer is not None and answer.status_code != 429:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"The intake collector on {url} did not take {report.name} within 60 s.")
            # As a researcher's client should: wait as long as a 429's Retry-After says.
            time.sleep(float(answer.headers.get("Retry-After", 1)) if answer is not None else 0.2)
        body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
        if answer.status_code != 202:
            raise DemoError(f"The intake refused {report.name}: HTTP {answer.status_code} {body or answer.text}.")
        return answer.status_code, body.get("submission_id")

    def _bots(self, module: str) -> dict:
        return {b: bot for b, bot in self.pipeline.runtime.items() if b != "global" and bot["module"] == module}

    def _spooled_reports(self) -> int:
        """Reports the intake accepted but has not yet handed to the pipeline."""
        from intelmq_nsm.intake.spool import SubmissionSpool

        waiting = 0
        for bot in self._bots(INTAKE_MODULE).values():
            path = Path(bot["parameters"]["spool_file"])
            if path.exists():
                spool = SubmissionSpool(path)
                try:
                    waiting += spool.pending_count()
                finally:
                    spool.close()
        return waiting

    def settled(self) -> bool:
        """Nothing waits anywhere: no report in the intake's spool, no message in a queue,
        no finding or digest undelivered in a digest spool."""
        from intelmq_nsm.digest.spool import DigestSpool

        if self._spooled_reports() or any(self.pipeline.queue_sizes().values()):
            return False
        for bot in self._bots(DIGEST_MODULE).values():
            path = Path(bot["parameters"]["spool_file"])
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

    def wait_until_delivered(self) -> None:
        # Settled twice in a row, a second apart: a report may still be crossing a bot.
        last = [False]

        def settled_twice():
            now = self.settled()
            both, last[0] = now and last[0], now
            return both

        wait_for(settled_twice, timeout=self.timeout, interval=1.0, what="all digests to be delivered")

    def summarise(self, summary: Summary, exclude=frozenset()) -> Summary:
        """One row per organisation over all digest bots: its findings (by kind), cases,
        digests, channels; digests in ``exclude`` (an earlier round's) are left out."""
        per_org = {}
        for bot in self._bots(DIGEST_MODULE).values():
            parameters = bot["parameters"]
            channel = parameters.get("channel", "file")
            for state, digest in spool_digests(Path(parameters["spool_file"])):
                if digest.id in exclude:
                    continue
                org = digest.organisation
                entry = per_org.setdefault(
                    (org["id"], digest.constituency),
                    {
                        "organisation": org["id"],
                        "name": org.get("name", ""),
                        "constituency": digest.constituency,
                        "channels": set(),
                        "findings": set(),
                        "cases": set(),
                        "digests": set(),
                        "failed": [],
                        "kinds": {},
                    },
                )
                if state != "delivered":
                    entry["failed"].append(f"{channel} {digest.id[:12]}: {digest.last_error}")
                    continue
                entry["channels"].add(channel)
                # The same finding reaches several channels: count it once.
                entry["findings"] |= {finding_address(f) for f in digest.findings if f.get("kind") != "fixed"}
                for f in digest.findings:
                    entry["kinds"].setdefault(f.get("kind") or "new", set()).add(finding_address(f))
                entry["cases"] |= {f["case_id"] for f in digest.findings if f.get("case_id")}
                entry["digests"].add(digest.id)
            if channel == "file" and parameters.get("file_directory"):
                written = Path(parameters["file_directory"]).glob("*.json")
                summary.files += len([p for p in written if p.stem not in exclude])
        for entry in per_org.values():
            entry["kinds"] = {kind: sorted(addresses) for kind, addresses in entry["kinds"].items()}
            summary.rows.append({key: sorted(v) if isinstance(v, set) else v for key, v in entry.items()})
        summary.mails = len(self.sink.messages) - sum(self.mails_before)
        self.mails_before.append(summary.mails)
        for bot_id, bot in self._bots(FILE_OUTPUT_MODULE).items():
            events = Pipeline.read_file_output(Path(bot["parameters"]["file"]))
            summary.default_findings += [
                finding_address(event_finding(e)) + (" (not vulnerable)" if e.get(RESULT) == NOT_VULNERABLE else "")
                for e in events[self.default_seen[bot_id] :]
            ]
            self.default_seen[bot_id] = len(events)
        summary.dumped = {bot_id: len(entries) for bot_id, entries in self.pipeline.dumps().items()}
        return summary

    def close(self) -> None:
        if self.pipeline:
            self.progress("Stopping the bots.")
            with contextlib.suppress(Exception):
                self.pipeline.close()
        if self.feedback is not None:
            with contextlib.suppress(Exception):
                self.feedback.stop()
                self.feedback.context.store.close()
        if self.sink:
            self.sink.stop()
        if self.redis:
            self.redis.stop()
        if self.rabbitmq is not None and self._own_rabbitmq:
            self.rabbitmq.stop()
