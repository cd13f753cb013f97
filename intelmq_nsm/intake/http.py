"""The intake's HTTP handler on the standard library's ThreadingHTTPServer.

``POST /v1/reports`` (Bearer token) checks a submission at the edge, splits it into
reports and stores them durably in the spool before answering ``202``;
``GET /v1/reports/<id>`` tells the submitter its state; ``GET /v1/health`` is for
monitoring. Everything that can be refused is refused before the body is read (token,
rate limit, content type, size by Content-Length, feed code, case metadata), also on
``Expect: 100-continue``. Meant to listen on loopback behind a TLS-terminating proxy.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from intelmq_nsm.intake.service import IntakeService
from intelmq_nsm.web.refusal import Refusal

_CHUNK = 64 * 1024
_LINGER_SECONDS = 2.0


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
            entry, self.headers.get("Content-Type"), self.headers.get_all("Content-Length") or [], query, self.headers
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
