"""A real intake HTTP server on loopback with its spool, and the bot's pump in a thread of
its own, sending into a list (or failing like a pipeline that is down)."""

import http.client
import json
import logging
import threading

import pytest

from intelmq_nsm.auth.tokens import TokenVerifier, add_token, revoke_token
from intelmq_nsm.intake.cases import CaseBook
from intelmq_nsm.intake.http import IntakeServer
from intelmq_nsm.intake.pump import Pump
from intelmq_nsm.intake.service import IntakeConfig, IntakeService
from intelmq_nsm.intake.spool import SubmissionSpool
from intelmq_nsm.web.limits import PARAMETERS, Limits


class PipelineDown(Exception):
    pass


class Intake:
    def __init__(self, tmp_path, **config):
        self.tmp_path = tmp_path
        self.token_file = tmp_path / "tokens.json"
        _, self.token = add_token(self.token_file, "DIVD", ["divd", "divd-csv"])
        _, self.other_token = add_token(self.token_file, "Example Research", ["example"])
        revoked, self.revoked_token = add_token(self.token_file, "Former Research", ["former"])
        revoke_token(self.token_file, revoked.id)
        self.logger = logging.getLogger("tests.intake")
        self.spool = SubmissionSpool(tmp_path / "spool.sqlite")
        self.cases = CaseBook(tmp_path / "cases.sqlite")
        config.setdefault("send_wait", 2)
        # The web limits (by their parameter names) make one object; the rest is the service's.
        limits = Limits.from_parameters({name: config.pop(name) for name in PARAMETERS if name in config})
        outcomes = config.pop("outcomes", None)
        self.service = IntakeService(
            TokenVerifier(self.token_file),
            self.spool,
            IntakeConfig(**config),
            self.logger,
            None,
            outcomes,
            limits,
            cases=self.cases,
        )
        self.pump = Pump(self.spool, self._send, self.service.state, self.logger, refused=(PipelineDown,))
        self.server = IntakeServer(self.service, "127.0.0.1", 0).start()
        self.port = self.server.port
        self.sent = []
        self.pipeline_up = True
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self.pump.run, args=(self._stop,), daemon=True)
        self._sender.start()

    def _send(self, item):
        if not self.pipeline_up:
            raise PipelineDown
        self.sent.append(item)

    def close(self):
        self._stop.set()
        self._sender.join(timeout=5)
        self.server.stop()
        self.spool.close()
        self.cases.close()

    def request(self, method, path, body=None, token=None, content_type=None, headers=None):
        """One request on a fresh connection: ``(status, JSON body, response headers)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data else None, dict(response.getheaders())
        finally:
            conn.close()

    def post(self, body, content_type="application/json", token=..., query=""):
        token = self.token if token is ... else token
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self.request("POST", "/v1/reports" + query, body, token, content_type)


@pytest.fixture
def make_intake(tmp_path):
    made = []

    def make(**config):
        path = tmp_path / f"intake{len(made)}"
        path.mkdir()
        intake = Intake(path, **config)
        made.append(intake)
        return intake

    yield make
    for intake in made:
        intake.close()


@pytest.fixture
def intake(make_intake):
    return make_intake()
