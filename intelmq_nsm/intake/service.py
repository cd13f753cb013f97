"""The intake's logic behind its HTTP routes: authentication, submission, status, health.

The web stack (:mod:`intelmq_nsm.web`) has checked the framing, the media type, the size
and, once the body is in, its UTF-8 and JSON depth before these methods run; they check
what is the intake's own (feed code, case metadata, the report) and turn it into results
or a :class:`~intelmq_nsm.web.refusal.Refusal`. Every method may block (scrypt, SQLite)
and runs in the web stack's worker pool, never on its event loop.
"""

import datetime
import time
from dataclasses import dataclass
from typing import Optional

from intelmq_nsm.auth.tokens import TokenEntry, TokenVerifier
from intelmq_nsm.formats.case import case_problems
from intelmq_nsm.intake import edge
from intelmq_nsm.intake import spool as spool_mod
from intelmq_nsm.intake.cases import CaseBook, CaseTaken
from intelmq_nsm.intake.pump import PipelineState
from intelmq_nsm.intake.split import CSV, JSON, SubmissionError, split_submission
from intelmq_nsm.web import ratelimit
from intelmq_nsm.web.app import Request
from intelmq_nsm.web.bearer import TokenCheck
from intelmq_nsm.web.limits import Limits
from intelmq_nsm.web.ratelimit import Throttle
from intelmq_nsm.web.refusal import Refusal


@dataclass
class IntakeConfig:
    """What the intake does with a submission (its web limits are a :class:`~intelmq_nsm.web.limits.Limits`)."""

    max_report_bytes: int = 2 * 1024 * 1024
    send_wait: float = 5
    require_csv_case: bool = True


@dataclass
class SubmissionHead:
    """What the request head said of a submission, checked before its body is read."""

    entry: TokenEntry
    content_type: str
    feed_code: str
    case: Optional[dict]


class IntakeService:
    """Checks and stores submissions; the pump (the bot's main loop) sends them on."""

    def __init__(
        self,
        verifier: TokenVerifier,
        spool,
        config: IntakeConfig,
        logger,
        state: Optional[PipelineState] = None,
        outcomes=None,
        limits: Optional[Limits] = None,
        cases: Optional[CaseBook] = None,
    ):
        self.spool, self.config, self.logger = spool, config, logger
        #: Who owns which case and with whom it is shared; without a file, kept in memory.
        self.cases = cases if cases is not None else CaseBook(":memory:")
        # Cases submitted before cases had owners: each belongs to its first submitter.
        adopted = self.cases.adopt(spool.case_submitters())
        if adopted:
            logger.info("%d cases submitted before got their first submitter as owner.", adopted)
        #: The one object of the intake's web limits: its server and its rate limits.
        self.limits = limits or Limits()
        #: What became of the cases' findings (:class:`~intelmq_nsm.intake.outcomes.CaseOutcomes`); None: off.
        self.outcomes = outcomes
        self.throttle = Throttle(self.limits)
        self.tokens = TokenCheck(verifier, self.throttle, logger, realm="nsm-intake")
        self.state = state or PipelineState()

    def authenticate(self, request: Request) -> TokenEntry:
        """The request's token entry, counted against the token's rate limit; or a Refusal."""
        entry = self.tokens.authenticate(request)
        self.throttle.request(ratelimit.token(entry.id), "for this token")
        return entry

    def check_submission(self, entry: TokenEntry, request: Request) -> SubmissionHead:
        """What is checked of a submission before its body is read, beyond the web stack's checks."""
        if request.length == 0:
            raise Refusal(400, "empty", "The body is empty.")
        media, query = request.media_type, request.query
        edge.check_query(query)
        codes = query.get("feed_code")
        code = codes[-1] if codes else entry.feed_codes[0]
        if code not in entry.feed_codes:
            raise Refusal(403, "forbidden_feed_code", f"This token may not submit to feed code {code!r}.")
        case = edge.case_metadata(query, request.headers)
        if case is not None and media == JSON:
            raise Refusal(400, "bad_parameter", "An NSM report carries its case block itself; send no case metadata.")
        if case is not None or (media == CSV and self.config.require_csv_case):
            problems = case_problems(case or {}, require=media == CSV and self.config.require_csv_case)
            if problems:
                raise Refusal(400, "invalid_case", "The case metadata is not valid.", problems)
        if case and case.get("id"):
            # Before the body is read; an NSM report names its case in the body (see submit).
            try:
                self.cases.check(str(case["id"]), entry.researcher)
            except CaseTaken as exc:
                raise self._not_yours(exc, entry) from None
        return SubmissionHead(entry, media, code, case)

    def submit(self, head: SubmissionHead, text: str, body: bytes) -> tuple:
        """Split and durably store a submission (``text``: its body decoded): ``(status, response body)``."""
        entry = head.entry
        try:
            parts = split_submission(head.content_type, text, self.config.max_report_bytes)
        except SubmissionError as exc:
            raise Refusal(400, "invalid_report", str(exc), exc.problems) from None
        given = str((head.case or {}).get("id") or "")  # a CSV's or NDJSON's case metadata
        cases = sorted({part.case_id or given for part in parts} - {""})
        try:
            # The case is the first submitter's from now on; a case another researcher owns
            # and has not shared with this one is refused, and nothing is stored.
            owners = {case_id: self.cases.claim(case_id, entry.researcher) for case_id in cases}
        except CaseTaken as exc:
            raise self._not_yours(exc, entry) from None
        sid = edge.submission_id(entry.researcher, head.feed_code, head.content_type, head.case, body)
        now = time.time()
        observed = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()
        reports = []
        for part in parts:
            meta = {
                "researcher": entry.researcher,
                "feed_name": entry.feed_name,
                "feed_code": head.feed_code,
                "observed": observed,
                "submission_id": sid,
                "content_type": head.content_type,
            }
            if head.case:
                meta["case"] = head.case
            owner = owners.get(part.case_id or given)
            if owner:
                meta["case_owner"] = owner
            if len(parts) > 1:
                meta["first_record"] = part.first_record
            reports.append((meta, part.text.encode("utf-8")))
        records = sum(part.records for part in parts)
        record = spool_mod.Submission(
            sid, entry.researcher, entry.id, head.content_type, spool_mod.ACCEPTED, records, len(parts), now, now
        )
        stored, created = self.spool.accept(record, reports, cases)
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

    def _not_yours(self, exc: CaseTaken, entry: TokenEntry) -> Refusal:
        # Logged for the operators: a second team that should have been given the case, or worse.
        self.logger.info(
            "A submission of %s (token %s) on case %s was refused: the case is another researcher's.",
            entry.researcher,
            entry.id,
            exc.case_id,
        )
        return Refusal(403, "case_not_yours", str(exc))

    def status(self, entry, sid: str) -> tuple:
        if not edge.SUBMISSION_ID.match(sid):
            raise Refusal(400, "bad_submission_id", "A submission id is 64 lower-case hex digits.")
        stored = self.spool.get(sid)
        # Another researcher's submission is answered as unknown: ids tell nothing.
        if stored is None or stored.researcher != entry.researcher:
            raise Refusal(404, "not_found", "There is no submission with this id for this token.")
        return 200, stored.public()

    def case(self, entry, case_id: str, chart: bool = False) -> tuple:
        """What became of the findings of a case the token's researcher owns or shares:
        ``(status, JSON document)``, or ``(status, SVG text)`` with ``chart``."""
        if not edge.CASE_ID.fullmatch(case_id):
            raise Refusal(404, "not_found", "There is no case with this id for this token.")
        # Another researcher's case and an unknown one get the same answer: ids tell nothing.
        if not self.cases.may_speak(case_id, entry.researcher):
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

    def health(self) -> tuple:
        pending = self.spool.pending_count()
        ok = self.state.ok
        pipeline = {None: "unknown", True: "ok", False: "unavailable"}[ok]
        problem = self.tokens.file_problem()
        if problem:
            body = {"status": "misconfigured", "problem": problem, "pipeline": pipeline, "pending_reports": pending}
            return 503, body
        status = "ok" if ok is not False else "degraded"
        return 200, {"status": status, "pipeline": pipeline, "pending_reports": pending}
