"""Strict request framing (RFC 9112 section 6): one body length, stated in digits only.

A proxy and this server must agree on where a request ends, or a second request can be
smuggled inside the first's body. So ``Content-Length`` must be digits only (no sign,
no underscore, no inner space) and, if repeated, the same each time; chunked bodies are
not taken at all. The whitespace around a field value is not part of it (RFC 9110
section 5.5): tornado strips it before this check sees the value.
"""

import re
from typing import Optional

from intelmq_nsm.web.refusal import Refusal

_DIGITS = re.compile(r"[0-9]+")


def body_length(headers) -> Optional[int]:
    """The body's length from the headers, None without ``Content-Length``; a Refusal for bad framing."""
    if headers.get("Transfer-Encoding") is not None:
        raise Refusal(411, "length_required", "Chunked bodies are not accepted; send a Content-Length.")
    values = headers.get_list("Content-Length")
    if not values:
        return None
    pieces = [piece.strip(" \t") for value in values for piece in value.split(",")]
    if not all(_DIGITS.fullmatch(piece) for piece in pieces):
        raise Refusal(400, "bad_content_length", "Content-Length must be a number of digits only.")
    if len({int(piece) for piece in pieces}) > 1:
        raise Refusal(400, "bad_content_length", "The request has conflicting Content-Length values.")
    return int(pieces[0])
