"""The intake's HTTP API on the standard library's ThreadingHTTPServer.

``POST /v1/reports`` (Bearer token) checks a submission at the edge, splits it into
reports and stores them durably in the spool before answering ``202``;
``GET /v1/reports/<id>`` tells the submitter its state; ``GET /v1/health`` is for
monitoring. Everything that can be refused is refused before the body is read (token,
rate limit, content type, size by Content-Length, feed code, case metadata), also on
``Expect: 100-continue``. Meant to listen on loopback behind a TLS-terminating proxy.
"""

import datetime
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats.case import case_problems
from intelmq_nsm.intake import spool as spool_mod
from intelmq_nsm.intake.split import CONTENT_TYPES, CSV, JSON, SubmissionError, split_submission

SUBMISSION_ID = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 64 * 1024
_LINGER_SECONDS = 2.0

#: Case metadata for CSV and NDJSON submissions: query parameter → key path in the case
#: block, and whether the value is a comma-separated list. The header form is
#: ``X-NSM-Case-Id`` etc. (the parameter name with '-' for '_').
CASE_PARAMETERS = {
    "case_id": (("id",), False),
    "case_title": (("title",), False),
    "case_url": (("url",), False),
    "case_cve": (("cve",), True),
    "case_severity": (("severity",), False),
    "case_classification_type": (("classification_type",), False),
    "case_recommendation": (("recommendation",), False),
    "case_tlp": (("tlp",), False),
    "case_product_vendor": (("product", "vendor"), False),
    "case_product_name": (("product", "name"), False),
    "case_product_affected_versions": (("product", "affected_versions"), True),
}
QUERY_PARAMETERS = {"feed_code", *CASE_PARAMETERS}


class Refusal(Exception):
    """A request refused with an HTTP status, an error code, a sentence and optional problems."""

    def __init__(self, status: int, code: str, message: str, problems=(), headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems = list(problems)
        self.headers = headers or {}

    def body(self) -> dict:
        body = {"error": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [{"path": path, "reason": reason} for path, reason in self.problems]
        return body


@dataclass
class IntakeConfig:
    max_body_bytes: int = 50 * 1024 * 1024
    max_report_bytes: int = 2 * 1024 * 1024
    body_timeout: float = 30.0
    requests_per_minute: int = 60
    burst: int = 30
    send_wait: float = 5.0
    require_csv_case: bool = True


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``per_minute``/60 per second."""

    def __init__(self, per_minute: int, burst: int):
        self.rate, self.burst = per_minute / 60.0, max(1, burst)
        self._buckets = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until the next request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            level, stamp = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - stamp) * self.rate)
            if level >= 1:
                self._buckets[key] = (level - 1, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate


def submission_id(researcher: str, content_type: str, case: Optional[dict], body: bytes) -> str:
    """sha256 of researcher and content: the same report from the same researcher, same id."""
    digest = hashlib.sha256()
    case_text = json.dumps(case, sort_keys=True)
    for piece in (b"nsm-intake/1", researcher.encode(), content_type.encode(), case_text.encode()):
        digest.update(piece + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _header_text(value: str) -> str:
    # http.server decodes headers as Latin-1; a UTF-8 title comes back whole this way.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def case_metadata(query: dict, headers) -> Optional[dict]:
    """The case block given with a CSV or NDJSON submission (query parameters win over headers)."""
    case = {}
    for name, (path, is_list) in CASE_PARAMETERS.items():
        values = query.get(name)
        if values is None:
            header = headers.get("X-NSM-" + name.replace("_", "-"))
            values = None if header is None else [_header_text(header)]
        if not values:
            continue
        if is_list:
            value = [item.strip() for v in values for item in v.split(",") if item.strip()]
        else:
            value = values[-1].strip()
        target = case
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return case or None


class IntakeService:
    """The intake's logic behind the HTTP handler; the bot drains the spool into the pipeline."""

    def __init__(self, verifier, spool, config: IntakeConfig, logger):
        self.verifier, self.spool, self.config, self.logger = verifier, spool, config, logger
        self.limiter = RateLimiter(config.requests_per_minute, config.burst)
        #: Set when the spool has new work for the bot.
        self.work = threading.Event()
        #: Notified by the bot after each attempt to send.
        self.changed = threading.Condition()
        self.pipeline_ok: Optional[bool] = None

    # -- called by the bot's main loop ---------------------------------------------------

    def notify_changed(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # -- called by request threads -------------------------------------------------------

    def authenticate(self, authorization: Optional[str]):
        token = None
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = credentials.strip()
        entry, reason = self.verifier.verify(token)
        if entry is None:
            raise Refusal(401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="nsm-intake"'})
        wait = self.limiter.take(entry.id)
        if wait:
            raise Refusal(
                429,
                "rate_limited",
                f"Too many requests for this token; try again in {wait:.0f} s.",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        return entry

    def check_submission(self, entry, content_type_header: Optional[str], length_header, query: dict, headers):
        """Everything that is checked before the body is read; returns the submission's context."""
        media, _, params = (content_type_header or "").partition(";")
        media = media.strip().lower()
        if media not in CONTENT_TYPES:
            raise Refusal(
                415,
                "unsupported_media_type",
                f"Content-Type {media or '(none)'!r} is not accepted; use one of {', '.join(CONTENT_TYPES)}.",
            )
        pairs = (p.partition("=") for p in params.split(";"))
        charset = {k.strip().lower(): v.strip().strip('"').lower() for k, _, v in pairs}.get("charset", "utf-8")
        if charset not in ("utf-8", "utf8"):
            raise Refusal(415, "unsupported_charset", f"Charset {charset!r} is not accepted; send UTF-8.")
        if headers.get("Transfer-Encoding"):
            raise Refusal(411, "length_required", "Chunked bodies are not accepted; send a Content-Length.")
        if length_header is None:
            raise Refusal(411, "length_required", "A Content-Length header is required.")
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            raise Refusal(400, "bad_request", "Content-Length is not a non-negative number.") from None
        if length > self.config.max_body_bytes:
            raise Refusal(
                413,
                "too_large",
                f"The body has {length} bytes; this intake accepts at most {self.config.max_body_bytes} bytes.",
            )
        if length == 0:
            raise Refusal(400, "empty", "The body is empty.")
        unknown = sorted(set(query) - QUERY_PARAMETERS)
        if unknown:
            raise Refusal(400, "bad_parameter", f"Unknown query parameter(s): {', '.join(unknown)}.")
        codes = query.get("feed_code")
        code = codes[-1] if codes else entry.feed_codes[0]
        if code not in entry.feed_codes:
            raise Refusal(403, "forbidden_feed_code", f"This token may not submit to feed code {code!r}.")
        case = case_metadata(query, headers)
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
        try:
            parts = split_submission(context["content_type"], text, self.config.max_report_bytes)
        except SubmissionError as exc:
            raise Refusal(400, "invalid_report", str(exc), exc.problems) from None
        sid = submission_id(entry.researcher, context["content_type"], context["case"], body)
        now = time.time()
        observed = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()
        reports = []
        for part in parts:
            fields = {
                "feed.provider": entry.researcher,
                "feed.name": entry.feed_name,
                "feed.code": context["feed_code"],
                "time.observation": observed,
                ec.SUBMISSION_ID: sid,
                ec.CONTENT_TYPE: context["content_type"],
            }
            if context["case"]:
                fields[ec.CASE] = context["case"]
            if len(parts) > 1:
                fields[ec.FIRST_RECORD] = part.first_record
            reports.append((fields, part.text.encode("utf-8")))
        records = sum(part.records for part in parts)
        record = spool_mod.Submission(
            sid, entry.researcher, entry.id, context["content_type"], spool_mod.ACCEPTED, records, len(parts), now, now
        )
        stored, created = self.spool.accept(record, reports)
        if created:
            self.logger.info(
                "Accepted submission %s from %s (token %s): %d records in %d reports.",
                sid,
                entry.researcher,
                entry.id,
                records,
                len(parts),
            )
            self.work.set()
            stored = self._wait_settled(sid)
        else:
            self.logger.info("Submission %s from %s (token %s) repeated; nothing new.", sid, entry.researcher, entry.id)
        body = stored.public()
        body["duplicate"] = not created
        return 202, body

    def _wait_settled(self, sid: str):
        # The reports are durable already; waiting a moment lets the answer say whether
        # they are in the pipeline (queued) or waiting for it (spooled).
        deadline = time.monotonic() + self.config.send_wait
        with self.changed:
            while True:
                stored = self.spool.get(sid)
                remaining = deadline - time.monotonic()
                if stored.state != spool_mod.ACCEPTED or remaining <= 0:
                    return stored
                self.changed.wait(min(remaining, 0.5))

    def status(self, entry, sid: str) -> tuple:
        if not SUBMISSION_ID.match(sid):
            raise Refusal(400, "bad_submission_id", "A submission id is 64 lower-case hex digits.")
        stored = self.spool.get(sid)
        # Another researcher's submission is answered as unknown: ids tell nothing.
        if stored is None or stored.researcher != entry.researcher:
            raise Refusal(404, "not_found", "There is no submission with this id for this token.")
        return 200, stored.public()

    def health(self) -> tuple:
        pending = self.spool.pending_count()
        pipeline = {None: "unknown", True: "ok", False: "unavailable"}[self.pipeline_ok]
        status = "ok" if self.pipeline_ok is not False else "degraded"
        return 200, {"status": status, "pipeline": pipeline, "pending_reports": pending}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nsm-intake/1"
    sys_version = ""
    service: IntakeService = None

    def log_message(self, format, *args):
        # The request line only: headers (with the token) are never logged.
        self.service.logger.debug("HTTP %s - %s.", self.client_address[0], format % args)

    def _send(self, status: int, body: dict, headers=None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _refuse(self, refusal: Refusal, body_unread: bool = False) -> None:
        if body_unread:
            # The unread body would be taken for the next request: close instead.
            self.close_connection = True
        self._send(refusal.status, refusal.body(), refusal.headers)
        if body_unread and self.command == "POST":
            self._linger()

    def _linger(self) -> None:
        """Closing with unread data resets the connection, and a client still sending its
        body may lose the answer: read and discard for a moment first (nginx's
        lingering close). Nothing is kept in memory."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            while time.monotonic() < deadline:
                self.connection.settimeout(max(0.05, deadline - time.monotonic()))
                if not self.connection.recv(_CHUNK):
                    break
        except OSError:
            pass

    def _route(self):
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query, keep_blank_values=False)

    def _post_context(self):
        path, query = self._route()
        if path != "/v1/reports":
            raise Refusal(404, "not_found", "No such endpoint.")
        entry = self.service.authenticate(self.headers.get("Authorization"))
        context = self.service.check_submission(
            entry, self.headers.get("Content-Type"), self.headers.get("Content-Length"), query, self.headers
        )
        return entry, context

    def handle_expect_100(self):
        # Refuse before the client sends its body, where the client asked to wait.
        self._checked = None
        if self.command == "POST":
            try:
                self._checked = self._post_context()
            except Refusal as refusal:
                self._refuse(refusal, body_unread=True)
                return False
        return super().handle_expect_100()

    def do_POST(self):
        body_read = False
        try:
            checked, self._checked = getattr(self, "_checked", None), None
            entry, context = checked or self._post_context()
            body = self._read_body(context["length"])
            body_read = True
            status, response = self.service.submit(entry, context, body)
        except Refusal as refusal:
            self._refuse(refusal, body_unread=not body_read)
            return
        except Exception:
            self.service.logger.exception("A submission could not be handled.")
            self.close_connection = True
            self._send(503, {"error": "unavailable", "message": "The submission could not be stored; try again."})
            return
        self._send(status, response)

    def _read_body(self, length: int) -> bytes:
        """Read exactly ``length`` bytes in chunks, within ``body_timeout`` seconds in total."""
        deadline = time.monotonic() + self.service.config.body_timeout
        body = bytearray()
        try:
            while len(body) < length:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(_CHUNK, length - len(body)))
                if not chunk:
                    self.close_connection = True
                    raise Refusal(400, "incomplete_body", "The body ended before Content-Length bytes arrived.")
                body += chunk
        except (TimeoutError, socket.timeout):
            self.close_connection = True
            raise Refusal(
                408, "timeout", f"The body did not arrive within {self.service.config.body_timeout:g} s."
            ) from None
        finally:
            self.connection.settimeout(self.service.config.body_timeout)
        return bytes(body)

    def do_GET(self):
        path, _ = self._route()
        try:
            if path == "/v1/health":
                status, body = self.service.health()
            elif path.startswith("/v1/reports/"):
                entry = self.service.authenticate(self.headers.get("Authorization"))
                status, body = self.service.status(entry, path[len("/v1/reports/") :])
            else:
                raise Refusal(404, "not_found", "No such endpoint.")
        except Refusal as refusal:
            self._refuse(refusal)
            return
        self._send(status, body)

    def _not_allowed(self):
        self._refuse(Refusal(405, "method_not_allowed", f"Method {self.command} is not allowed."), body_unread=True)

    do_PUT = do_DELETE = do_PATCH = _not_allowed


class IntakeServer:
    """The HTTP server in a thread of its own; ``stop()`` closes the socket."""

    def __init__(self, service: IntakeService, host: str, port: int):
        handler = type("IntakeHandler", (_Handler,), {"service": service, "timeout": service.config.body_timeout})
        # A listen backlog for bursts of clients (the standard library's default is 5).
        attributes = {"request_queue_size": 128, "daemon_threads": True}
        if ":" in host:
            attributes["address_family"] = socket.AF_INET6
        server_class = type("IntakeHTTPServer", (ThreadingHTTPServer,), attributes)
        self.httpd = server_class((host, port), handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> "IntakeServer":
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="nsm-intake-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=10)


def drain(spool, send: Callable, limit: int = 100) -> int:
    """Send up to ``limit`` spooled reports with ``send(item)``; each is forgotten once sent.
    Returns how many were sent; ``send``'s exception propagates (the rest stays)."""
    count = 0
    for item in spool.pending(limit):
        send(item)
        spool.sent(item)
        count += 1
    return count
