"""A hub and a CERT's instance on their real parts, for the return leg's tests and benchmark.

The hub: a finding ledger with its records of the findings it forwarded to each CERT (org
``cert:<key>``, written through the ledger's own API), and its feedback service on
127.0.0.1 with a token file of CERT tokens, each bound to one constituency. The CERT: the
digest output's own mechanism (``notify.accept``, the spool, the deliverer, the file
channel) delivering findings whose events came from the hub (``extra.nsm.upstream``), and
the outbox pusher sending its ledger's history to the hub.
"""

import dataclasses
import logging
import os
from pathlib import Path

from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.cert_ids import cert_organisation
from intelmq_nsm.digest import notify
from intelmq_nsm.digest.channels import FileChannel
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url
from intelmq_nsm.digest.outbox import OutboxPusher
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.feedback.links import create_secret
from intelmq_nsm.feedback.service import build
from intelmq_nsm.testbed.sample_events import event, network_match, organisation

CASE = "DIVD-2024-00012"  # sample_events' case
HUB = "meldpunt"
CERT = "ibd-cert"
HUB_LEDGER = "hub-forwarded"
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
    """The hub's feedback service on 127.0.0.1 over its ledger, with tokens for the CERTs
    ``ibd`` and ``surf`` and one token bound to no constituency (a ticket system's)."""

    def __init__(self, tmp_path: Path, ledger_url: str, **overrides):
        self.tmp_path = tmp_path
        secret = tmp_path / "hub-secret"
        create_secret(secret)
        tokens = tmp_path / "hub-cert-tokens.json"
        _, self.ibd_token = add_token(tokens, "IBD", [], constituency="ibd")
        _, self.surf_token = add_token(tokens, "SURFcert", [], constituency="surf")
        _, self.unbound_token = add_token(tokens, "Some ticket system", ["tickets"])
        self.ledger_url = ledger_url
        self.config = config_mod.from_mapping(
            {
                "ledger_url": ledger_url,
                "ledger_name": HUB_LEDGER,
                "secret_file": str(secret),
                "cert_tokens_file": str(tokens),
                "port": 0,
                **overrides,
            }
        )
        self.logger = logging.getLogger("tests.federation.hub")
        self.server = None
        self.port = 0
        self.start()

    def start(self) -> "Hub":
        """Start (again, on the same port after :meth:`stop`)."""
        self.server = build(dataclasses.replace(self.config, port=self.port), self.logger)
        self.server.start()
        self.port = self.server.port
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/outcomes"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.context.store.close()
            self.server = None

    def ledger(self) -> Ledger:
        return Ledger(self.ledger_url, name=HUB_LEDGER)


def token_file(tmp_path: Path, token: str, name: str = "upstream-token") -> str:
    """The CERT's token for the hub in a file only its user may read."""
    path = tmp_path / name
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
        self.logger = logging.getLogger(f"tests.federation.{name}")
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
