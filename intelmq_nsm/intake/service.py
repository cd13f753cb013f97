"""The intake's logic behind its HTTP handler: authentication, limits, submission, status, health.

Transport-free: the handler passes headers, query and body in and turns the results (or
a :class:`~intelmq_nsm.web.refusal.Refusal`) into HTTP answers. Every method may block
(scrypt, SQLite) and runs in the web stack's worker pool, never on its event loop.
"""

import datetime
import threading
import time
from dataclasses import dataclass
from typing import Optional

from intelmq_nsm.formats.case import case_problems
from intelmq_nsm.intake import edge, nesting
from intelmq_nsm.intake import spool as spool_mod
from intelmq_nsm.intake.pump import PipelineState
from intelmq_nsm.intake.split import CSV, JSON, NDJSON, SubmissionError, split_submission
from intelmq_nsm.intake.tokens import TokenFileError, VerifierBusy
from intelmq_nsm.web.refusal import Refusal


@dataclass
class IntakeConfig:
    max_body_bytes: int = 50 * 1024 * 1024
    max_report_bytes: int = 2 * 1024 * 1024
    body_timeout: float = 30.0
    requests_per_minute: int = 60
    burst: int = 30
    send_wait: float = 5.0
    require_csv_case: bool = True
    #: Failed authentications per client address, and per token id, and minute; burst.
    failed_auth_per_minute: int = 30
    failed_auth_burst: int = 10


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``per_minute``/60 per second."""

    #: Buckets kept before the full ones (nothing taken lately) are forgotten.
    MAX_BUCKETS = 10000

    def __init__(self, per_minute: int, burst: int):
        self.rate, self.burst = per_minute / 60.0, max(1, burst)
        self._buckets = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), level + (now - stamp) * self.rate)

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until the next request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self.MAX_BUCKETS:
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self.burst}
            level = self._level(key, now)
            if level >= 1:
                self._buckets[key] = (level - 1, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate

    def wait(self, key: str) -> float:
        """What :meth:`take` would answer, without taking."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            level = self._level(key, time.monotonic())
        return 0.0 if level >= 1 else (1 - level) / self.rate


def _retry_after(wait: float) -> dict:
    return {"Retry-After": str(max(1, round(wait + 0.5)))}


class IntakeService:
    """Checks and stores submissions; the pump (the bot's main loop) sends them on."""

    def __init__(
        self, verifier, spool, config: IntakeConfig, logger, state: Optional[PipelineState] = None, outcomes=None
    ):
        self.verifier, self.spool, self.config, self.logger = verifier, spool, config, logger
        #: What became of the cases' findings (:class:`~intelmq_nsm.intake.outcomes.CaseOutcomes`); None: off.
        self.outcomes = outcomes
        self.limiter = RateLimiter(config.requests_per_minute, config.burst)
        self.failures = RateLimiter(config.failed_auth_per_minute, config.failed_auth_burst)
        self.state = state or PipelineState()
        self._told_problem: Optional[str] = None

    @staticmethod
    def bearer(authorization: Optional[str]) -> Optional[str]:
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
        return None

    def _failure_limit(self, keys: list) -> None:
        wait = max(self.failures.wait(key) for key in keys)
        if wait:
            raise Refusal(
                429,
                "too_many_failures",
                f"Too many failed authentications from this address or for this token; try again in {wait:.0f} s.",
                headers=_retry_after(wait),
            )

    def screen(self, authorization: Optional[str], remote: str = "-") -> None:
        """The failure limits without the worker pool (in memory, quick): a flood of
        failing clients is refused before it queues for the workers."""
        token = self.bearer(authorization)
        if self.verifier.is_verified(token):
            return
        token_id = self.verifier.token_id(token)
        self._failure_limit([f"address {remote}"] + ([f"token {token_id}"] if token_id else []))

    def authenticate(self, authorization: Optional[str], remote: str = "-"):
        """The token's entry, or a Refusal. Failed attempts are limited per client address
        and per token id before any hash is computed."""
        token = self.bearer(authorization)
        keys = [f"address {remote}"]

        def admit(token_id: str) -> None:
            keys.append(f"token {token_id}")
            self._failure_limit(keys)

        try:
            entry, reason = self.verifier.verify(token, admit)
        except TokenFileError as exc:
            raise self._misconfigured(str(exc)) from None
        except VerifierBusy:
            raise Refusal(
                503, "busy", "Too many token checks at once; try again shortly.", headers=_retry_after(2)
            ) from None
        if entry is None:
            for key in keys:
                self.failures.take(key)
            raise Refusal(401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="nsm-intake"'})
        wait = self.limiter.take(entry.id)
        if wait:
            raise Refusal(
                429,
                "rate_limited",
                f"Too many requests for this token; try again in {wait:.0f} s.",
                [],
                _retry_after(wait),
            )
        return entry

    def check_submission(self, entry, content_type: Optional[str], length: Optional[int], query: dict, headers) -> dict:
        """Everything that is checked before the body is read; returns the submission's context."""
        media = edge.media_type(content_type)
        length = edge.content_length(length, self.config.max_body_bytes)
        edge.check_query(query)
        codes = query.get("feed_code")
        code = codes[-1] if codes else entry.feed_codes[0]
        if code not in entry.feed_codes:
            raise Refusal(403, "forbidden_feed_code", f"This token may not submit to feed code {code!r}.")
        case = edge.case_metadata(query, headers)
        if case is not None and media == JSON:
            raise Refusal(400, "bad_parameter", "An NSM report carries its case block itself; send no case metadata.")
        if case is not None or (media == CSV and self.config.require_csv_case):
            problems = case_problems(case or {}, require=media == CSV and self.config.require_csv_case)
            if problems:
                raise Refusal(400, "invalid_case", "The case metadata is not valid.", problems)
        return {"content_type": media, "length": length, "feed_code": code, "case": case}

    def submit(self, entry, context: dict, body: bytes) -> tuple:
        """Check, split and durably store a submission: ``(status, response body)``."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal(
                400, "invalid_encoding", f"The body is not valid UTF-8 (byte {exc.start}).", [("$", "is not UTF-8")]
            ) from None
        text = text.lstrip("\ufeff")
        if context["content_type"] in (JSON, NDJSON):
            # Before any parser: theirs recurse once per level.
            depth = nesting.max_depth(text, per_line=context["content_type"] == NDJSON)
            if depth > nesting.MAX_DEPTH:
                where = "a line" if context["content_type"] == NDJSON else "the report"
                raise Refusal(
                    400,
                    "too_deeply_nested",
                    f"In {where}, arrays and objects nest {depth} levels deep; "
                    f"this intake accepts at most {nesting.MAX_DEPTH}.",
                    [("$", f"nests deeper than {nesting.MAX_DEPTH} levels")],
                )
        try:
            parts = split_submission(context["content_type"], text, self.config.max_report_bytes)
        except SubmissionError as exc:
            raise Refusal(400, "invalid_report", str(exc), exc.problems) from None
        sid = edge.submission_id(entry.researcher, context["feed_code"], context["content_type"], context["case"], body)
        now = time.time()
        observed = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()
        reports = []
        for part in parts:
            meta = {
                "researcher": entry.researcher,
                "feed_name": entry.feed_name,
                "feed_code": context["feed_code"],
                "observed": observed,
                "submission_id": sid,
                "content_type": context["content_type"],
            }
            if context["case"]:
                meta["case"] = context["case"]
            if len(parts) > 1:
                meta["first_record"] = part.first_record
            reports.append((meta, part.text.encode("utf-8")))
        records = sum(part.records for part in parts)
        record = spool_mod.Submission(
            sid, entry.researcher, entry.id, context["content_type"], spool_mod.ACCEPTED, records, len(parts), now, now
        )
        cases = {part.case_id for part in parts} | {(context["case"] or {}).get("id") or ""}
        stored, created = self.spool.accept(record, reports, sorted(c for c in cases if c))
        if created:
            self.logger.info(
                "Accepted submission %s from %s (token %s): %d records in %d reports.",
                sid,
                entry.researcher,
                entry.id,
                records,
                len(parts),
            )
            self.state.work.set()
            # The reports are durable already; waiting a moment lets the answer say whether
            # they are in the pipeline (queued) or waiting for it (spooled).
            self.state.wait_until(lambda: self.spool.get(sid).state != spool_mod.ACCEPTED, self.config.send_wait)
            stored = self.spool.get(sid)
        else:
            self.logger.info("Submission %s from %s (token %s) repeated; nothing new.", sid, entry.researcher, entry.id)
        body = stored.public()
        body["duplicate"] = not created
        return 202, body

    def status(self, entry, sid: str) -> tuple:
        if not edge.SUBMISSION_ID.match(sid):
            raise Refusal(400, "bad_submission_id", "A submission id is 64 lower-case hex digits.")
        stored = self.spool.get(sid)
        # Another researcher's submission is answered as unknown: ids tell nothing.
        if stored is None or stored.researcher != entry.researcher:
            raise Refusal(404, "not_found", "There is no submission with this id for this token.")
        return 200, stored.public()

    def case(self, entry, case_id: str, chart: bool = False) -> tuple:
        """What became of the findings of a case the token's researcher reported on:
        ``(status, JSON document)``, or ``(status, SVG text)`` with ``chart``."""
        if not edge.CASE_ID.fullmatch(case_id):
            raise Refusal(404, "not_found", "There is no case with this id for this token.")
        # Another researcher's case and an unknown one get the same answer: ids tell nothing.
        if not self.spool.submitted_case(entry.researcher, case_id):
            raise Refusal(404, "not_found", "There is no case with this id for this token.")
        if self.outcomes is None:
            raise Refusal(503, "not_configured", "This intake is not connected to the finding ledger (ledgers).")
        try:
            outcome = self.outcomes.outcome(case_id)
        except Exception:
            self.logger.exception("The ledger could not be read for case %s.", case_id)
            raise Refusal(503, "unavailable", "The finding ledger cannot be read now; try again later.") from None
        if outcome is None:
            outcome = self.outcomes.empty(case_id)
        if chart:
            return 200, self.outcomes.chart(outcome)
        return 200, outcome

    def _misconfigured(self, problem: str) -> Refusal:
        if problem != self._told_problem:
            self._told_problem = problem
            self.logger.error("Submissions are refused until the token file is mended: %s", problem)
        return Refusal(
            503,
            "server_misconfigured",
            "The intake's configuration has a problem (its token file); its operators must mend it. "
            "Nothing was accepted; try again later.",
            headers=_retry_after(60),
        )

    def health(self) -> tuple:
        pending = self.spool.pending_count()
        ok = self.state.ok
        pipeline = {None: "unknown", True: "ok", False: "unavailable"}[ok]
        problem = self.verifier.check_file()
        if problem:
            self._misconfigured(problem)
            body = {"status": "misconfigured", "problem": problem, "pipeline": pipeline, "pending_reports": pending}
            return 503, body
        self._told_problem = None
        status = "ok" if ok is not False else "degraded"
        return 200, {"status": status, "pipeline": pipeline, "pending_reports": pending}
