"""Two tiers on the test bed: a hub and the sectoral CERTs' instances, for both legs' tests,
their benchmarks and the demo's two-tier run.

**Running** (``Tiers``): the hub and each CERT an IntelMQ root of its own on a Redis of its
own, with the hub's RabbitMQ node between them. Each CERT gets its virtual host, users and
rights from ``runtime-examples/forward-leg/rabbitmq-add-cert.sh``, run as an operator runs
it; the hub's AMQP outputs and each CERT's AMQP collector are pointed at it. With the return
leg, the hub's feedback service takes ``POST /v1/outcomes`` (``Hub``, a token per CERT bound
to its constituency) into the ledger its forward-record outputs write, and each CERT's
digest output that has an ``upstream_url`` sends its changes there. A hub whose
constituency expert routes by ``claims`` gets them as an operator's hub does: each CERT
exports its claims from its own registry (``intelmq-nsm constituency export --claims``), they
are served over HTTP on 127.0.0.1 and the hub's expert takes them with ``--update-database``
before the first start.

The tiers come from ``runtime-examples/two-tiers`` (``Tiers.from_folders``: a folder per
instance, each with its runtime.yaml and registry), or for the forward leg's tests from the
one-installation example with the CERT's digest outputs replaced by the bots of
``runtime-examples/forward-leg`` (``Tiers.forward_leg``).

**Their parts** (``Hub``, ``Cert``, ``hub_ledger``, ``forwarded_event``): the return leg's
mechanism without IntelMQ, for its tests and benchmark: the hub's ledger with its records of
the findings it forwarded, its feedback service, and a CERT's digest output mechanism with
its outbox.
"""

import contextlib
import dataclasses
import functools
import http.server
import json
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable, Optional

import yaml

from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.cert_ids import cert_organisation
from intelmq_nsm.digest import notify
from intelmq_nsm.digest.channels import FileChannel
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_path, sqlite_url
from intelmq_nsm.digest.outbox import OutboxPusher
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.feedback.links import create_secret
from intelmq_nsm.feedback.service import build
from intelmq_nsm.testbed.chain import (
    DIGEST_MODULE,
    FORWARD_RECORD_MODULE,
    INTAKE_MODULE,
    ExampleChain,
    wait_settled,
)
from intelmq_nsm.testbed.feedback_file import FeedbackFile
from intelmq_nsm.testbed.layout import bots_of, localise_value
from intelmq_nsm.testbed.pipeline import LOOPBACK, VENV_BIN, HarnessError, Pipeline, free_port, wait_for
from intelmq_nsm.testbed.rabbitmq import RABBITMQ_BIN
from intelmq_nsm.testbed.sample_events import event, network_match, organisation

HUB_SNIPPET = "hub.yaml"
CERT_SNIPPET = "cert.yaml"
SETUP_SCRIPT = "rabbitmq-add-cert.sh"
AMQP_OUTPUT_MODULE = "intelmq.bots.outputs.amqptopic.output"
AMQP_COLLECTOR_MODULE = "intelmq.bots.collectors.amqp.collector_amqp"
FORWARDED_PARSER_MODULE = "intelmq.bots.parsers.nsm.forwarded"
REPORT_PARSER_MODULE = "intelmq.bots.parsers.nsm.report"
EXPERT_MODULE = "intelmq.bots.experts.nsm.constituency"
EXPERT = "nsm-constituency-expert"
#: The hub's instance name, as the CERT's parser knows it.
HUB_INSTANCE = "nsm-hub"
#: The instance that is the hub in ``Tiers.from_folders``' folder.
HUB_FOLDER = "hub"
#: IntelMQ retries a message after a failure after this many seconds (the snippets say
#: 15; the tests do not wait that long).
RETRY_DELAY = 1
#: The hub's ledger of what it forwarded (the forward-record outputs' ``ledger_name`` in
#: runtime-examples/two-tiers, and the return leg tests' hub).
HUB_LEDGER = "hub-forwarded"

# -- one CERT on the hub's RabbitMQ node ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertLink:
    """One CERT on the hub's node: its virtual host, the exchange the hub writes to and the
    queue the CERT reads, and the two users."""

    key: str
    vhost: str
    exchange: str
    queue: str
    hub_user: str
    hub_password: str
    cert_user: str
    cert_password: str


def add_cert(
    server,
    snippets: Path,
    key: str,
    workdir: Path,
    vhost: Optional[str] = None,
    hub_user: str = "nsm-hub",
    cert_user: Optional[str] = None,
    passwords: tuple = ("hub-secret", "cert-secret"),
) -> CertLink:
    """Run the operator's script ``rabbitmq-add-cert.sh`` (in ``snippets``) against ``server``
    (a running RabbitMQServer) for the CERT ``key``; the link it made."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    vhost = vhost or f"nsm-{key}"
    cert_user = cert_user or key
    hub_file, cert_file = workdir / f"{hub_user}.password", workdir / f"{cert_user}.password"
    hub_file.write_text(passwords[0] + "\n", encoding="utf-8")
    cert_file.write_text(passwords[1] + "\n", encoding="utf-8")
    env = {
        **server.environment(),
        "RABBITMQCTL": f"{RABBITMQ_BIN / 'rabbitmqctl'} -n {server.node}",
        "VHOST": vhost,
        "HUB_USER": hub_user,
        "CERT_USER": cert_user,
    }
    script = Path(snippets) / SETUP_SCRIPT
    result = subprocess.run(
        ["/bin/sh", str(script), key, str(hub_file), str(cert_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise HarnessError(f"{script.name} {key} exited with {result.returncode}: {result.stdout}{result.stderr}")
    link = CertLink(key, vhost, "nsm-forward", f"nsm-forward-{key}", hub_user, passwords[0], cert_user, passwords[1])
    # The node imports definitions in the background: wait until the queue stands.
    wait_for(lambda: queue_messages(server, link) is not None, timeout=60, what=f"queue {link.queue}")
    return link


def remove_cert(server, link: CertLink) -> None:
    with contextlib.suppress(HarnessError):
        server.ctl("delete_vhost", link.vhost)


def queue_messages(server, link: CertLink) -> Optional[int]:
    """Messages in the CERT's queue, ready and unacknowledged; None while there is no queue."""
    listed = server.ctl("-q", "list_queues", "-p", link.vhost, "name", "messages").stdout
    for line in listed.splitlines():
        name, _, count = line.partition("\t")
        if name == link.queue:
            return int(count)
    return None


# -- runtimes ---------------------------------------------------------------------------------


def snippet(snippets: Path, name: str) -> dict:
    return yaml.safe_load((Path(snippets) / name).read_text(encoding="utf-8"))


def hub_runtime(example_runtime: dict, snippets: Path, key: str) -> dict:
    """The one-installation example's runtime as the hub's: the CERT ``key``'s digest outputs
    replaced by the forward leg's bots, the intake reading the forward record's ledger too."""
    runtime = json.loads(json.dumps(example_runtime))
    replaced = [b for b in bots_of(runtime, DIGEST_MODULE) if runtime[b]["parameters"].get("constituency") == key]
    spools = {runtime[b]["parameters"].get("spool_file") for b in replaced}
    for bot_id in replaced:
        del runtime[bot_id]
    bots = snippet(snippets, HUB_SNIPPET)
    runtime.update(bots)
    [amqp] = bots_of(bots, AMQP_OUTPUT_MODULE)
    [record] = bots_of(bots, FORWARD_RECORD_MODULE)
    runtime[EXPERT]["parameters"]["destination_queues"][key] = [f"{amqp}-queue", f"{record}-queue"]
    for bot_id in bots_of(runtime, INTAKE_MODULE):
        parameters = runtime[bot_id]["parameters"]
        kept = [path for path in parameters.get("ledgers", []) if path not in spools]
        parameters["ledgers"] = [*kept, bots[record]["parameters"]["ledger_file"]]
    return runtime


def cert_runtime(example_runtime: dict, snippets: Path) -> dict:
    """The one-installation example's runtime as the CERT's: no researchers' intake or report
    parser; the hub's collector and the forwarded-event parser in front of the deduplicator."""
    runtime = json.loads(json.dumps(example_runtime))
    for bot_id in bots_of(runtime, INTAKE_MODULE) + bots_of(runtime, REPORT_PARSER_MODULE):
        del runtime[bot_id]
    runtime.update(snippet(snippets, CERT_SNIPPET))
    return runtime


def connect_hub(runtime: dict, link: CertLink, amqp_port: int) -> None:
    """The hub's AMQP output to ``link``'s CERT (the one routing to its key) on the node."""
    outputs = [b for b in bots_of(runtime, AMQP_OUTPUT_MODULE) if runtime[b]["parameters"]["routing_key"] == link.key]
    if len(outputs) != 1:
        raise HarnessError(f"The hub's runtime has {len(outputs)} AMQP outputs to {link.key!r}, not one.")
    runtime[outputs[0]]["parameters"].update(
        connection_host=LOOPBACK,
        connection_port=amqp_port,
        connection_vhost=link.vhost,
        username=link.hub_user,
        password=link.hub_password,
        error_retry_delay=RETRY_DELAY,
    )


def connect_cert(runtime: dict, link: CertLink, amqp_port: int) -> None:
    """The CERT's AMQP collector to its queue on the node."""
    for bot_id in bots_of(runtime, AMQP_COLLECTOR_MODULE):
        runtime[bot_id]["parameters"].update(
            connection_host=LOOPBACK,
            connection_port=amqp_port,
            connection_vhost=link.vhost,
            username=link.cert_user,
            password=link.cert_password,
            queue_name=link.queue,
            error_retry_delay=RETRY_DELAY,
        )


# -- claims, published by each CERT and taken by the hub ---------------------------------------


class ClaimsServer(http.server.ThreadingHTTPServer):
    """The CERTs' web servers for their claims files: a folder served on 127.0.0.1."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietFiles, directory=str(self.folder))
        super().__init__((LOOPBACK, 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self) -> "ClaimsServer":
        self._thread.start()
        return self

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}/{name}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def export_claims(registry: Path, key: str, target: Path) -> str:
    """The CERT's claims of constituency ``key`` from its full ``registry``, written to
    ``target`` by ``intelmq-nsm constituency export --claims`` as its operator runs it;
    what the command said."""
    argv = [str(VENV_BIN / "intelmq-nsm"), "constituency", "export", "--claims", key, "-d", str(registry)]
    result = subprocess.run(
        [*argv, "-o", str(target)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} exited with {result.returncode}: {result.stdout}{result.stderr}")
    return result.stdout.strip()


def take_claims(pipeline: Pipeline) -> str:
    """The hub's constituency expert's ``--update-database`` (download, validate, swap), as
    its operator runs it before the first start; what it printed."""
    result = pipeline.program(EXPERT_MODULE, "--update-database", "--verbose", timeout=300)
    if result.returncode != 0:
        raise HarnessError(f"--update-database exited with {result.returncode}: {result.stdout}{result.stderr}")
    # Before the first start there is no running bot to reload: that line says nothing here.
    return "; ".join(line for line in result.stdout.splitlines() if line.strip() and ": reload " not in line)


# -- the tiers running ------------------------------------------------------------------------


@dataclasses.dataclass
class Tier:
    """One instance: the folder it is laid out from (registry, tokens, reports), its runtime
    and, where the folder has one, its feedback service's configuration (feedback.yaml)."""

    name: str
    example: Path
    runtime: dict
    feedback: Optional[FeedbackFile] = None


def read_tiers(folder: Path) -> tuple:
    """``(hub, [CERTs])`` of ``folder`` (runtime-examples/two-tiers): ``hub/`` and one folder
    per CERT, named by its constituency key, each with its runtime.yaml and registry. A
    folder's feedback.yaml is read and checked here, before anything starts: the hub's must
    serve the ledger its forward-record outputs write and take the CERTs' tokens, a CERT's
    the ledger of one of its digest outputs (HarnessError naming the file, key and reason)."""
    tiers = []
    for path in sorted(Path(folder).iterdir()):
        if (path / "runtime.yaml").exists():
            runtime = yaml.safe_load((path / "runtime.yaml").read_text(encoding="utf-8"))
            tiers.append(Tier(path.name, path, runtime, FeedbackFile.read(path)))
    hubs = [t for t in tiers if t.name == HUB_FOLDER]
    if len(hubs) != 1:
        raise HarnessError(f"{folder} has no {HUB_FOLDER}/ with a runtime.yaml: no hub to start.")
    for tier in tiers:
        if tier.feedback is not None:
            tier.feedback.served_by(tier.runtime, FORWARD_RECORD_MODULE if tier.name == HUB_FOLDER else DIGEST_MODULE)
    if hubs[0].feedback is not None and not hubs[0].feedback.config.cert_tokens_file:
        raise hubs[0].feedback.problem("cert_tokens_file", "is not set: the hub would refuse every CERT's outcomes.")
    return hubs[0], [t for t in tiers if t.name != HUB_FOLDER]


class Tiers:
    """A hub and CERT instances running, each CERT with its virtual host on ``rabbitmq`` (a
    running RabbitMQServer that stays running); ``close()`` stops what was started here.

    ``vhosts``: the CERTs' virtual hosts (default ``nsm-<key>``). ``return_leg``: the hub's
    feedback service takes the CERTs' outcomes (``self.outcomes``, a ``Hub``) and each CERT's
    digest output with an ``upstream_url`` sends them there. ``before``: per instance name,
    called with its localised runtime before it is laid out (the demo starts the IBD's owners'
    page there).
    """

    def __init__(
        self,
        hub: Tier,
        certs: list,
        snippets: Path,
        workdir: Path,
        rabbitmq,
        *,
        vhosts: Optional[dict] = None,
        return_leg: bool = False,
        pipeline_class=Pipeline,
        pace: Optional[dict] = None,
        sink_factory=None,
        progress: Callable[[str], None] = lambda message: None,
        timeout: float = 300.0,
    ):
        self.tiers = {tier.name: tier for tier in (hub, *certs)}
        self.hub_tier, self.cert_tiers = hub, list(certs)
        self.snippets, self.workdir, self.rabbitmq = Path(snippets), Path(workdir), rabbitmq
        self.vhosts, self.return_leg = vhosts or {}, return_leg
        self.progress, self.timeout = progress, timeout
        self.links: dict = {}
        self.outcomes: Optional[Hub] = None  # the hub's feedback service, with the return leg
        self.claims_server: Optional[ClaimsServer] = None
        options = {"pipeline_class": pipeline_class, "pace": pace, "progress": progress, "timeout": timeout}
        if sink_factory is not None:
            options["sink_factory"] = sink_factory
        self.chains = {
            tier.name: ExampleChain(self.workdir / f"{tier.name}-example", self.workdir / tier.name, **options)
            for tier in self.tiers.values()
        }

    @classmethod
    def from_folders(cls, folder: Path, snippets: Path, workdir: Path, rabbitmq, **options) -> "Tiers":
        """The tiers of ``folder`` (runtime-examples/two-tiers, :func:`read_tiers`)."""
        hub, certs = read_tiers(folder)
        return cls(hub, certs, snippets, workdir, rabbitmq, **options)

    @classmethod
    def forward_leg(
        cls, example: Path, snippets: Path, workdir: Path, rabbitmq, key: str = "ibd", vhost=None, **options
    ) -> "Tiers":
        """The one-installation ``example`` as a hub and the CERT ``key``'s instance, joined by
        the forward leg's bots (``snippets``: runtime-examples/forward-leg)."""
        runtime = yaml.safe_load((Path(example) / "runtime.yaml").read_text(encoding="utf-8"))
        hub = Tier(HUB_FOLDER, Path(example), hub_runtime(runtime, snippets, key))
        cert = Tier(key, Path(example), cert_runtime(runtime, snippets))
        vhosts = {key: vhost} if vhost else None
        return cls(hub, [cert], snippets, workdir, rabbitmq, vhosts=vhosts, **options)

    # -- what the tests of one CERT ask ---------------------------------------------------

    @property
    def hub(self) -> ExampleChain:
        return self.chains[self.hub_tier.name]

    @property
    def cert(self) -> ExampleChain:
        """The (first) CERT's instance."""
        return self.chains[self.cert_tiers[0].name]

    @property
    def key(self) -> str:
        return self.cert_tiers[0].name

    @property
    def link(self) -> Optional[CertLink]:
        return self.links.get(self.key)

    # -- start ----------------------------------------------------------------------------

    def start(
        self,
        hub_changes: Callable[[dict], None] = lambda r: None,
        cert_changes: Callable[[dict], None] = lambda r: None,
        before: Optional[dict] = None,
    ) -> None:
        """Each CERT's virtual host, then the CERTs' instances, then the hub's.
        ``hub_changes`` and ``cert_changes`` (every CERT's) may change each runtime before
        it is laid out."""
        before = before or {}
        runtimes = {name: json.loads(json.dumps(tier.runtime)) for name, tier in self.tiers.items()}
        for tier in self.cert_tiers:
            vhost = self.vhosts.get(tier.name)
            link = add_cert(self.rabbitmq, self.snippets, tier.name, self.workdir / "rabbitmq", vhost=vhost)
            self.links[tier.name] = link
            self.progress(f"{tier.name}: virtual host {link.vhost} on the hub's RabbitMQ ({SETUP_SCRIPT}).")
            connect_hub(runtimes[self.hub_tier.name], link, self.rabbitmq.port)
            connect_cert(runtimes[tier.name], link, self.rabbitmq.port)
            cert_changes(runtimes[tier.name])
        hub_changes(runtimes[self.hub_tier.name])
        prepare = self._publish_claims(runtimes[self.hub_tier.name])
        if self.return_leg:
            self._start_outcomes(runtimes)
        for name in [t.name for t in self.cert_tiers] + [self.hub_tier.name]:
            chain, tier = self.chains[name], self.tiers[name]
            shutil.copytree(tier.example, chain.example, dirs_exist_ok=True)
            (chain.example / "runtime.yaml").write_text(yaml.safe_dump(runtimes[name], sort_keys=False), "utf-8")
            self.progress(f"Starting the {name} instance ({chain.workdir}).")
            hook = before.get(name)
            if name == self.hub_tier.name:
                chain.start(runtimes[name], before=hook, prepare=prepare)
            else:
                chain.start(runtimes[name], before=self._cert_before(name, hook))

    def _publish_claims(self, hub: dict) -> Optional[Callable[[Pipeline], None]]:
        """Each CERT's claims exported and served, the hub's expert pointed at them; the
        step that takes them at the hub (None when the hub routes by a registry of its own)."""
        experts = [b for b in bots_of(hub, EXPERT_MODULE) if hub[b]["parameters"].get("claims")]
        if not experts:
            return None
        self.claims_server = ClaimsServer(self.workdir / "claims").start()
        urls = {}
        for tier in self.cert_tiers:
            name = f"claims-{tier.name}.json"
            said = export_claims(tier.example / "registry", tier.name, self.claims_server.folder / name)
            self.progress(f"{tier.name} published its claims: {said}")
            urls[tier.name] = self.claims_server.url(name)
        for bot_id in experts:
            claims = hub[bot_id]["parameters"]["claims"]
            for key in claims:
                if key not in urls:
                    raise HarnessError(f"The hub's {bot_id} takes claims of {key!r}, which no instance here publishes.")
                claims[key] = {**claims[key], "url": urls[key]} if isinstance(claims[key], dict) else urls[key]

        def prepare(pipeline: Pipeline) -> None:
            self.progress(f"The hub takes the CERTs' claims: {take_claims(pipeline)}")

        return prepare

    def _start_outcomes(self, runtimes: dict) -> None:
        self.outcomes = start_outcomes(
            self.hub_tier, runtimes[self.hub_tier.name], self.workdir, [tier.name for tier in self.cert_tiers]
        )
        where = f" from {self.hub_tier.feedback.path}" if self.hub_tier.feedback is not None else ""
        self.progress(f"Started the hub's feedback service{where} for the CERTs' outcomes on {self.outcomes.url}.")

    def _cert_before(self, name: str, hook: Optional[Callable[[dict], None]]) -> Callable[[dict], None]:
        """The CERT's digest outputs that go back to the hub: its URL and the CERT's token."""

        def before(runtime: dict) -> None:
            if self.outcomes is not None:
                path = token_file(self.workdir / name, self.outcomes.tokens[name], "hub-token")
                for bot_id in bots_of(runtime, DIGEST_MODULE):
                    parameters = runtime[bot_id]["parameters"]
                    if parameters.get("upstream_url"):
                        parameters.update(upstream_url=self.outcomes.url, upstream_token_file=path)
                        parameters.setdefault("upstream_interval", 0.5)
            if hook is not None:
                hook(runtime)

        return before

    # -- wait -----------------------------------------------------------------------------

    def queued(self, key: Optional[str] = None) -> int:
        """Messages in the CERT's queue on the hub's node (``key``: the first CERT's)."""
        return queue_messages(self.rabbitmq, self.links[key or self.key]) or 0

    def settled(self) -> bool:
        return (
            self.hub.settled()
            and all(self.queued(key) == 0 for key in self.links)
            and all(self.chains[t.name].settled() for t in self.cert_tiers)
        )

    def wait_until_delivered(self) -> None:
        wait_settled(self.settled, self.timeout, "the tiers to settle")

    def returned(self) -> bool:
        """Every CERT's output that goes back to the hub has sent the hub all its changes."""
        for tier in self.cert_tiers:
            chain = self.chains[tier.name]
            for bot_id, ledger in chain.ledgers():
                try:
                    if not chain.pipeline.runtime[bot_id]["parameters"].get("upstream_url"):
                        continue
                    boxes = ledger.outboxes()
                    waiting = sum(b["waiting"] for b in boxes) if boxes else len(ledger.outgoing(0, 1)[0])
                finally:
                    ledger.close()
                if waiting:
                    return False
        return True

    def wait_until_returned(self) -> None:
        wait_settled(self.returned, self.timeout, "every CERT's outbox to reach the hub")

    def close(self) -> None:
        for chain in self.chains.values():
            with contextlib.suppress(Exception):
                chain.close()
        if self.outcomes is not None:
            with contextlib.suppress(Exception):
                self.outcomes.stop()
        if self.claims_server is not None:
            self.claims_server.stop()
        for link in self.links.values():
            remove_cert(self.rabbitmq, link)


def start_outcomes(hub: Tier, runtime: dict, workdir: Path, certs: list) -> "Hub":
    """The hub's feedback service over the ledger its forward-record outputs share (in
    ``runtime``, the hub's as written), a token per CERT of ``certs`` bound to its
    constituency. With the hub's feedback.yaml, the service it configures, laid out in the
    hub's folder under ``workdir`` as the chain lays the runtime out (its secret and the
    CERTs' token file made where the file says); without one, a service of the test bed's."""
    if hub.feedback is not None:
        hub.feedback.served_by(runtime, FORWARD_RECORD_MODULE)
        config = hub.feedback.localised(Path(workdir) / hub.name, free_port()).config
        return Hub(config, certs)
    records = [runtime[b]["parameters"] for b in bots_of(runtime, FORWARD_RECORD_MODULE)]
    ledgers = {(p.get("ledger_file"), p.get("ledger_name")) for p in records}
    if len(ledgers) != 1 or None in next(iter(ledgers)):
        raise HarnessError(f"The return leg needs one ledger_file and ledger_name for the forward records: {ledgers}.")
    [(path, name)] = ledgers
    folder = Path(workdir) / "hub-outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    # The ledger where the hub's chain puts it when it lays its runtime out.
    ledger_url = sqlite_url(localise_value(path, Path(workdir) / hub.name))
    return Hub.in_folder(folder, ledger_url, ledger_name=name, certs=certs)


# -- the return leg's parts, without IntelMQ --------------------------------------------------

CASE = "DIVD-2024-00012"  # sample_events' case
HUB = "meldpunt"
CERT = "ibd-cert"
CERT_LEDGER = "ibd-digest-mail"
AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
T0 = 1_780_000_000.0


def hub_id(n: int) -> str:
    """The hub's finding id of sample finding ``n``: not the CERT's own id (which the CERT
    computes itself), so that a test sees which of the two travels."""
    return f"nf1-{n:032x}"


def forwarded_event(n: int, organisations=(AMSTERDAM,), hub: str = HUB, **extra) -> dict:
    """Sample finding ``n`` as the CERT's constituency expert emits it, from the hub."""
    upstream = {"instance": hub, "finding_id": hub_id(n), "case_id": CASE}
    return event(n, list(organisations), **{"extra.nsm.upstream": upstream, **extra})


def hub_ledger(url: str, forwarded: dict, now: float = T0) -> Ledger:
    """The hub's ledger with its record of each finding forwarded to a CERT:
    ``{constituency key: [sample finding numbers]}``."""
    ledger = Ledger(url, name=HUB_LEDGER)
    for key, numbers in forwarded.items():
        observations = [
            Observation(
                hub_id(n),
                cert_organisation(key),
                f"forwarded-{key}-{n}",
                org_name=key.upper(),
                constituency=key,
                case_id=CASE,
                target=f"{event(n, [])['source.ip']}:443",
                matches=network_match(
                    cert_organisation(key), f"{event(n, [])['source.ip']}/32", source=f"claims:{key}"
                ),
            )
            for n in numbers
        ]
        ledger.observe(observations, now=now)
    return ledger


class Hub:
    """The hub's feedback service on 127.0.0.1 over its ledger, started, with a token for
    each CERT of ``certs`` (bound to its constituency: ``tokens[key]``) and, made by
    :meth:`in_folder`, one bound to no constituency (a ticket system's: ``unbound_token``)."""

    def __init__(
        self,
        config: config_mod.ServiceConfig,
        certs=("ibd", "surf"),
        tokens: Optional[Path] = None,
        ticket_system: bool = False,
    ):
        """The service ``config`` describes (an operator's feedback.yaml, laid out), its
        secret made where it says and a token for each CERT in ``tokens`` (by default its
        ``cert_tokens_file``); with ``ticket_system``, one more token bound to no constituency."""
        tokens = Path(tokens or config.cert_tokens_file)
        for path in (Path(config.secret_file), tokens):
            path.parent.mkdir(parents=True, exist_ok=True)
        create_secret(config.secret_file)
        self.tokens = {key: add_token(tokens, key.upper(), [], constituency=key)[1] for key in certs}
        self.unbound_token = add_token(tokens, "Some ticket system", ["tickets"])[1] if ticket_system else None
        self.ledger_url, self.ledger_name = config.ledger_url, config.ledger_name
        # The ledger's folder, where the hub's chain will lay it out: the service opens it first.
        ledger_file = sqlite_path(config.ledger_url)
        if ledger_file:
            Path(ledger_file).parent.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.logger = logging.getLogger("intelmq_nsm.testbed.hub")
        self.server = None
        self.port = config.port
        self.start()

    @classmethod
    def in_folder(
        cls, tmp_path: Path, ledger_url: str, ledger_name: str = HUB_LEDGER, certs=("ibd", "surf"), **overrides
    ) -> "Hub":
        """The hub's service over ``ledger_url`` with its files in ``tmp_path``, a ticket
        system's token among the CERTs'; ``overrides``: other keys of its configuration."""
        tokens = tmp_path / "hub-cert-tokens.json"
        config = config_mod.from_mapping(
            {
                "ledger_url": ledger_url,
                "ledger_name": ledger_name,
                "secret_file": str(tmp_path / "hub-secret"),
                "cert_tokens_file": str(tokens),
                "port": 0,
                **overrides,
            }
        )
        return cls(config, certs, tokens, ticket_system=True)

    @property
    def ibd_token(self) -> str:
        return self.tokens["ibd"]

    @property
    def surf_token(self) -> str:
        return self.tokens["surf"]

    def start(self) -> "Hub":
        """Start (again, on the same port after :meth:`stop`)."""
        self.server = build(dataclasses.replace(self.config, port=self.port), self.logger)
        self.server.start()
        self.port = self.server.port
        return self

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1/outcomes"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.context.store.close()
            self.server = None

    def ledger(self) -> Ledger:
        return Ledger(self.ledger_url, name=self.ledger_name)


def token_file(tmp_path: Path, token: str, name: str = "upstream-token") -> str:
    """The CERT's token for the hub in a file only its user may read."""
    path = Path(tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n", encoding="ascii")
    os.chmod(path, 0o600)
    return str(path)


class Cert:
    """A CERT's digest output mechanism over a spool with the ledger in it, delivering into
    files, and its outbox to a hub."""

    def __init__(self, tmp_path: Path, name: str = "cert"):
        self.dir = tmp_path / name
        self.dir.mkdir()
        self.spool_file = self.dir / "spool.sqlite"
        self.spool = DigestSpool(self.spool_file)
        self.ledger = Ledger(sqlite_url(self.spool_file), name=CERT_LEDGER)
        self.logger = logging.getLogger(f"intelmq_nsm.testbed.{name}")
        self.deliverer = Deliverer(
            self.spool,
            FileChannel(str(self.dir / "digests"), formats=["json"]),
            self.logger,
            max_age=0,
            ledger=self.ledger,
        )

    def notify(self, events, now: float = T0) -> dict:
        """Take the events and deliver their digests: their findings become ``notified``."""
        for e in events:
            notify.accept(e, self.spool, self.ledger, now)
        return self.deliverer.run_once(now=now + 1, flush=True)

    def pusher(self, url: str, token_path: str, **settings) -> OutboxPusher:
        settings.setdefault("interval", 0.05)
        return OutboxPusher(self.ledger, url, token_path, CERT, self.logger, **settings)

    def close(self) -> None:
        self.spool.close()
        self.ledger.close()


#: What the return leg's tests take of this module as a whole (tests/federation/two_tiers.py).
__all__ = [
    "AMSTERDAM",
    "CASE",
    "CERT",
    "CERT_LEDGER",
    "HUB",
    "HUB_LEDGER",
    "T0",
    "UTRECHT",
    "Cert",
    "Hub",
    "forwarded_event",
    "hub_id",
    "hub_ledger",
    "token_file",
]
