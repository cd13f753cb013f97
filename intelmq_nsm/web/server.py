"""An HTTP/1.1 server on tornado that runs its own event loop in a thread of the bot.

The event loop only moves bytes; every endpoint's work (hashing, SQLite, parsing) runs
in a bounded worker pool. Hostile clients meet these limits (:class:`~intelmq_nsm.web.limits.Limits`):

- a deadline for the whole request head (tornado's ``idle_connection_timeout``, which is
  its header timeout: a connection trickling header bytes is closed when it runs out),
  a largest head (``431``) and a deadline for the body (``408``);
- a cap on open connections per client address (an IPv6 client: its /64) and a far
  higher one on all of them: the excess is answered ``503`` with ``Retry-After`` at once,
  so that one source cannot starve the others;
- a bound on request body bytes in flight, reserved by ``Content-Length`` before the body
  is read: over it, ``503`` with ``Retry-After``;
- strict framing (:mod:`intelmq_nsm.web.framing`) and what each endpoint declares of its
  body (:mod:`intelmq_nsm.web.body`: media type, size, UTF-8, JSON depth).

Every answer carries ``nosniff``, ``no-store`` and ``frame-ancestors 'none'`` and is logged
at DEBUG with control characters escaped and query parameters by name only. Refusals are
JSON (an endpoint may render its own otherwise; tornado itself answers a malformed request
with a bare ``400`` and an oversized head with nothing: both are replaced here).
``token``/``access_token`` query parameters are refused before anything is logged. A
request refused before its body is answered with ``Connection: close`` and a lingering
close (the unread body is read and discarded for a moment, so that a client still sending
it sees the answer).
"""

import asyncio
import concurrent.futures
import http.client
import ipaddress
import logging
import resource
import socket
import threading
import time
from collections import Counter
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from tornado import httputil, iostream, netutil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from intelmq_nsm.web import body, framing
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes, json_refusal
from intelmq_nsm.web.limits import Limits
from intelmq_nsm.web.ratelimit import retry_after
from intelmq_nsm.web.refusal import Refusal

#: Query parameters that would carry a credential into logs and proxies' logs.
SECRET_PARAMETERS = ("token", "access_token")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# What tornado writes for a request it cannot parse (HTTP1Connection._read_message).
_TORNADO_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\n\r\n"
_CHUNK = 64 * 1024
_FAILED = Refusal(500, "internal_error", "The server failed; try again.")


#: File descriptors kept free beside the connections (spool, ledger, logs, Redis).
_SPARE_FILES = 256


def escape(text: str) -> str:
    """Control characters (and backslashes) as Python escapes: a log line stays one line."""
    return "".join(
        ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def raw_response(response: Response, close: bool = True) -> bytes:
    """A whole answer as bytes, for the places where tornado's connection is not at hand."""
    lines = [f"HTTP/1.1 {response.status} {http.client.responses.get(response.status, 'Error')}"]
    all_headers = {
        **SECURITY_HEADERS,
        **response.headers,
        "Content-Type": response.content_type,
        "Content-Length": str(len(response.body)),
    }
    if close:
        all_headers["Connection"] = "close"
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def client_key(address) -> str:
    """Whose connection it is, for the cap per address: an IPv4 address, an IPv6 client's /64."""
    host = address[0] if isinstance(address, tuple) and address else str(address or "-")
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def busy(message: str, limits: Limits) -> Response:
    return json_refusal(Refusal(503, "busy", message, headers=retry_after(limits.retry_after)), None)


class _Exchange(httputil.HTTPMessageDelegate):
    """One request on a connection: head checks, body, answer."""

    def __init__(self, server: "WebServer", connection, remote: str):
        self.server, self.connection, self.remote = server, connection, remote
        self.request: Optional[Request] = None
        self.endpoint = None
        self.body = bytearray()
        self.reserved = 0
        self.answered = False
        self.timer = None
        self.responding = None
        self.started = time.monotonic()
        self.logged_path = "-"
        self.method = "-"

    # -- tornado's delegate interface ---------------------------------------------------------

    async def headers_received(self, start_line, headers):
        self.started = time.monotonic()
        self.method = start_line.method
        parts = urlsplit(start_line.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        names = sorted(query)
        self.logged_path = parts.path + ("?" + "&".join(f"{n}=…" for n in names) if names else "")
        limits = self.server.limits
        length = None
        try:
            if self._head_bytes(start_line, headers) > limits.max_header_size:
                raise Refusal(
                    431, "headers_too_large", f"The request head is larger than {limits.max_header_size} bytes."
                )
            secret = [name for name in SECRET_PARAMETERS if name in query]
            if secret:
                raise Refusal(
                    400,
                    "token_in_query",
                    "Tokens are not accepted in the query string; send them in the Authorization header.",
                )
            endpoint, args = self.server.routes.resolve(self.method, parts.path)
            if limits.trust_forwarded_for and headers.get("X-Forwarded-For"):
                self.remote = headers.get_list("X-Forwarded-For")[-1].split(",")[-1].strip() or self.remote
            # The endpoint first: it renders every refusal from here on, bad framing's too.
            self.endpoint = endpoint
            self.request = Request(self.method, parts.path, query, headers, self.remote, args)
            length = self.request.length = framing.body_length(headers)
            if length and not endpoint.takes_body:
                raise Refusal(400, "unexpected_body", "This endpoint takes no request body.")
            if endpoint.screen is not None:
                endpoint.screen(self.request)
            body.before_body(endpoint, self.request, limits.max_body_size)
            if endpoint.check is not None:
                await self.server.run(endpoint, endpoint.check, self.request)
            if length:
                self.reserved = self.server.reserve(length)
                if not self.reserved:
                    raise Refusal(
                        503,
                        "busy",
                        "Too many request bodies are being received; try again shortly.",
                        headers=retry_after(limits.retry_after),
                    )
                self.timer = IOLoop.current().call_later(limits.body_timeout, self._body_late)
        except Refusal as refusal:
            await self._answer_early(self._refused(refusal), body_unread=bool(length))
        except Exception:
            self.server.logger.exception("A request could not be handled.")
            await self._answer_early(self._refused(_FAILED), body_unread=bool(length))

    def data_received(self, chunk):
        if not self.answered:
            self.body += chunk

    def finish(self):
        if self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None
        if not self.answered:
            self.responding = asyncio.ensure_future(self._respond())

    def on_connection_close(self):
        self._release()
        if self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None

    # -- answers ------------------------------------------------------------------------------

    @staticmethod
    def _head_bytes(start_line, headers) -> int:
        size = len(start_line.method) + len(start_line.path) + len(start_line.version) + 4
        return size + sum(len(name) + len(value) + 4 for name, value in headers.get_all())

    def _refused(self, refusal: Refusal) -> Response:
        """The refusal as the endpoint renders it (JSON before an endpoint is known)."""
        if self.endpoint is None:
            return json_refusal(refusal, self.request)
        try:
            return self.endpoint.refusal(refusal, self.request)
        except Exception:
            self.server.logger.exception("A refusal could not be rendered; it is answered as JSON.")
            return json_refusal(refusal, self.request)

    @staticmethod
    def _handle(endpoint: Endpoint, request: Request) -> Response:
        body.after_body(endpoint, request)
        return endpoint.handle(request)

    async def _respond(self):
        self.request.body, self.body = self.body, bytearray()
        try:
            response = await self.server.run(self.endpoint, self._handle, self.endpoint, self.request)
        except Refusal as refusal:
            response = self._refused(refusal)
        except Exception:
            self.server.logger.exception("A request could not be handled.")
            response = self._refused(_FAILED)
        finally:
            self.request.body, self.request.text = b"", None
            self._release()
        self._write(response)

    def _write(self, response: Response, close: bool = False) -> None:
        if self.answered:
            return
        self.answered = True
        headers = httputil.HTTPHeaders({**SECURITY_HEADERS, **response.headers})
        headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(response.body))
        if close:
            headers["Connection"] = "close"
        reason = http.client.responses.get(response.status, "Error")
        start = httputil.ResponseStartLine("HTTP/1.1", response.status, reason)
        try:
            self.connection.write_headers(start, headers, b"" if self.method == "HEAD" else response.body)
            self.connection.finish()
        except iostream.StreamClosedError:
            pass
        self._log(response.status)

    def _body_late(self):
        self.timer = None
        if not self.answered:
            # The connection is closed after this answer (tornado: the request was not read whole).
            seconds = self.server.limits.body_timeout
            refusal = Refusal(408, "timeout", f"The body did not arrive within {seconds:g} s.")
            self._release()
            self._write(self._refused(refusal), close=True)

    async def _answer_early(self, response: Response, body_unread: bool) -> None:
        """Answer before the body was read, then close; with a lingering close where a body may follow."""
        self.answered = True
        self._release()
        stream = self.connection.detach()
        data = raw_response(response)
        self._log(response.status)
        try:
            await stream.write(data if self.method != "HEAD" else data[: data.index(b"\r\n\r\n") + 4])
            if body_unread:
                await self._linger(stream)
        except (iostream.StreamClosedError, OSError):
            pass
        finally:
            stream.close()

    async def _linger(self, stream) -> None:
        # Closing with unread data resets the connection, and a client still sending its
        # body may lose the answer: read and discard for a moment first (nginx's
        # lingering close). Nothing is kept.
        stream.socket.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + self.server.limits.linger_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(stream.read_bytes(_CHUNK, partial=True), remaining)
            except (asyncio.TimeoutError, iostream.StreamClosedError):
                return

    def _release(self) -> None:
        if self.reserved:
            self.server.release(self.reserved)
            self.reserved = 0

    def _log(self, status: int) -> None:
        elapsed = (time.monotonic() - self.started) * 1000
        self.server.logger.debug(
            "HTTP %s %s %s answered %d in %.1f ms.",
            self.remote,
            escape(self.method),
            escape(self.logged_path),
            status,
            elapsed,
        )


class _Connections(httputil.HTTPServerConnectionDelegate):
    def __init__(self, server: "WebServer"):
        self.server = server

    def start_request(self, server_conn, request_conn):
        remote = getattr(server_conn, "context", None)
        address = getattr(remote, "remote_ip", None) or "-"
        return _Exchange(self.server, request_conn, address)

    def on_close(self, server_conn):
        pass


class _GuardedHTTPServer(HTTPServer):
    """tornado's HTTPServer with connection caps and JSON where tornado answers otherwise."""

    def initialize(self, *args, web_server=None, **kwargs):
        super().initialize(*args, **kwargs)
        self.web_server = web_server

    def handle_stream(self, stream, address):
        web = self.web_server
        # Behind a proxy every connection is the proxy's: the proxy limits its clients.
        client = None if web.limits.trust_forwarded_for else client_key(address)
        if web.open_connections >= web.connection_cap:
            refused = busy("Too many open connections; try again shortly.", web.limits)
        elif client is not None and web.connections_from[client] >= web.limits.max_connections_per_address:
            refused = busy("Too many open connections from this address; try again shortly.", web.limits)
        else:
            refused = None
        if refused is not None:
            web.refused_connections += 1
            stream.write(raw_response(refused)).add_done_callback(lambda _: stream.close())
            return
        web.open_connections += 1
        if client is not None:
            web.connections_from[client] += 1
        original_close, original_write = stream.close, stream.write
        closed = []

        def close(exc_info=False):
            if not closed:
                closed.append(True)
                web.open_connections -= 1
                if client is not None:
                    web.connections_from[client] -= 1
                    if not web.connections_from[client]:
                        del web.connections_from[client]
                if isinstance(exc_info, iostream.UnsatisfiableReadError):
                    # tornado closes without a word when the head outgrows max_header_size.
                    limit = web.limits.max_header_size
                    refusal = Refusal(431, "headers_too_large", f"The request head is larger than {limit} bytes.")
                    try:
                        stream.socket.send(raw_response(json_refusal(refusal, None)))
                    except (OSError, AttributeError):
                        pass
            return original_close(exc_info)

        def write(data, *args, **kwargs):
            if len(data) == len(_TORNADO_BAD_REQUEST) and bytes(data) == _TORNADO_BAD_REQUEST:
                refusal = Refusal(400, "bad_request", "The request is not valid HTTP/1.1.")
                data = raw_response(json_refusal(refusal, None))
            return original_write(data, *args, **kwargs)

        stream.close, stream.write = close, write
        super().handle_stream(stream, address)


def connections_the_file_limit_allows(wanted: int, logger: logging.Logger) -> int:
    """``wanted`` connections, or fewer if the process's file limit has no room for them.

    The soft limit (``ulimit -n``, often 1024) is raised up to the hard one where that
    makes room: past the file limit tornado's accept would fail on every new connection
    instead of answering 503."""
    needed = wanted + _SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    room = max(16, soft - _SPARE_FILES)
    logger.warning(
        "The file limit (ulimit -n %d) leaves room for %d open connections, fewer than max_connections %d; "
        "raise the limit to serve more.",
        soft,
        room,
        wanted,
    )
    return room


class WebServer:
    """Routes served on ``host:port`` by an event loop in a thread; ``stop()`` ends both."""

    def __init__(self, routes: Routes, host: str, port: int, limits: Limits, logger: logging.Logger, name="web"):
        self.routes, self.host, self.limits, self.logger, self.name = routes, host, limits, logger, name
        self._sockets = netutil.bind_sockets(port, host, reuse_port=False, backlog=128)
        self.port = self._sockets[0].getsockname()[1]
        self._pool = concurrent.futures.ThreadPoolExecutor(limits.workers, thread_name_prefix=f"{name}-work")
        self._light = concurrent.futures.ThreadPoolExecutor(limits.light_workers, thread_name_prefix=f"{name}-light")
        self._bytes_lock = threading.Lock()
        self.bytes_in_flight = 0
        self.open_connections = 0
        #: Open connections per client (:func:`client_key`).
        self.connections_from = Counter()
        self.refused_connections = 0
        self.connection_cap = connections_the_file_limit_allows(limits.max_connections, logger)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._httpd: Optional[_GuardedHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()

    # -- used by the exchanges (on the loop) ----------------------------------------------------

    async def run(self, endpoint: Endpoint, function, *args):
        pool = self._light if endpoint.light else self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, function, *args)

    def reserve(self, length: int) -> int:
        with self._bytes_lock:
            if self.bytes_in_flight and self.bytes_in_flight + length > self.limits.max_bytes_in_flight:
                return 0
            self.bytes_in_flight += length
            return length

    def release(self, length: int) -> None:
        with self._bytes_lock:
            self.bytes_in_flight -= length

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "WebServer":
        self._thread = threading.Thread(target=self._serve, name=f"{self.name}-http", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def begin():
            self._httpd = _GuardedHTTPServer(
                _Connections(self),
                web_server=self,
                idle_connection_timeout=self.limits.header_timeout,
                max_header_size=self.limits.max_header_size,
                max_body_size=self.limits.max_body_size,
                # A backstop only: the exchange answers 408 at body_timeout itself.
                body_timeout=self.limits.body_timeout + 5,
            )
            self._httpd.add_sockets(self._sockets)
            self._ready.set()

        self._loop.run_until_complete(begin())
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._loop is None:
            return

        async def end():
            self._httpd.stop()
            try:
                await asyncio.wait_for(self._httpd.close_all_connections(), 5)
            except asyncio.TimeoutError:
                pass
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(end(), self._loop)
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._light.shutdown(wait=False, cancel_futures=True)
        self._loop = None
