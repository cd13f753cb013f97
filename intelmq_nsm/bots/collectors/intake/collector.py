"""Researcher intake collector: an authenticated HTTP endpoint where researchers submit reports."""

import base64
import json
import os
from typing import Optional, Union

from intelmq import VAR_STATE_PATH
from intelmq.lib.bot import CollectorBot
from intelmq.lib.exceptions import IntelMQException, PipelineError

from intelmq_nsm import event_contract as ec
from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.auth.tokens import TokenFileError, TokenVerifier, read_entries
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.intake.cases import CASE_FILE_NAME, CaseBook
from intelmq_nsm.intake.http import IntakeServer
from intelmq_nsm.intake.outcomes import CaseOutcomes
from intelmq_nsm.intake.pump import PipelineState, Pump
from intelmq_nsm.intake.service import IntakeConfig, IntakeService
from intelmq_nsm.intake.spool import SubmissionSpool
from intelmq_nsm.web.limits import Limits

#: The spooled reports' metadata → the report's fields (feed identity from the token).
FIELDS = {
    "researcher": "feed.provider",
    "feed_name": "feed.name",
    "feed_code": "feed.code",
    "observed": "time.observation",
    "submission_id": ec.SUBMISSION_ID,
    "content_type": ec.CONTENT_TYPE,
    "case": ec.CASE,
    "case_owner": ec.CASE_OWNER,
    "first_record": ec.FIRST_RECORD,
}


class NSMIntakeCollectorBot(CollectorBot):
    """Accept researchers' reports over HTTP (POST /v1/reports, Bearer token), store them durably and send them on."""

    http_host: str = "127.0.0.1"
    http_port: int = 8730
    token_file: Optional[str] = None
    spool_file: Optional[str] = None
    #: Who owns which case and with whom it is shared (``intelmq-nsm cases``): one file for
    #: every intake of the host; default nsm-cases.sqlite in IntelMQ's state folder.
    case_file: Optional[str] = None
    # The web limits' defaults are the web stack's (Limits), the submission's the service's.
    max_body_size: int = Limits.max_body_size
    max_report_size: int = IntakeConfig.max_report_bytes
    body_timeout: int = Limits.body_timeout
    requests_per_minute: int = Limits.requests_per_minute
    burst: int = Limits.burst
    send_wait: int = IntakeConfig.send_wait
    require_csv_case: bool = IntakeConfig.require_csv_case
    max_connections: int = Limits.max_connections
    max_connections_per_address: int = Limits.max_connections_per_address
    header_timeout: int = Limits.header_timeout
    max_header_size: int = Limits.max_header_size
    max_bytes_in_flight: int = Limits.max_bytes_in_flight
    workers: int = Limits.workers
    failed_auth_per_minute: int = Limits.failed_auth_per_minute
    failed_auth_burst: int = Limits.failed_auth_burst
    max_concurrent_hashes: int = 2
    trust_forwarded_for: bool = Limits.trust_forwarded_for
    #: The finding ledgers of the digest outputs that notify (their spool files or ledger
    #: URLs, sqlite:/// or postgresql://): researchers' GET /v1/cases/<id> reads them.
    ledgers: Union[str, list, None] = None
    #: The constituency registry (the constituency expert's ``database``): which
    #: constituencies share their organisations' names with researchers.
    constituency_registry: Union[str, list, None] = None

    _server: Optional[IntakeServer] = None
    _spool: Optional[SubmissionSpool] = None
    _cases: Optional[CaseBook] = None
    _pump: Optional[Pump] = None
    _outcomes: Optional[CaseOutcomes] = None

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
        if not self.token_file:
            raise ValueError("Parameter token_file is required.")
        spool_file = self.spool_file or os.path.join(VAR_STATE_PATH, f"{self.bot_id}-spool.sqlite")
        limits = Limits.from_parameters(self)
        config = IntakeConfig(
            max_report_bytes=self.max_report_size, send_wait=self.send_wait, require_csv_case=self.require_csv_case
        )
        self._spool = SubmissionSpool(spool_file)
        self._cases = CaseBook(self.case_file or os.path.join(VAR_STATE_PATH, CASE_FILE_NAME))
        state = PipelineState()
        verifier = TokenVerifier(self.token_file, max_hashing=self.max_concurrent_hashes)
        self._outcomes = CaseOutcomes(self.ledgers, self.constituency_registry) if self.ledgers else None
        service = IntakeService(
            verifier, self._spool, config, self.logger, state, self._outcomes, limits, cases=self._cases
        )
        service.tokens.file_problem()  # logged now, not at the first submission
        # The HTTP threads only store submissions; this bot's main loop alone sends
        # (IntelMQ's pipeline is not thread-safe).
        self._pump = Pump(self._spool, self._send, state, self.logger, refused=(PipelineError,))
        self._server = IntakeServer(service, self.http_host, self.http_port).start()
        pending = self._spool.pending_count()
        if pending:
            state.work.set()  # reports left from before a restart go first
        self.logger.info(
            "Listening on %s:%d; %d reports wait in the spool %s.",
            self.http_host,
            self._server.port,
            pending,
            spool_file,
        )

    def process(self):
        self._pump.wait_for_work(1.0)
        self._pump.pump()

    def _send(self, item):
        try:
            report = self.new_report()
            for key, value in item.meta.items():
                # Keys not in FIELDS are field names already (spools written before).
                report.add(FIELDS.get(key, key), value, overwrite=True)
            if self.accuracy is not None:
                report.add("feed.accuracy", self.accuracy, overwrite=True)
            report.add("raw", item.raw)
        except IntelMQException as exc:
            # Cannot happen with reports this bot built; if it does, the report must not
            # block the spool: it goes to the dump file with the reason and is forgotten.
            self.logger.error("Report %d of submission %s cannot be built: %s.", item.part, item.submission_id, exc)
            dumped = {**item.meta, "raw": base64.b64encode(item.raw).decode("ascii")}
            shortcuts.dump(self, f"{type(exc).__name__}: {exc}", json.dumps(dumped).encode("utf-8"))
            return
        # The feed fields come from the researcher's token, not from this bot's parameters.
        self.send_message(report, auto_add=False)

    def shutdown(self):
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._cases is not None:
            self._cases.close()
            self._cases = None
        if self._outcomes is not None:
            self._outcomes.close()
            self._outcomes = None

    @staticmethod
    def check(parameters: dict):
        parameters = without_empty(NSMIntakeCollectorBot, parameters)
        messages = []
        token_file = parameters.get("token_file")
        if not token_file:
            messages.append(["error", "Parameter token_file is required: create it with 'intelmq-nsm tokens add'."])
        else:
            try:
                entries = read_entries(token_file)
            except TokenFileError as exc:
                messages.append(["error", str(exc)])
            else:
                if not os.path.exists(token_file):
                    messages.append(["warning", f"The token file {token_file} does not exist yet: nobody can submit."])
                elif not any(entry.active for entry in entries):
                    messages.append(["warning", f"The token file {token_file} has no active token: nobody can submit."])
        ledgers = parameters.get("ledgers") or []
        for spec in [ledgers] if isinstance(ledgers, str) else ledgers:
            if "://" in str(spec) and not str(spec).startswith(
                ("sqlite:///", "postgresql://", "postgresql+psycopg://")
            ):
                messages.append(
                    ["error", f"Parameter ledgers: {spec!r} is neither a file nor a sqlite:/// or postgresql:// URL."]
                )
        try:
            limits = Limits.from_parameters(parameters)
        except ValueError as exc:
            messages.append(["error", str(exc)])
        else:
            if parameters.get("max_report_size", NSMIntakeCollectorBot.max_report_size) > limits.max_body_size:
                messages.append(
                    ["warning", "Parameter max_report_size is larger than max_body_size; no report is split."]
                )
        return messages or None


BOT = NSMIntakeCollectorBot
