"""The IBD operators' overview: per organisation its open findings and their age, per case
what became of its findings with the chart, and the latest answers with their comments.

``GET /operators/login`` shows a form for an operator token (from ``operator_tokens_file``,
the intake's token format: salted scrypt hashes at rest); ``POST /operators/login`` checks
it and sets a session cookie (HMAC-signed with the service's secret, 8 hours,
``HttpOnly; Secure; SameSite=Strict``), so the service belongs behind TLS or the host's
reverse proxy. ``GET /operators`` is the overview, ``GET /operators/cases/<id>/chart.svg``
a case's chart. Without a valid session every one of them answers the login page (or 401).
All HTML is autoescaped: an owner's comment is shown as text, whatever it holds.
"""

import datetime
import hmac
import http.cookies
import secrets
import statistics
import time
from collections import defaultdict
from urllib.parse import parse_qs

from intelmq_nsm.digest.ledger.chart import case_chart
from intelmq_nsm.digest.ledger.outcome import case_outcome
from intelmq_nsm.digest.ledger.stats import DAY, UNRESOLVED
from intelmq_nsm.feedback.pages import FORM_TYPE, HTML_HEADERS, MAX_FORM_BYTES, html
from intelmq_nsm.intake.edge import CASE_ID
from intelmq_nsm.intake.tokens import TokenFileError, VerifierBusy
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


def overview(ledger, now=None) -> dict:
    now = time.time() if now is None else now
    return {"organisations": organisations(ledger, now), "cases": cases(ledger, now), "answers": latest_answers(ledger)}


def add_routes(routes: Routes, context) -> None:
    """The operators' login, overview and charts (off without ``operator_tokens_file``)."""
    verifier = context.extra.get("operator_verifier")
    signer, logger, ledger = context.signer, context.logger, context.store.ledger

    def session_value(token_id: str, now: float) -> str:
        text = f"{token_id}.{int(now + SESSION_SECONDS)}"
        return f"{text}.{signer._mac(_SESSION_LABEL, text)}"

    def session(request: Request):
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(request.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            return None
        morsel = cookie.get(COOKIE)
        if morsel is None or morsel.value.count(".") != 2:
            return None
        token_id, expires, mac = morsel.value.split(".")
        try:
            good = hmac.compare_digest(signer._mac(_SESSION_LABEL, f"{token_id}.{expires}"), mac)
        except (TypeError, UnicodeEncodeError):
            return None
        if not good or not expires.isdigit() or int(expires) <= time.time():
            return None
        return token_id

    def limited(request: Request) -> None:
        wait = max(context.limiter.take(f"address {request.remote}"), context.failures.wait(request.remote))
        if wait:
            raise Refusal(429, "rate_limited", "Too many requests; try again in a minute.")

    def login_page(status: int, message: str = "") -> Response:
        nonce = secrets.token_urlsafe(16)
        return html(
            status,
            "operators-login.html.j2",
            lang="en",
            message=message,
            nonce=nonce,
            csrf=signer._mac(_LOGIN_LABEL, nonce),
        )

    def get_login(request: Request) -> Response:
        limited(request)
        if verifier is None:
            return html(503, "operators-login.html.j2", lang="en", message="The overview is off.", nonce="", csrf="")
        return login_page(200)

    def check_login(request: Request) -> None:
        media = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != FORM_TYPE:
            raise Refusal(415, "unsupported_media_type", f"A form is sent as {FORM_TYPE}.")
        if request.length is None or request.length > MAX_FORM_BYTES:
            raise Refusal(413, "too_large", f"A form is at most {MAX_FORM_BYTES} bytes.")

    def post_login(request: Request) -> Response:
        limited(request)
        if verifier is None:
            return html(503, "operators-login.html.j2", lang="en", message="The overview is off.", nonce="", csrf="")
        try:
            form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            return login_page(400, "This form cannot be processed.")
        nonce, csrf = form.get("nonce", ""), form.get("csrf", "")
        if not nonce or not csrf or not hmac.compare_digest(signer._mac(_LOGIN_LABEL, nonce), csrf):
            return login_page(403, "The form has expired or is incomplete; try again.")
        try:
            entry, _reason = verifier.verify(form.get("token", "").strip())
        except (TokenFileError, VerifierBusy):
            return login_page(503, "Operator tokens cannot be checked now; try again later.")
        if entry is None:
            context.failures.take(request.remote)
            logger.info("An operator login from %s was refused.", request.remote)
            return login_page(401, "This token is not valid.")
        logger.info("Operator %s (token %s) logged in from %s.", entry.researcher, entry.id, request.remote)
        cookie = (
            f"{COOKIE}={session_value(entry.id, time.time())}; Path=/operators; Max-Age={SESSION_SECONDS}; "
            "HttpOnly; Secure; SameSite=Strict"
        )
        return Response(
            303, b"", "text/plain; charset=utf-8", {**HTML_HEADERS, "Location": "/operators", "Set-Cookie": cookie}
        )

    def get_overview(request: Request) -> Response:
        limited(request)
        if session(request) is None:
            return login_page(401, "Log in with an operator token.")
        now = time.time()
        figures = overview(ledger, now)
        stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return html(200, "operators.html.j2", lang="en", as_of=stamp, **figures)

    def get_chart(request: Request) -> Response:
        limited(request)
        if session(request) is None:
            raise Refusal(401, "unauthorized", "Log in with an operator token.")
        case_id = request.args[0]
        outcome = case_outcome(ledger, case_id, now=time.time()) if CASE_ID.fullmatch(case_id) else None
        if outcome is None:
            raise Refusal(404, "not_found", "There is no case with this id.")
        svg = case_chart(case_id, outcome["daily"]).encode("utf-8")
        return Response(200, svg, "image/svg+xml; charset=utf-8", dict(HTML_HEADERS))

    routes.add(
        r"/operators/login",
        get=Endpoint(get_login),
        post=Endpoint(post_login, check=check_login, takes_body=True),
    )
    routes.add(r"/operators", get=Endpoint(get_overview))
    routes.add(r"/operators/cases/([^/]+)/chart\.svg", get=Endpoint(get_chart))
