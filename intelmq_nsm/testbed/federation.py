"""The forward leg on the test bed: a hub and a sectoral CERT, each an IntelMQ root of its
own on a Redis of its own, with the hub's RabbitMQ node between them.

The hub runs the example chain (``runtime-examples/nsm-ibd``) with the CERT's digest
outputs replaced by the bots of ``runtime-examples/forward-leg/hub.yaml`` (IntelMQ's AMQP
output and the forward-record output); the CERT runs the same example without the
researchers' intake and report parser, fed instead by ``forward-leg/cert.yaml`` (IntelMQ's
AMQP collector and the forwarded-event parser), delivering to its municipalities by mail
into an SMTP sink. The node gets the CERT's virtual host, users and rights from
``forward-leg/rabbitmq-add-cert.sh``, run as an operator runs it.
"""

import contextlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from intelmq_nsm.testbed.chain import DIGEST_MODULE, INTAKE_MODULE, ExampleChain, wait_settled
from intelmq_nsm.testbed.pipeline import HarnessError, Pipeline, wait_for
from intelmq_nsm.testbed.rabbitmq import RABBITMQ_BIN

HUB_SNIPPET = "hub.yaml"
CERT_SNIPPET = "cert.yaml"
SETUP_SCRIPT = "rabbitmq-add-cert.sh"
AMQP_OUTPUT_MODULE = "intelmq.bots.outputs.amqptopic.output"
AMQP_COLLECTOR_MODULE = "intelmq.bots.collectors.amqp.collector_amqp"
FORWARD_RECORD_MODULE = "intelmq.bots.outputs.nsm.forward_record"
FORWARDED_PARSER_MODULE = "intelmq.bots.parsers.nsm.forwarded"
REPORT_PARSER_MODULE = "intelmq.bots.parsers.nsm.report"
EXPERT = "nsm-constituency-expert"
#: The hub's instance name, as the CERT's parser knows it.
HUB_INSTANCE = "nsm-hub"
#: IntelMQ retries a message after a failure after this many seconds (the snippets say
#: 15; the tests do not wait that long).
RETRY_DELAY = 1


@dataclass(frozen=True)
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
    """Run the operator's script ``rabbitmq-add-cert.sh`` against ``server`` (a running
    RabbitMQServer) for the CERT ``key``; the link it made."""
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


def snippet(snippets: Path, name: str) -> dict:
    return yaml.safe_load((Path(snippets) / name).read_text(encoding="utf-8"))


def hub_runtime(example_runtime: dict, snippets: Path, link: CertLink, amqp_port: int) -> dict:
    """The example's runtime as the hub's: the CERT's digest outputs replaced by the forward
    leg's bots, the intake reading the forward record's ledger too."""
    runtime = json.loads(json.dumps(example_runtime))
    replaced = [b for b, bot in runtime.items() if b != "global" and _delivers_for(bot, link.key)]
    spools = {runtime[b]["parameters"].get("spool_file") for b in replaced}
    for bot_id in replaced:
        del runtime[bot_id]
    bots = snippet(snippets, HUB_SNIPPET)
    runtime.update(bots)
    [amqp] = [b for b, bot in bots.items() if bot["module"] == AMQP_OUTPUT_MODULE]
    [record] = [b for b, bot in bots.items() if bot["module"] == FORWARD_RECORD_MODULE]
    runtime[EXPERT]["parameters"]["destination_queues"][link.key] = [f"{amqp}-queue", f"{record}-queue"]
    runtime[amqp]["parameters"].update(
        connection_port=amqp_port,
        connection_vhost=link.vhost,
        username=link.hub_user,
        password=link.hub_password,
        error_retry_delay=RETRY_DELAY,
    )
    for bot in runtime.values():
        if isinstance(bot, dict) and bot.get("module") == INTAKE_MODULE:
            kept = [path for path in bot["parameters"].get("ledgers", []) if path not in spools]
            bot["parameters"]["ledgers"] = [*kept, bots[record]["parameters"]["ledger_file"]]
    return runtime


def _delivers_for(bot: dict, key: str) -> bool:
    return bot.get("module") == DIGEST_MODULE and bot.get("parameters", {}).get("constituency") == key


def cert_runtime(example_runtime: dict, snippets: Path, link: CertLink, amqp_port: int) -> dict:
    """The example's runtime as the CERT's: no researchers' intake or report parser; the
    hub's collector and the forwarded-event parser in front of the deduplicator."""
    runtime = json.loads(json.dumps(example_runtime))
    for bot_id in [
        b for b, bot in runtime.items() if b != "global" and bot["module"] in (INTAKE_MODULE, REPORT_PARSER_MODULE)
    ]:
        del runtime[bot_id]
    bots = snippet(snippets, CERT_SNIPPET)
    runtime.update(bots)
    [collector] = [b for b, bot in bots.items() if bot["module"] == AMQP_COLLECTOR_MODULE]
    runtime[collector]["parameters"].update(
        connection_port=amqp_port,
        connection_vhost=link.vhost,
        username=link.cert_user,
        password=link.cert_password,
        queue_name=link.queue,
        error_retry_delay=RETRY_DELAY,
    )
    return runtime


class ForwardLeg:
    """A hub and a CERT (``key``) running, with the CERT's virtual host on ``rabbitmq`` (a
    running RabbitMQServer that stays running); ``close()`` stops what was started here."""

    def __init__(
        self,
        example: Path,
        snippets: Path,
        workdir: Path,
        rabbitmq,
        *,
        key: str = "ibd",
        vhost: Optional[str] = None,
        pipeline_class=Pipeline,
        pace: Optional[dict] = None,
        progress: Callable[[str], None] = lambda message: None,
        timeout: float = 300.0,
    ):
        self.example, self.snippets, self.workdir = Path(example), Path(snippets), Path(workdir)
        self.rabbitmq, self.key, self.vhost = rabbitmq, key, vhost
        self.progress, self.timeout = progress, timeout
        self.link: Optional[CertLink] = None
        options = {"pipeline_class": pipeline_class, "pace": pace, "progress": progress, "timeout": timeout}
        self.hub = ExampleChain(self.workdir / "hub-example", self.workdir / "hub", **options)
        self.cert = ExampleChain(self.workdir / "cert-example", self.workdir / "cert", **options)

    def start(self, hub_changes: Callable[[dict], None] = lambda r: None, cert_changes=lambda r: None) -> None:
        """The CERT's virtual host, then the CERT's instance, then the hub's. ``hub_changes``
        and ``cert_changes`` may change each runtime before it is laid out."""
        self.link = add_cert(self.rabbitmq, self.snippets, self.key, self.workdir / "rabbitmq", vhost=self.vhost)
        example_runtime = yaml.safe_load((self.example / "runtime.yaml").read_text(encoding="utf-8"))
        runtimes = {
            self.cert: cert_runtime(example_runtime, self.snippets, self.link, self.rabbitmq.port),
            self.hub: hub_runtime(example_runtime, self.snippets, self.link, self.rabbitmq.port),
        }
        cert_changes(runtimes[self.cert])
        hub_changes(runtimes[self.hub])
        for chain, runtime in runtimes.items():
            shutil.copytree(self.example, chain.example, dirs_exist_ok=True)
            (chain.example / "runtime.yaml").write_text(yaml.safe_dump(runtime, sort_keys=False), encoding="utf-8")
            chain.start(runtime)

    def queued(self) -> int:
        """Messages in the CERT's queue on the hub's node."""
        return queue_messages(self.rabbitmq, self.link) or 0

    def settled(self) -> bool:
        return self.hub.settled() and self.queued() == 0 and self.cert.settled()

    def wait_until_delivered(self) -> None:
        wait_settled(self.settled, self.timeout, "the forward leg to settle")

    def close(self) -> None:
        for chain in (self.hub, self.cert):
            with contextlib.suppress(Exception):
                chain.close()
        if self.link is not None:
            remove_cert(self.rabbitmq, self.link)
