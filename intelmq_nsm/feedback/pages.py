"""The owners' page: the findings of a signed link, each with the four answers and a comment.

``GET /feedback?link=…`` shows the page; ``POST /feedback?link=…`` takes one finding's
answer (a form per finding) and answers ``303`` back to the page, which then confirms
the answer and shows the finding's current state and history. The link's token is a
query parameter (the web stack logs parameters by name only, so it stays out of logs).

HTML from autoescaped jinja2 templates (package data), Dutch by default, English with
``?lang=en`` or an ``Accept-Language`` that prefers it. No JavaScript; the Content
Security Policy allows the stylesheet of this service and nothing else, and forms post
only here. Every refusal is an HTML page with a 4xx status that says what is wrong, in the
page's language: the page's own (a bad link, a bad form, the rate limit) and the web
stack's, which refuses a form of another media type, without a length or over its cap
before the page runs and renders the refusal with the endpoint's renderer
(:meth:`OwnersPage.refused`).

Limits are in characters where people count characters: a comment may hold
:data:`~intelmq_nsm.feedback.answers.MAX_COMMENT_CHARS` characters (the form's
``maxlength``, a line break counting one as the browser counts it), and the form's cap in
bytes follows from that in UTF-8's worst case, percent-encoded (:data:`MAX_FORM_BYTES`).
"""

import datetime
from typing import Optional
from urllib.parse import parse_qs, urlencode

import jinja2

from intelmq_nsm.abuse_kinds import SEEN_BY_FEEDS
from intelmq_nsm.feedback import answers
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.feedback.links import PAGE_PATH, LinkError
from intelmq_nsm.feedback.shown import shown, shown_text
from intelmq_nsm.web import ratelimit
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.ratelimit import retry_after
from intelmq_nsm.web.refusal import Refusal

LANGUAGES = ("nl", "en")
FORM_TYPE = "application/x-www-form-urlencoded"
#: What one character of a form field costs at most on the wire: four bytes of UTF-8,
#: each percent-encoded as three (``%E2%82%AC`` for "€" is nine).
WORST_FORM_BYTES_PER_CHAR = 4 * 3
#: The answer form's cap: a comment of the most characters allowed, each at its worst, and
#: the rest of the form (form token, finding id, choice, field names) with room to spare.
MAX_FORM_BYTES = answers.MAX_COMMENT_CHARS * WORST_FORM_BYTES_PER_CHAR + 2048
STYLESHEET = "/static/feedback.css"
#: What an HTML page needs beyond the web server's SECURITY_HEADERS (nosniff, no-store,
#: no-referrer, which every response carries): its own stylesheet, images and forms.
HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("intelmq_nsm", "templates/feedback"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

TEXT = {
    "nl": {
        "title": "Terugkoppeling op gemelde kwetsbaarheden",
        "intro": "U ontving deze bevindingen van de IBD in bericht {digest}. Laat per bevinding weten wat ermee "
        "is gebeurd. Een latere controle van de onderzoeker stelt vast of een systeem nog kwetsbaar is.",
        "organisation": "Organisatie",
        "finding": "Bevinding",
        "target": "Systeem",
        "case": "Melding",
        "first_seen": "Eerst gezien",
        "last_seen": "Laatst gezien",
        "state": "Huidige status",
        "history": "Geschiedenis",
        "answer": "Uw antwoord",
        "comment": "Toelichting (optioneel)",
        "submit": "Antwoord versturen",
        "thanks": "Dank u. Uw antwoord voor {target} is vastgelegd: {choice}.",
        "none": "Er zijn geen bevindingen voor deze link.",
        "language": "English",
        "refused": "Deze link kan niet worden gebruikt",
        "contact": "Neem contact op met de IBD als u denkt dat dit niet klopt.",
        "facts": {
            "ip": "IP-adres",
            "port": "Poort",
            "fqdn": "Hostnaam",
            "url": "URL",
            "cves": "CVE",
            "severity": "Ernst",
            "product": "Product",
            "case_title": "Onderwerp",
            "recommendation": "Advies",
            "kind_of_abuse": "Soort",
            "malware": "Malware",
            "description": "Omschrijving",
            "feed": "Gezien door",
        },
        "kinds": {
            "compromised": "besmet of gehackt",
            "misbehaving": "misbruik vanaf uw systeem",
            "vulnerable": "kwetsbaar",
            "exposed": "blootgesteld",
        },
        "choices": {
            "fixed": "Opgelost",
            "accepted-risk": "Geaccepteerd risico",
            "not-ours": "Niet van ons",
            "false-positive": "Vals positief",
        },
        "hints": {
            "fixed": "Het systeem is bijgewerkt of afgeschermd.",
            "accepted-risk": "We kennen het risico en laten het zo.",
            "not-ours": "Dit systeem hoort niet bij onze organisatie.",
            "false-positive": "Het systeem is niet kwetsbaar.",
        },
        # A system the feeds see infected or abusing others: fixed is cleaned, not patched.
        "seen_hints": {
            "fixed": "Het systeem is opgeschoond of vervangen.",
            "false-positive": "Dit systeem is niet besmet en misbruikt niets.",
        },
        "states": {
            "open": "open",
            "notified": "gemeld",
            "fixed-verified": "opgelost (bevestigd door controle)",
            "reopened": "opnieuw kwetsbaar",
            "fixed-reported": "opgelost (volgens eigenaar)",
            "disputed": "niet van ons (volgens eigenaar)",
            "accepted-risk": "geaccepteerd risico",
            "false-positive": "vals positief (volgens eigenaar)",
            "no-longer-seen": "niet meer gezien (geen bevestiging dat het is opgelost)",
        },
        # Seen again by a feed is not "vulnerable again".
        "seen_states": {"reopened": "opnieuw gezien"},
        "sources": {"scan": "controle", "owner": "eigenaar", "ticket": "IBD", "operator": "IBD", "cert": "CERT"},
        "reasons": {
            "tampered": "Deze link is gewijzigd of is niet door deze dienst gemaakt.",
            "expired": "Deze link is verlopen. Vraag de IBD om een nieuwe link.",
            "malformed": "Dit is geen geldige terugkoppelingslink.",
            "unknown": "Deze bevinding hoort niet bij deze link.",
            "csrf": "Het formulier is verlopen of onvolledig. Open de link opnieuw en probeer het nog eens.",
            "invalid": "Kies een van de vier antwoorden; een toelichting mag ten hoogste {max} tekens zijn.",
            "rate": "Te veel verzoeken. Probeer het over een minuut opnieuw.",
            "unavailable": "De dienst is tijdelijk niet beschikbaar. Probeer het later opnieuw.",
            "form": "Dit formulier kan niet worden verwerkt.",
            "too_large": "Dit formulier is te groot om te verwerken.",
        },
    },
    "en": {
        "title": "Feedback on reported vulnerabilities",
        "intro": "The IBD sent you these findings in message {digest}. Tell us for each finding what became of "
        "it. A later check by the researcher establishes whether a system is still vulnerable.",
        "organisation": "Organisation",
        "finding": "Finding",
        "target": "System",
        "case": "Report",
        "first_seen": "First seen",
        "last_seen": "Last seen",
        "state": "Current state",
        "history": "History",
        "answer": "Your answer",
        "comment": "Comment (optional)",
        "submit": "Send answer",
        "thanks": "Thank you. Your answer for {target} is recorded: {choice}.",
        "none": "There are no findings for this link.",
        "language": "Nederlands",
        "refused": "This link cannot be used",
        "contact": "Please contact the IBD if you think this is wrong.",
        "facts": {
            "ip": "IP address",
            "port": "Port",
            "fqdn": "Host name",
            "url": "URL",
            "cves": "CVE",
            "severity": "Severity",
            "product": "Product",
            "case_title": "Subject",
            "recommendation": "Advice",
            "kind_of_abuse": "Kind",
            "malware": "Malware",
            "description": "Description",
            "feed": "Seen by",
        },
        "kinds": {
            "compromised": "infected or compromised",
            "misbehaving": "abuse from your system",
            "vulnerable": "vulnerable",
            "exposed": "exposed",
        },
        "choices": {
            "fixed": "Fixed",
            "accepted-risk": "Accepted risk",
            "not-ours": "Not our system",
            "false-positive": "False positive",
        },
        "hints": {
            "fixed": "The system was updated or shielded.",
            "accepted-risk": "We know the risk and leave it as it is.",
            "not-ours": "This system does not belong to our organisation.",
            "false-positive": "The system is not vulnerable.",
        },
        "seen_hints": {
            "fixed": "The system was cleaned up or replaced.",
            "false-positive": "This system is not infected and abuses nothing.",
        },
        "states": {
            "open": "open",
            "notified": "notified",
            "fixed-verified": "fixed (verified by a check)",
            "reopened": "vulnerable again",
            "fixed-reported": "fixed (says the owner)",
            "disputed": "not ours (says the owner)",
            "accepted-risk": "accepted risk",
            "false-positive": "false positive (says the owner)",
            "no-longer-seen": "no longer seen (not a confirmation that it is fixed)",
        },
        "seen_states": {"reopened": "seen again"},
        "sources": {"scan": "check", "owner": "owner", "ticket": "IBD", "operator": "IBD", "cert": "CERT"},
        "reasons": {
            "tampered": "This link was changed or was not made by this service.",
            "expired": "This link has expired. Ask the IBD for a new one.",
            "malformed": "This is not a valid feedback link.",
            "unknown": "This finding does not belong to this link.",
            "csrf": "The form has expired or is incomplete. Open the link again and try once more.",
            "invalid": "Choose one of the four answers; a comment may be at most {max} characters long.",
            "rate": "Too many requests. Try again in a minute.",
            "unavailable": "The service is unavailable for a moment. Try again later.",
            "form": "This form cannot be processed.",
            "too_large": "This form is too large to be processed.",
        },
    },
}
#: HTTP status per refusal reason.
STATUS = {
    "tampered": 403,
    "expired": 410,
    "malformed": 400,
    "unknown": 404,
    "csrf": 403,
    "invalid": 400,
    "rate": 429,
    "unavailable": 503,
    "form": 400,
    "too_large": 413,
}
#: The page's reason for a refusal of the web stack (by its code); any other: ``form``.
STACK_REASONS = {"too_large": "too_large", "rate_limited": "rate", "too_many_failures": "rate", "busy": "unavailable"}


def language(request: Request) -> str:
    """``?lang=`` if it names one we have, else the first of ours the browser accepts, else Dutch."""
    chosen = (request.query.get("lang") or [""])[-1]
    if chosen in LANGUAGES:
        return chosen
    preferences = []
    for number, item in enumerate((request.headers.get("Accept-Language") or "").split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            preferences.append((-quality, number, primary))
    return min(preferences)[2] if preferences else "nl"


def _time(value: Optional[float]) -> str:
    if value is None:
        return ""
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


_env.filters["time"] = _time
_env.filters["shown"] = shown
_env.filters["shown_text"] = shown_text


def page_url(token: str, lang: str, **extra) -> str:
    return f"{PAGE_PATH}?{urlencode({'link': token, 'lang': lang, **extra})}"


def html(status: int, template: str, headers=None, **values) -> Response:
    body = _env.get_template(template).render(stylesheet=STYLESHEET, **values).encode("utf-8")
    return Response(status, body, "text/html; charset=utf-8", {**HTML_HEADERS, **(headers or {})})


def refusal_page(reason: str, lang: str, headers=None, status: Optional[int] = None) -> Response:
    text = TEXT[lang]
    message = text["reasons"][reason].format(max=answers.MAX_COMMENT_CHARS)
    status = STATUS[reason] if status is None else status
    return html(status, "refusal.html.j2", headers, t=text, lang=lang, reason=reason, message=message)


class _Refused(Exception):
    def __init__(self, reason: str, headers=None):
        super().__init__(reason)
        self.reason, self.headers = reason, headers or {}


class OwnersPage:
    """The owners' page (``GET`` shows a link's findings, ``POST`` takes one answer) and its stylesheet.

    Its own refusals (a bad link, the rate limit, a bad form) are HTML pages; what the web
    stack refuses before the page runs (media type, size) is answered by the endpoint's
    refusal renderer."""

    def __init__(self, context: ServiceContext):
        self.context = context
        self.store, self.signer, self.logger = context.store, context.signer, context.logger

    def limited(self, request: Request) -> None:
        """The address's rate limit, and its failed links."""
        key = ratelimit.address(request.remote)
        try:
            self.context.throttle.request(key)
            self.context.throttle.before_trying(key)
        except Refusal as refusal:
            raise _Refused("rate", refusal.headers) from None

    def verified(self, request: Request) -> tuple:
        """The link's token and the link it stands for; a bad link counts as a failure."""
        token = (request.query.get("link") or [""])[-1]
        try:
            return token, self.signer.verify(token)
        except LinkError as exc:
            self.context.throttle.failed(ratelimit.address(request.remote))
            self.logger.info("A feedback link from %s was refused: %s", request.remote, exc)
            raise _Refused(exc.reason) from None

    def guarded(self, action):
        """``action(request, lang)`` behind the rate limit, its refusals as pages."""

        def run(request: Request) -> Response:
            lang = language(request)
            try:
                self.limited(request)
                return action(request, lang)
            except _Refused as refused:
                return refusal_page(refused.reason, lang, refused.headers)
            except answers.UnknownFinding:
                return refusal_page("unknown", lang)
            except Refusal:
                raise
            except Exception as exc:  # the ledger's database away, above all
                self.logger.warning("The feedback page could not be served: %s", exc)
                return refusal_page("unavailable", lang, retry_after(30))

        return run

    def get(self, request: Request, lang: str) -> Response:
        token, link = self.verified(request)
        records = self.store.findings_for(link)
        answered = (request.query.get("answered") or [""])[-1]
        confirmed = next((r for r in records if r["finding_id"] == answered), None)
        other = "en" if lang == "nl" else "nl"
        choice_of = {state: choice for choice, state in answers.CHOICES.items()}
        text = TEXT[lang]
        confirmed_label = ""
        if confirmed:
            state = confirmed["state"]
            confirmed_label = text["choices"][choice_of[state]] if state in choice_of else text["states"][state]
        return html(
            200,
            "page.html.j2",
            t=text,
            lang=lang,
            link=link,
            records=records,
            confirmed=confirmed,
            organisation=records[0]["org_name"] if records else link.org_id,
            action=page_url(token, lang),
            other_url=page_url(token, other),
            csrf=self.signer.csrf(token),
            choices=list(answers.CHOICES),
            choice_of=choice_of,
            confirmed_label=confirmed_label,
            max_comment=answers.MAX_COMMENT_CHARS,
            seen_by_feeds=SEEN_BY_FEEDS,
        )

    def post(self, request: Request, lang: str) -> Response:
        token, link = self.verified(request)
        try:
            form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise _Refused("form") from None
        field = {name: values[-1] for name, values in form.items()}
        if not self.signer.csrf_ok(token, field.get("csrf")):
            self.logger.info("A feedback form from %s came without a valid form token.", request.remote)
            raise _Refused("csrf")
        finding_id, choice = field.get("finding_id", ""), field.get("choice", "")
        # A browser sends a line break as CRLF, but counts it as one character (maxlength).
        comment = field.get("comment", "").replace("\r\n", "\n").strip()
        if choice not in answers.CHOICES or len(comment) > answers.MAX_COMMENT_CHARS:
            raise _Refused("invalid")
        record = self.store.answer(link, finding_id, choice, comment)
        self.logger.info(
            "Organisation %s answered %s for finding %s (digest %s).",
            link.org_id,
            record["state"],
            finding_id,
            link.digest_id,
        )
        location = page_url(token, lang, answered=finding_id) + f"#finding-{finding_id}"
        return Response(303, b"", "text/plain; charset=utf-8", {**HTML_HEADERS, "Location": location})

    def refused(self, refusal: Refusal, request: Optional[Request]) -> Response:
        """A refusal of the web stack (media type, length, size, deadline, rate) as the page
        that says it, with the refusal's status and headers."""
        lang = language(request) if request is not None else LANGUAGES[0]
        reason = STACK_REASONS.get(refusal.code, "unavailable" if refusal.status >= 500 else "form")
        return refusal_page(reason, lang, refusal.headers, refusal.status)

    def stylesheet(self, request: Request) -> Response:
        body = _env.loader.get_source(_env, "feedback.css")[0].encode("utf-8")
        return Response(200, body, "text/css; charset=utf-8", {"Cache-Control": "public, max-age=3600"})

    def add_to(self, routes: Routes) -> None:
        form = Endpoint(
            self.guarded(self.post), media_types=(FORM_TYPE,), max_body=MAX_FORM_BYTES, refusal=self.refused
        )
        routes.add(PAGE_PATH, get=Endpoint(self.guarded(self.get), refusal=self.refused), post=form)
        routes.add(STYLESHEET, get=Endpoint(self.stylesheet, light=True))
