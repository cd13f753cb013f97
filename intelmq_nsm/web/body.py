"""What a request's body must be for its endpoint, refused before it is read where it can be.

An :class:`~intelmq_nsm.web.app.Endpoint` declares its media types, its body cap, whether
the body is text and how deep its JSON may nest; the server runs these checks, the same
for every endpoint of every service. Before the body: a media type the endpoint takes, in
UTF-8 (``415``), a stated length (``411``) within the cap (``413``; the framing itself is
:mod:`intelmq_nsm.web.framing`'s). After it: UTF-8 (``400 invalid_encoding``) and the
nesting of JSON (``400 too_deeply_nested``).
"""

from typing import Optional

from intelmq_nsm.web import nesting
from intelmq_nsm.web.app import Endpoint, Request
from intelmq_nsm.web.refusal import Refusal

#: JSON media types, and whether each line is a document of its own (NDJSON).
JSON_TYPES = {"application/json": False, "application/x-ndjson": True}


def media_type(header: Optional[str], accepted: tuple) -> str:
    """The declared media type (lower case, no parameters), if it is one of ``accepted``, in UTF-8."""
    media, _, params = (header or "").partition(";")
    media = media.strip().lower()
    if media not in accepted:
        raise Refusal(
            415,
            "unsupported_media_type",
            f"Content-Type {media or '(none)'!r} is not accepted; use {' or '.join(accepted)}.",
        )
    pairs = (p.partition("=") for p in params.split(";"))
    charset = {k.strip().lower(): v.strip().strip('"').lower() for k, _, v in pairs}.get("charset", "utf-8")
    if charset not in ("utf-8", "utf8"):
        raise Refusal(415, "unsupported_charset", f"Charset {charset!r} is not accepted; send UTF-8.")
    return media


def length_within(length: Optional[int], cap: int) -> int:
    """The body's stated length, if there is one and it is within ``cap``."""
    if length is None:
        raise Refusal(411, "length_required", "A Content-Length header is required.")
    if length > cap:
        raise Refusal(413, "too_large", f"The body has {length} bytes; this endpoint accepts at most {cap} bytes.")
    return length


def before_body(endpoint: Endpoint, request: Request, max_body_size: int) -> None:
    """The checks of the head: sets ``request.media_type``. ``max_body_size`` is the server's cap."""
    if not endpoint.takes_body:
        return
    request.media_type = media_type(request.headers.get("Content-Type"), endpoint.media_types)
    cap = max_body_size if endpoint.max_body is None else min(endpoint.max_body, max_body_size)
    length_within(request.length, cap)


def after_body(endpoint: Endpoint, request: Request) -> None:
    """The checks of the body: sets ``request.text`` for a text endpoint, then checks the nesting."""
    if not endpoint.text:
        return
    try:
        request.text = request.body.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise Refusal(
            400, "invalid_encoding", f"The body is not valid UTF-8 (byte {exc.start}).", [("$", "is not UTF-8")]
        ) from None
    per_line = JSON_TYPES.get(request.media_type)
    if endpoint.max_depth is None or per_line is None:
        return
    depth = nesting.max_depth(request.text, per_line=per_line)
    if depth > endpoint.max_depth:
        where = "a line" if per_line else "the body"
        raise Refusal(
            400,
            "too_deeply_nested",
            f"In {where}, arrays and objects nest {depth} levels deep; "
            f"this endpoint accepts at most {endpoint.max_depth}.",
            [("$", f"nests deeper than {endpoint.max_depth} levels")],
        )
