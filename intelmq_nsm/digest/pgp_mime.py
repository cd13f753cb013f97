"""PGP/MIME (RFC 3156): a mail's content signed (``multipart/signed``), optionally then
encrypted (``multipart/encrypted``, RFC 3156 6.1: the signed entity is what is encrypted).

The signature covers the content part's bytes exactly as they stand in the mail, with CRLF
line ends; its leaves are base64, so no relay re-wraps a line and breaks the signature.
Here the mail's bytes are put together by hand around those bytes, never re-serialised
after signing. The headers outside the signed part (From, To, Subject, ...) are not covered,
as in every PGP/MIME mail. :func:`signed_and_signature` is the receiver's side: the signed
bytes and the signature of a received mail, for ``gpg --verify``.
"""

import email.policy
import re
import secrets
from email.message import EmailMessage, MIMEPart

#: The policy every part is written with: CRLF, long ids kept on one line.
POLICY = email.policy.SMTP.clone(max_line_length=998)
CRLF = b"\r\n"
SIGNED = "multipart/signed"
ENCRYPTED = "multipart/encrypted"
PREAMBLE = b"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)."
ENCRYPTED_PREAMBLE = b"This is an OpenPGP/MIME encrypted message (RFC 2440 and 3156)."


def content_part(text: str, attachment: bytes, filename: str) -> bytes:
    """The part that is signed: text and CSV as ``multipart/mixed``, both base64, as bytes
    with CRLF line ends."""
    part = MIMEPart(policy=POLICY)
    part.set_content(text, cte="base64")
    part.add_attachment(attachment, maintype="text", subtype="csv", filename=filename, params={"charset": "utf-8"})
    return part.as_bytes(policy=POLICY)


def _boundary() -> str:
    return "nsm-" + secrets.token_hex(12)


def signed_entity(content: bytes, signature: str, micalg: str) -> bytes:
    """The ``multipart/signed`` entity (its Content-Type header, a blank line, the body)."""
    signature_part = (
        b'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
        b"Content-Description: OpenPGP digital signature\r\n"
        b'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n' + _crlf(signature)
    )
    kind = f'{SIGNED}; micalg="{micalg}";\r\n protocol="application/pgp-signature"'
    # The signed bytes are ``content`` exactly: the CRLF after it belongs to the boundary.
    return _multipart(kind, PREAMBLE, [content, signature_part])


def encrypted_entity(armoured: str) -> bytes:
    """The ``multipart/encrypted`` entity around an armoured OpenPGP message."""
    version = (
        b"Content-Type: application/pgp-encrypted\r\n"
        b"Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n"
    )
    data = (
        b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
        b"Content-Description: OpenPGP encrypted message\r\n"
        b'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n' + _crlf(armoured)
    )
    return _multipart(f'{ENCRYPTED}; protocol="application/pgp-encrypted"', ENCRYPTED_PREAMBLE, [version, data])


def _crlf(text: str) -> bytes:
    """ASCII armour with CRLF line ends, ending in one."""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")
    return data if data.endswith(CRLF) else data + CRLF


def _multipart(kind: str, preamble: bytes, parts: list) -> bytes:
    """A multipart entity: ``Content-Type: kind; boundary=…``, the preamble, the parts as given.
    The CRLF before each boundary line belongs to the boundary (RFC 2046 5.1.1)."""
    boundary = _boundary().encode("ascii")
    head = f'Content-Type: {kind}; boundary="{boundary.decode()}"\r\n\r\n'.encode("ascii")
    body = b"".join(b"--" + boundary + CRLF + part + CRLF for part in parts)
    return head + preamble + CRLF + body + b"--" + boundary + b"--" + CRLF


def mail(headers: EmailMessage, entity: bytes) -> bytes:
    """The mail's bytes: ``headers`` (an EmailMessage holding only headers; MIME-Version is
    added) followed by ``entity``, whose own headers (Content-Type, ...) join them."""
    if "MIME-Version" not in headers:
        headers["MIME-Version"] = "1.0"
    head = headers.as_bytes(policy=POLICY)
    # An EmailMessage without payload ends its headers with the blank line; the entity's
    # headers belong before it.
    head = head[: -len(CRLF)] if head.endswith(CRLF + CRLF) else head
    return head + entity


class NotSigned(ValueError):
    """The mail is not a PGP/MIME-signed one (RFC 3156 ``multipart/signed`` with two parts)."""


_HEADERS_END = re.compile(rb"\r?\n\r?\n")
_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.IGNORECASE)


def signed_and_signature(raw: bytes) -> tuple:
    """``(signed bytes, armoured signature)`` of a PGP/MIME-signed mail as received: the first
    part byte for byte as it stands between its boundaries (the CRLF before a boundary belongs
    to the boundary, RFC 2046 5.1.1) and the second part's body. Raises NotSigned."""
    head, _, body = raw.partition(b"\r\n\r\n")
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    kind = re.search(rb"^Content-Type:[ \t]*([^;\r\n]+)(.*)$", unfolded, re.IGNORECASE | re.MULTILINE)
    if not kind or kind.group(1).strip().lower() != SIGNED.encode():
        raise NotSigned(f"The mail is not {SIGNED}.")
    boundary = _BOUNDARY.search(kind.group(2))
    if not boundary:
        raise NotSigned(f"The mail's {SIGNED} has no boundary.")
    delimiter = CRLF + b"--" + boundary.group(1)
    pieces = (CRLF + body).split(delimiter)
    # pieces: the preamble, each part (after its boundary line's CRLF), then "--" and the epilogue.
    parts = [piece[len(CRLF) :] for piece in pieces[1:] if not piece.startswith(b"--")]
    if len(parts) != 2:
        raise NotSigned(f"The mail's {SIGNED} has {len(parts)} parts, not 2.")
    signature = _HEADERS_END.split(parts[1], 1)
    if len(signature) != 2:
        raise NotSigned("The mail's signature part has no body.")
    return parts[0], signature[1]
