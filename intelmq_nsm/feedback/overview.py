"""The IBD operators' overview: per organisation its open findings and their age, per case
what became of its findings with the chart, the latest answers with their comments, and the
digests that failed and contacts that are unreachable. At a hub also what its downstream
CERTs reported (``POST /v1/outcomes``): per case and constituency, and per CERT.

``GET /operators/login`` shows a form for an operator token (from ``operator_tokens_file``,
the intake's token format: salted scrypt hashes at rest); ``POST /operators/login`` checks
it and sets a session cookie (HMAC-signed with the service's secret, 8 hours,
``HttpOnly; Secure; SameSite=Strict``), so the service belongs behind TLS or the host's
reverse proxy. ``GET /operators`` is the overview, ``GET /operators/cases/<id>/chart.svg``
a case's chart. Without a valid session every one of them answers the login page (or 401).
All HTML is autoescaped: an owner's comment is shown as text, whatever it holds.
"""

import datetime
import http.cookies
import secrets
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs

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
_SESSION_LABEL = b"nsm-operator-session/1\0"
_LOGIN_LABEL = b"nsm-operator-login/1\0"
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


class OperatorSessions:
    """The operators' session cookies and login form tokens, signed with the service's secret."""

    def __init__(self, signer: LinkSigner):
        self.signer = signer

    def cookie(self, token_id: str, now: float) -> str:
        """The ``Set-Cookie`` value of a session of ``token_id`` that starts ``now``."""
        text = f"{token_id}.{int(now + SESSION_SECONDS)}"
        value = f"{text}.{self.signer.sign(_SESSION_LABEL, text)}"
        return f"{COOKIE}={value}; Path=/operators; Max-Age={SESSION_SECONDS}; HttpOnly; Secure; SameSite=Strict"

    def token_id(self, request: Request) -> Optional[str]:
        """The token id of the request's valid session, None without one."""
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(request.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            return None
        morsel = cookie.get(COOKIE)
        if morsel is None or morsel.value.count(".") != 2:
            return None
        token_id, expires, mac = morsel.value.split(".")
        if not self.signer.signed(_SESSION_LABEL, f"{token_id}.{expires}", mac):
            return None
        if not expires.isdigit() or int(expires) <= time.time():
            return None
        return token_id

    def login_form(self) -> dict:
        """A fresh nonce and its form token for the login form."""
        nonce = secrets.token_urlsafe(16)
        return {"nonce": nonce, "csrf": self.signer.sign(_LOGIN_LABEL, nonce)}

    def login_form_ok(self, nonce: str, csrf: str) -> bool:
        return bool(nonce) and self.signer.signed(_LOGIN_LABEL, nonce, csrf)


class OperatorsOverview:
    """The operators' login, overview and charts (off without ``operator_tokens_file``)."""

    def __init__(self, context: ServiceContext):
        self.context = context
        self.sessions = OperatorSessions(context.signer)
        self.ledger, self.logger = context.store.ledger, context.logger

    def limited(self, request: Request) -> None:
        """The address's rate limit, and its failed logins."""
        key = ratelimit.address(request.remote)
        self.context.throttle.request(key)
        self.context.throttle.before_trying(key)

    def login_page(self, status: int, message: str = "") -> Response:
        return html(status, "operators-login.html.j2", lang="en", message=message, **self.sessions.login_form())

    def overview_off(self) -> Response:
        return html(503, "operators-login.html.j2", lang="en", message="The overview is off.", nonce="", csrf="")

    def get_login(self, request: Request) -> Response:
        self.limited(request)
        if self.context.operator_tokens is None:
            return self.overview_off()
        return self.login_page(200)

    def post_login(self, request: Request) -> Response:
        self.limited(request)
        if self.context.operator_tokens is None:
            return self.overview_off()
        try:
            form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            return self.login_page(400, "This form cannot be processed.")
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
        headers = {**HTML_HEADERS, "Location": "/operators", "Set-Cookie": self.sessions.cookie(entry.id, time.time())}
        return Response(303, b"", "text/plain; charset=utf-8", headers)

    def get_overview(self, request: Request) -> Response:
        self.limited(request)
        if self.sessions.token_id(request) is None:
            return self.login_page(401, "Log in with an operator token.")
        now = time.time()
        figures = overview(self.ledger, now)
        delivery = delivery_problems(self.context.store.spool_file)
        stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return html(200, "operators.html.j2", lang="en", as_of=stamp, delivery=delivery, **figures)

    def get_chart(self, request: Request) -> Response:
        self.limited(request)
        if self.sessions.token_id(request) is None:
            raise Refusal(401, "unauthorized", "Log in with an operator token.")
        case_id = request.args[0]
        outcome = case_outcome(self.ledger, case_id, now=time.time()) if CASE_ID.fullmatch(case_id) else None
        if outcome is None:
            raise Refusal(404, "not_found", "There is no case with this id.")
        svg = case_chart(case_id, outcome["daily"]).encode("utf-8")
        return Response(200, svg, "image/svg+xml; charset=utf-8", dict(HTML_HEADERS))

    def add_to(self, routes: Routes) -> None:
        login = Endpoint(self.post_login, media_types=(FORM_TYPE,), max_body=MAX_FORM_BYTES)
        routes.add(r"/operators/login", get=Endpoint(self.get_login), post=login)
        routes.add(r"/operators", get=Endpoint(self.get_overview))
        routes.add(r"/operators/cases/([^/]+)/chart\.svg", get=Endpoint(self.get_chart))
