"""PGP/MIME (RFC 3156): a mail's content signed (``multipart/signed``), optionally then
encrypted (``multipart/encrypted``, RFC 3156 6.1: the signed entity is what is encrypted).

The signature covers the content part's bytes exactly as they stand in the mail, with CRLF
line ends; its leaves are base64, so no relay re-wraps a line and breaks the signature.
Here the mail's bytes are put together by hand around those bytes, never re-serialised
after signing. The headers outside the signed part (From, To, Subject, ...) are not covered,
as in every PGP/MIME mail.
"""

import email.policy
import secrets
from email.message import EmailMessage, MIMEPart

#: The policy every part is written with: CRLF, long ids kept on one line.
POLICY = email.policy.SMTP.clone(max_line_length=998)
CRLF = b"\r\n"
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
    boundary = _boundary().encode("ascii")
    sig = signature.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")
    head = (
        f'Content-Type: multipart/signed; micalg="{micalg}";\r\n'
        f' protocol="application/pgp-signature"; boundary="{boundary.decode()}"\r\n\r\n'
    ).encode("ascii")
    return b"".join(
        [
            head,
            PREAMBLE + CRLF,
            b"--" + boundary + CRLF,
            content,
            # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1): the
            # signed bytes are ``content`` exactly.
            CRLF + b"--" + boundary + CRLF,
            b'Content-Type: application/pgp-signature; name="signature.asc"\r\n',
            b"Content-Description: OpenPGP digital signature\r\n",
            b'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n',
            sig if sig.endswith(CRLF) else sig + CRLF,
            CRLF + b"--" + boundary + b"--" + CRLF,
        ]
    )


def encrypted_entity(armoured: str) -> bytes:
    """The ``multipart/encrypted`` entity around an armoured OpenPGP message."""
    boundary = _boundary().encode("ascii")
    data = armoured.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")
    return b"".join(
        [
            b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n',
            b' boundary="' + boundary + b'"\r\n\r\n',
            ENCRYPTED_PREAMBLE + CRLF,
            b"--" + boundary + CRLF,
            b"Content-Type: application/pgp-encrypted\r\n",
            b"Content-Description: PGP/MIME version identification\r\n\r\n",
            b"Version: 1\r\n",
            CRLF + b"--" + boundary + CRLF,
            b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n',
            b"Content-Description: OpenPGP encrypted message\r\n",
            b'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n',
            data if data.endswith(CRLF) else data + CRLF,
            CRLF + b"--" + boundary + b"--" + CRLF,
        ]
    )


def plain_entity(content: bytes) -> bytes:
    """An unsigned mail's body: the content part as the whole entity."""
    return content


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
