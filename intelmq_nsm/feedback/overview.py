"""The IBD operators' overview: per organisation its open findings and their age, per case
what became of its findings with the chart, the latest answers with their comments, and the
digests that failed and contacts that are unreachable. At a hub also what its downstream
CERTs reported (``POST /v1/outcomes``): per case and constituency, and per CERT.

``GET /operators/login`` shows a form for an operator token (from ``operator_tokens_file``,
the intake's token format: salted scrypt hashes at rest); ``POST /operators/login`` checks
it and starts a session: a cookie with a random session id (8 hours at most,
``HttpOnly; Secure; SameSite=Strict``), so the service belongs behind TLS or the host's
reverse proxy. ``GET /operators`` is the overview, ``GET /operators/cases/<id>/chart.svg``
a case's chart, ``POST /operators/logout`` ends the session. Every request checks the
session's token again: revoked or expired, ``401`` at once. Without a valid session every
one of them answers the login page (or 401). All HTML is autoescaped, and what comes from
outside (an owner's comment, names, ids) is shown inert (``feedback/shown.py``).
"""

import datetime
import hashlib
import hmac
import http.cookies
import secrets
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs

from intelmq_nsm.auth.tokens import parse_time
from intelmq_nsm.digest.ledger.chart import case_chart
from intelmq_nsm.digest.ledger.outcome import case_outcome
from intelmq_nsm.digest.ledger.stats import DAY, UNRESOLVED
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.feedback.links import LinkSigner
from intelmq_nsm.feedback.pages import FORM_TYPE, HTML_HEADERS, MAX_FORM_BYTES, html
from intelmq_nsm.intake.edge import CASE_ID
from intelmq_nsm.web import ratelimit
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.refusal import Refusal

COOKIE = "nsm_operator"
SESSION_SECONDS = 8 * 3600
_LOGIN_LABEL = b"nsm-operator-login/1\0"
#: The log-out form holds its form token only.
LOGOUT_FORM_BYTES = 1024
#: Cases on the overview at most (the most recently seen), and answers in its list.
MAX_CASES = 100
MAX_ANSWERS = 50


def _age_days(seconds: float) -> float:
    return round(max(0.0, seconds) / DAY, 1)


def organisations(ledger, now: float) -> list:
    """Per organisation with unresolved findings: how many, the oldest's and the median age (days
    since first notified, or first seen if not yet notified)."""
    groups = defaultdict(list)
    names = {}
    for org_id, name, constituency, first_seen, first_notified in ledger.first_times(UNRESOLVED):
        names[org_id] = (name or org_id, constituency)
        groups[org_id].append(now - (first_notified or first_seen))
    result = [
        {
            "org_id": org_id,
            "name": names[org_id][0],
            "constituency": names[org_id][1],
            "open": len(ages),
            "oldest_days": _age_days(max(ages)),
            "median_days": _age_days(statistics.median(ages)),
        }
        for org_id, ages in groups.items()
    ]
    return sorted(result, key=lambda o: (-o["open"], -o["oldest_days"], o["org_id"]))


def cases(ledger, now: float) -> list:
    ids = ledger.case_ids(limit=MAX_CASES)
    return [case_outcome(ledger, case_id, share_names=lambda _: True, now=now) for case_id in ids]


def latest_answers(ledger) -> list:
    return ledger.answers(newest_first=True, limit=MAX_ANSWERS)


def delivery_problems(spool_file) -> dict:
    """The digest output's failed digests and unreachable contacts (``intelmq_nsm.digest.health``),
    read from its spool file when the service knows it."""
    if not spool_file or not Path(spool_file).exists():
        return {"failed": [], "unreachable": []}
    from intelmq_nsm.digest.health import summary

    return summary(spool_file)


def overview(ledger, now=None) -> dict:
    now = time.time() if now is None else now
    return {
        "organisations": organisations(ledger, now),
        "cases": cases(ledger, now),
        "answers": latest_answers(ledger),
        "certs": ledger.received(),
    }


@dataclass
class Session:
    token_id: str
    operator: str
    expires: float
    #: The form token of this session's log-out form.
    csrf: str


class OperatorSessions:
    """The operators' sessions, kept by this service process (a restart ends them all), and
    the login form's tokens, signed with the service's secret.

    The cookie holds a random session id and nothing else; the service knows whose token
    began the session. Every request checks that token again (:meth:`TokenCheck.recheck`):
    a token revoked or expired meanwhile ends its sessions at once. ``end`` (the log-out)
    forgets a session, so that its cookie opens nothing any more, wherever it was copied."""

    #: Sessions kept at most; past it the oldest go first (logins are rate limited).
    MAX_SESSIONS = 10000

    def __init__(self, signer: LinkSigner):
        self.signer = signer
        self._sessions = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(session_id: str) -> str:
        # Kept by a hash of the id: the ids themselves are in no memory dump of the table.
        return hashlib.sha256(session_id.encode("utf-8")).hexdigest()

    def start(self, entry, now: float) -> str:
        """A new session of the token ``entry``: the ``Set-Cookie`` value that carries it."""
        session_id = secrets.token_urlsafe(32)
        expires = now + SESSION_SECONDS
        if entry.expires:
            expires = min(expires, parse_time(entry.expires).timestamp())
        session = Session(entry.id, entry.researcher, expires, secrets.token_urlsafe(16))
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            while len(self._sessions) >= self.MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[self._key(session_id)] = session
        max_age = max(1, int(expires - now))
        return f"{COOKIE}={session_id}; Path=/operators; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"

    @staticmethod
    def _session_id(request: Request) -> Optional[str]:
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(request.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            return None
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None and morsel.value else None

    def session(self, request: Request, now: Optional[float] = None) -> Optional[Session]:
        """The request's live session, None without one."""
        session_id = self._session_id(request)
        if session_id is None:
            return None
        now = time.time() if now is None else now
        key = self._key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires <= now:
                del self._sessions[key]
                session = None
        return session

    def end(self, request: Request) -> Optional[Session]:
        """Forget the request's session (the log-out); the session it was, if any."""
        session_id = self._session_id(request)
        if session_id is None:
            return None
        with self._lock:
            return self._sessions.pop(self._key(session_id), None)

    def end_all_of(self, token_id: str) -> int:
        """Forget every session of the token ``token_id`` (revoked or expired)."""
        with self._lock:
            ended = [k for k, s in self._sessions.items() if s.token_id == token_id]
            for key in ended:
                del self._sessions[key]
        return len(ended)

    @staticmethod
    def ended_cookie() -> str:
        """The ``Set-Cookie`` value that removes the session cookie from the browser."""
        return f"{COOKIE}=; Path=/operators; Max-Age=0; HttpOnly; Secure; SameSite=Strict"

    def login_form(self) -> dict:
        """A fresh nonce and its form token for the login form."""
        nonce = secrets.token_urlsafe(16)
        return {"nonce": nonce, "csrf": self.signer.sign(_LOGIN_LABEL, nonce)}

    def login_form_ok(self, nonce: str, csrf: str) -> bool:
        return bool(nonce) and self.signer.signed(_LOGIN_LABEL, nonce, csrf)


class OperatorsOverview:
    """The operators' login, overview, charts and log-out (off without ``operator_tokens_file``).

    Every refusal is an HTML page (the web stack's too: a form without Content-Length, too
    large or of another type), but for the chart's, which an ``<img>`` asks for."""

    def __init__(self, context: ServiceContext):
        self.context = context
        self.sessions = OperatorSessions(context.signer)
        self.ledger, self.logger = context.store.ledger, context.logger

    def limited(self, request: Request) -> None:
        """The address's rate limit, and its failed logins."""
        key = ratelimit.address(request.remote)
        self.context.throttle.request(key)
        self.context.throttle.before_trying(key)

    def login_page(self, status: int, message: str = "", headers=None) -> Response:
        return html(
            status, "operators-login.html.j2", headers, lang="en", message=message, **self.sessions.login_form()
        )

    def overview_off(self) -> Response:
        return html(503, "operators-login.html.j2", lang="en", message="The overview is off.", nonce="", csrf="")

    def refused_page(self, refusal: Refusal, request: Optional[Request]) -> Response:
        """A refusal as the operators' page that says it (its headers kept: Retry-After)."""
        return html(
            refusal.status,
            "operators-login.html.j2",
            refusal.headers,
            lang="en",
            message=refusal.message,
            nonce="",
            csrf="",
        )

    def operator(self, request: Request) -> Session:
        """The request's session, while the token that began it is valid; else a 401 Refusal
        (a revoked or expired token ends its sessions at once)."""
        session = self.sessions.session(request)
        if session is None:
            raise Refusal(401, "unauthorized", "Log in with an operator token.")
        if self.context.operator_tokens is None:
            raise Refusal(503, "not_configured", "The overview is off.")
        try:
            self.context.operator_tokens.recheck(session.token_id)
        except Refusal as refusal:
            if refusal.status == 401:
                ended = self.sessions.end_all_of(session.token_id)
                self.logger.info(
                    "Operator %s (token %s): %s %d session(s) ended.",
                    session.operator,
                    session.token_id,
                    refusal.message,
                    ended,
                )
                raise Refusal(401, "unauthorized", f"{refusal.message} Log in with a valid operator token.") from None
            raise
        return session

    def get_login(self, request: Request) -> Response:
        self.limited(request)
        if self.context.operator_tokens is None:
            return self.overview_off()
        return self.login_page(200)

    def _form(self, request: Request) -> dict:
        try:
            return {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            raise Refusal(400, "bad_form", "This form cannot be processed.") from None

    def post_login(self, request: Request) -> Response:
        self.limited(request)
        if self.context.operator_tokens is None:
            return self.overview_off()
        form = self._form(request)
        if not self.sessions.login_form_ok(form.get("nonce", ""), form.get("csrf", "")):
            return self.login_page(403, "The form has expired or is incomplete; try again.")
        try:
            entry = self.context.operator_tokens.check(form.get("token", "").strip(), request.remote)
        except Refusal as refusal:
            if refusal.status == 401:
                self.logger.info("An operator login from %s was refused.", request.remote)
                return self.login_page(401, "This token is not valid.")
            if refusal.status == 503:
                return self.login_page(503, "Operator tokens cannot be checked now; try again later.")
            raise
        self.logger.info("Operator %s (token %s) logged in from %s.", entry.researcher, entry.id, request.remote)
        cookie = self.sessions.start(entry, time.time())
        headers = {**HTML_HEADERS, "Location": "/operators", "Set-Cookie": cookie}
        return Response(303, b"", "text/plain; charset=utf-8", headers)

    def post_logout(self, request: Request) -> Response:
        """End the session (its cookie opens nothing any more) and go back to the login form."""
        self.limited(request)
        form = self._form(request)
        session = self.sessions.session(request)
        if session is not None:
            if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
                raise Refusal(403, "bad_form", "The form has expired or is incomplete; reload the overview.")
            self.sessions.end(request)
            self.logger.info("Operator %s (token %s) logged out.", session.operator, session.token_id)
        headers = {**HTML_HEADERS, "Location": "/operators/login", "Set-Cookie": self.sessions.ended_cookie()}
        return Response(303, b"", "text/plain; charset=utf-8", headers)

    def get_overview(self, request: Request) -> Response:
        self.limited(request)
        try:
            session = self.operator(request)
        except Refusal as refusal:
            if refusal.status != 401:
                raise
            return self.login_page(401, refusal.message, {"Set-Cookie": self.sessions.ended_cookie()})
        now = time.time()
        figures = overview(self.ledger, now)
        delivery = delivery_problems(self.context.store.spool_file)
        stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return html(
            200,
            "operators.html.j2",
            lang="en",
            as_of=stamp,
            delivery=delivery,
            operator=session.operator,
            logout_csrf=session.csrf,
            **figures,
        )

    def get_chart(self, request: Request) -> Response:
        self.limited(request)
        self.operator(request)
        case_id = request.args[0]
        outcome = case_outcome(self.ledger, case_id, now=time.time()) if CASE_ID.fullmatch(case_id) else None
        if outcome is None:
            raise Refusal(404, "not_found", "There is no case with this id.")
        svg = case_chart(case_id, outcome["daily"]).encode("utf-8")
        return Response(200, svg, "image/svg+xml; charset=utf-8", dict(HTML_HEADERS))

    def add_to(self, routes: Routes) -> None:
        page = self.refused_page
        login = Endpoint(self.post_login, media_types=(FORM_TYPE,), max_body=MAX_FORM_BYTES, refusal=page)
        logout = Endpoint(self.post_logout, media_types=(FORM_TYPE,), max_body=LOGOUT_FORM_BYTES, refusal=page)
        routes.add(r"/operators/login", get=Endpoint(self.get_login, refusal=page), post=login)
        routes.add(r"/operators/logout", post=logout)
        routes.add(r"/operators", get=Endpoint(self.get_overview, refusal=page))
        routes.add(r"/operators/cases/([^/]+)/chart\.svg", get=Endpoint(self.get_chart))
