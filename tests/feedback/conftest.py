"""A delivered digest with feedback links, and the feedback service on a real local port.

The digest output's own mechanism (``notify.accept``, the spool, the deliverer, the file
channel) delivers digests with links into files; the service reads the same ledger.
"""

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from intelmq_nsm.auth.tokens import TokenVerifier, add_token
from intelmq_nsm.digest import notify
from intelmq_nsm.digest.channels import FileChannel
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.feedback.answers import FeedbackConfig, FeedbackStore
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.feedback.links import DigestLinks, LinkSigner, create_secret, read_secret
from intelmq_nsm.feedback.server import FeedbackServer
from intelmq_nsm.testbed.sample_events import event, organisation

AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
LEDGER = "ibd-digest-mail"


@dataclass
class Delivered:
    directory: Path
    spool_file: Path
    secret_file: Path
    base_url: str

    def documents(self) -> dict:
        """organisation id → the JSON digest delivered to it."""
        result = {}
        for path in sorted(self.directory.glob("*.json")):
            document = json.loads(path.read_text())
            result[document["organisation"]["id"]] = document
        return result

    def texts(self) -> list:
        return [p.read_text() for p in sorted(self.directory.glob("*.txt"))]

    def csvs(self) -> list:
        return [p.read_text() for p in sorted(self.directory.glob("*.csv"))]

    def ledger(self) -> Ledger:
        return Ledger(sqlite_url(self.spool_file), name=LEDGER)


def paths(tmp_path, base_url: str) -> Delivered:
    """Where :func:`deliver` puts spool, secret and digest files (the secret made now)."""
    delivered = Delivered(tmp_path / "digests", tmp_path / "spool.sqlite", tmp_path / "feedback-secret", base_url)
    create_secret(delivered.secret_file)
    return delivered


def deliver(tmp_path, base_url: str, events, lifetime: float = 30 * 86400, now=None, channel=None) -> Delivered:
    """Deliver the events' digests with feedback links, by default through the file channel."""
    where = paths(tmp_path, base_url)
    secret_file, spool_file, directory = where.secret_file, where.spool_file, where.directory
    spool = DigestSpool(spool_file)
    ledger = Ledger(sqlite_url(spool_file), name=LEDGER)
    links = DigestLinks(base_url, LinkSigner(read_secret(secret_file), lifetime))
    deliverer = Deliverer(
        spool,
        channel or FileChannel(str(directory), formats=["json", "csv", "txt"]),
        logging.getLogger("test-feedback"),
        max_events=1000,
        max_age=0,
        ledger=ledger,
        links=links,
    )
    now = time.time() if now is None else now
    for e in events:
        notify.accept(e, spool, ledger, now)
    result = deliverer.run_once(now=now, flush=True)
    assert result["delivered"] >= 1, result
    spool.close()
    ledger.close()
    return where


def standard_events() -> list:
    """Two findings of Amsterdam, one of Utrecht."""
    return [event(1, [AMSTERDAM]), event(2, [AMSTERDAM]), event(3, [UTRECHT])]


class Service:
    """The feedback service listening on 127.0.0.1, with a token for the ticket system
    (``tickets=False``: without one) and one for an operator (the overview);
    ``overrides`` are configuration keys."""

    def __init__(self, tmp_path, delivered: Delivered, tickets: bool = True, **overrides):
        tokens = tmp_path / "feedback-tokens.json"
        _, self.api_token = add_token(tokens, "IBD-tickets", ["feedback"])
        operators = tmp_path / "operator-tokens.json"
        _, self.operator_token = add_token(operators, "IBD operator", ["operators"])
        self.config = config_mod.from_mapping(
            {
                "ledger_url": sqlite_url(delivered.spool_file),
                "ledger_name": LEDGER,
                "secret_file": str(delivered.secret_file),
                "tokens_file": str(tokens),
                "port": 0,
                **overrides,
            }
        )
        self.store = FeedbackStore(FeedbackConfig(self.config.ledger_url, LEDGER))
        context = ServiceContext(
            self.config,
            self.store,
            LinkSigner.from_file(delivered.secret_file),
            logging.getLogger("test-feedback-service"),
            tickets=TokenVerifier(tokens) if tickets else None,
            operators=TokenVerifier(operators),
        )
        self.server = FeedbackServer(context).start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def local(self, link_url: str) -> str:
        """A link from a digest, pointed at this service's address."""
        return re.sub(r"^https?://[^/]+", self.url, link_url)

    def close(self):
        self.server.stop()
        self.store.close()


@pytest.fixture
def service_factory(tmp_path):
    made = []

    def make(delivered, **overrides):
        service = Service(tmp_path, delivered, **overrides)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


@pytest.fixture
def delivered(tmp_path):
    return deliver(tmp_path, "https://feedback.ibd.example", standard_events())


@pytest.fixture
def service(delivered, service_factory):
    return service_factory(delivered)
