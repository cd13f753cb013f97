"""What a service gives the web stack: routes with endpoints, and the request and response shapes.

An :class:`Endpoint` declares what its requests' bodies may be (media types, a body cap,
UTF-8 text, a JSON nesting depth) and how its refusals are rendered; the stack refuses what
does not fit (:mod:`intelmq_nsm.web.body`) before the endpoint's own code runs. Its code is
plain, blocking Python (but for ``screen``, see there): ``check`` (optional) runs when the
request head is in, before any body byte is read (and before ``100 Continue``); it may
refuse or put what it learnt into ``request.context``. ``handle`` runs when the body is
in and returns a :class:`Response`. Both run in the stack's worker pool, never on its
event loop; both refuse by raising :class:`~intelmq_nsm.web.refusal.Refusal`.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from intelmq_nsm.web.refusal import Refusal


@dataclass
class Request:
    method: str
    path: str
    #: Query parameters: name → list of values (blank values kept).
    query: dict
    #: The request's headers (``get``, ``get_list``; names case-insensitive).
    headers: Any
    remote: str
    #: The path's groups matched by the route's pattern.
    args: tuple = ()
    #: Parsed ``Content-Length`` (None without one).
    length: Optional[int] = None
    #: The body's media type (lower case, without parameters), one the endpoint takes.
    media_type: Optional[str] = None
    body: bytes = b""
    #: The body decoded (endpoints that take ``text``), a leading byte order mark dropped.
    text: Optional[str] = None
    #: What ``check`` learnt for ``handle`` (e.g. the authenticated token entry).
    context: Any = None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document, headers=None) -> "Response":
        return cls(status, json.dumps(document).encode("utf-8"), "application/json", dict(headers or {}))


def json_refusal(refusal: Refusal, request: Optional[Request]) -> Response:
    """A refusal as JSON: ``{"error", "message", "problems"}`` with its headers."""
    return Response.json(refusal.status, refusal.body(), refusal.headers)


@dataclass
class Endpoint:
    handle: Callable[[Request], Response]
    check: Optional[Callable[[Request], None]] = None
    #: Runs on the event loop before ``check``: in-memory and quick only (e.g. a rate
    #: limit), so that a flood is refused without queueing for the worker pool.
    screen: Optional[Callable[[Request], None]] = None
    #: The media types its body may have; none: it takes no body (one is refused with 400).
    media_types: tuple = ()
    #: The largest body it takes in bytes; None: the server's ``max_body_size``.
    max_body: Optional[int] = None
    #: Its body must be UTF-8 text: the stack decodes it into ``request.text``.
    text: bool = False
    #: The deepest nesting of arrays and objects in a JSON body (per line of NDJSON);
    #: None: not checked. Checked before any parser sees the body (theirs recurse).
    max_depth: Optional[int] = None
    #: Short, cheap work (health, status) runs in a pool of its own, so that slow
    #: submissions never hold it up.
    light: bool = False
    #: Renders its refusals, the stack's own (framing, size, type, depth, timeouts) and
    #: its code's: JSON by default; a page may answer them as HTML.
    refusal: Callable[[Refusal, Optional[Request]], Response] = json_refusal

    @property
    def takes_body(self) -> bool:
        return bool(self.media_types)


class Routes:
    """Path patterns (full match) with an endpoint per method; ``HEAD`` is served by ``GET``."""

    def __init__(self):
        self._routes = []

    def add(self, pattern: str, **endpoints: Endpoint) -> "Routes":
        self._routes.append((re.compile(pattern), {method.upper(): e for method, e in endpoints.items()}))
        return self

    def resolve(self, method: str, path: str) -> tuple:
        """``(endpoint, path groups)``; a Refusal with 404, or 405 with ``Allow``."""
        for pattern, endpoints in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            endpoint = endpoints.get("GET" if method == "HEAD" else method)
            if endpoint is None:
                allowed = sorted(endpoints) + (["HEAD"] if "GET" in endpoints else [])
                raise Refusal(
                    405,
                    "method_not_allowed",
                    f"Method {method} is not allowed here; use {', '.join(allowed)}.",
                    headers={"Allow": ", ".join(allowed)},
                )
            return endpoint, match.groups()
        raise Refusal(404, "not_found", "No such endpoint.")
