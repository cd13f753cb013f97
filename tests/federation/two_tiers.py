"""What the return leg's tests do beyond the test bed's hub and CERT (``intelmq_nsm.testbed.tiers``):
read the hub's ledger, wait, and a relay that holds the hub's answer while a test kills the sender."""

import json
import threading
from http.server import BaseHTTPRequestHandler

import requests

from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.tiers import *  # noqa: F403  (the tests' hub and CERT are the bed's)
from intelmq_nsm.testbed.tiers import CERT, Hub


def hub_states(hub: Hub, key: str = "ibd") -> dict:
    """The hub's records of findings forwarded to ``key``: finding id → state."""
    ledger = hub.ledger()
    try:
        return {r["finding_id"]: r["state"] for r in ledger.records(org_id=f"cert:{key}")}
    finally:
        ledger.close()


def hub_history(hub: Hub, finding_id: str, key: str = "ibd") -> list:
    ledger = hub.ledger()
    try:
        [record] = [r for r in ledger.history_of(finding_id) if r["org_id"] == f"cert:{key}"]
        return record["history"]
    finally:
        ledger.close()


def cert_changes(hub: Hub) -> list:
    """Every change a CERT's report wrote into the hub's history: ``(finding, state, reference)``."""
    ledger = hub.ledger()
    try:
        found = []
        for record in ledger.records():
            [mine] = [h for h in ledger.history_of(record["finding_id"]) if h["org_id"] == record["org_id"]]
            for change in mine["history"]:
                if change["source"].startswith("cert:"):
                    found.append((record["finding_id"], change["state"], change["reference"]))
        return sorted(found)
    finally:
        ledger.close()


def sent_once(ledger) -> list:
    """What the hub's history must hold once of a CERT's ``ledger``: every change of the hub's
    findings as ``(the hub's finding id, state, change id)``, as :func:`cert_changes` reads it."""
    rows, _ = ledger.outgoing(0, 10**9)
    return sorted((r["upstream_finding_id"], r["state"], f"{CERT}/{ledger.name}/{r['id']}") for r in rows)


class HoldingRelay(Receiver):
    """The test bed's receiver as a relay in front of the hub: passes every request on and
    the hub's answer back, and when armed (``hold_next``) holds one answer until ``release``
    is set, after the hub applied the batch: the window in which a test kills the sender."""

    def __init__(self, target: str):
        super().__init__()
        self.RequestHandlerClass = _RelayHandler
        self.target = target
        self.hold_next = threading.Event()
        self.answers = []  # the hub's JSON answers, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/outcomes"


class _RelayHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {name: self.headers[name] for name in ("Content-Type", "Authorization") if self.headers.get(name)}
        try:
            answer = requests.post(self.server.target, data=body, headers=headers, timeout=60)
            status, payload, extra = answer.status_code, answer.content, answer.headers.get("Retry-After")
        except requests.RequestException:
            status, payload, extra = 502, b'{"error": "hub unreachable"}', None
        with self.server.lock:
            if status == 200:
                self.server.answers.append(json.loads(payload))
        if self.server.hold_next.is_set():
            self.server.hold_next.clear()
            self.server.held.set()
            self.server.release.wait(60)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if extra:
                self.send_header("Retry-After", extra)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender was killed while its answer was held: what the test wants

    def log_message(self, *args):
        pass
