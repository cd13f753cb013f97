"""Bounces: delivery status notifications (RFC 3464) that mark contacts unreachable.

A mail server that accepted a digest may still fail to deliver it and send a DSN to the
sender's bounce mailbox: ``multipart/report; report-type=delivery-status`` with a
``message/delivery-status`` part holding, per recipient, ``Final-Recipient``, ``Action``
and ``Status`` (and usually ``Diagnostic-Code``), and the digest's headers (its
``X-NSM-Digest-Id``, or the Message-ID the output made from the digest id) in a
``message/rfc822`` or ``text/rfc822-headers`` part. Python's email package reads all of it.
A recipient whose ``Action`` is ``failed`` with a ``5.x.x`` status is unreachable; delays
(``4.x.x``, ``delayed``) and successes mark nothing.

Where the CERT reads its bounce mailbox into a Maildir, the digest output reads it every
delivery round (``bounce_maildir``); ``intelmq-nsm spool FILE bounces`` reads files or a
Maildir by hand.
"""

import email
import email.policy
import mailbox
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from pathlib import Path
from typing import Optional

_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}")
_MESSAGE_ID = re.compile(r"<([0-9a-f]{64})@")


@dataclass(frozen=True)
class Bounce:
    """One recipient of a DSN."""

    recipient: str
    action: str
    status: str
    diagnostic: str
    digest_id: str

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")

    @property
    def reason(self) -> str:
        text = f"delivery status {self.status} ({self.action})"
        return f"{text}: {self.diagnostic}" if self.diagnostic else text


def parse(raw: bytes) -> list:
    """The recipients a DSN reports on; [] for a mail that is no DSN (an auto-reply, spam)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if message.get_content_type() != "multipart/report":
        return []
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return []
    status_part = original = None
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status" and status_part is None:
            status_part = part
        elif kind in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = part
    if status_part is None:
        return []
    digest_id = _digest_id(original)
    bounces = []
    for block in _blocks(status_part)[1:]:  # the first block is about the message, not a recipient
        recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if not recipient:
            continue
        status = _STATUS.match(str(block.get("Status") or "").strip())
        bounces.append(
            Bounce(
                recipient=recipient,
                action=str(block.get("Action") or "").strip().lower(),
                status=status.group(0) if status else str(block.get("Status") or "").strip(),
                diagnostic=" ".join(_type_value(block.get("Diagnostic-Code")).split())[:500],
                digest_id=digest_id,
            )
        )
    return bounces


def _blocks(part: Message) -> list:
    """The header blocks of a ``message/delivery-status`` part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    # Some parsers leave it as text: blocks are separated by blank lines.
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(b) for b in re.split(r"\r?\n\s*\r?\n", text.strip()) if b.strip()]


def _type_value(value) -> str:
    """``rfc822; someone@example`` → ``someone@example``; ``smtp; 550 ...`` → ``550 ...``."""
    text = str(value or "").strip()
    kind, semicolon, rest = text.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else text


def _address(value) -> str:
    return _type_value(value).strip("<> ").lower()


def _digest_id(original: Optional[Message]) -> str:
    """The digest the bounced mail was: its X-NSM-Digest-Id, or the id in its Message-ID."""
    if original is None:
        return ""
    if original.get_content_type() == "message/rfc822":
        payload = original.get_payload()
        headers = payload[0] if isinstance(payload, list) and payload else None
    else:
        content = original.get_payload(decode=True) or b""
        headers = BytesHeaderParser().parsebytes(content)
    if headers is None:
        return ""
    digest_id = str(headers.get("X-NSM-Digest-Id") or "").strip()
    if re.fullmatch(r"[0-9a-f]{64}", digest_id):
        return digest_id
    match = _MESSAGE_ID.search(str(headers.get("Message-ID") or ""))
    return match.group(1) if match else ""


def record(book, raw: bytes, now: Optional[float] = None) -> list:
    """Mark in the ContactBook ``book`` every recipient the DSN ``raw`` says failed for good;
    return those Bounces."""
    marked = []
    for bounce in parse(raw):
        if bounce.permanent:
            org_id = book.organisation_of(bounce.digest_id)
            book.mark(bounce.recipient, bounce.reason, "dsn", org_id, bounce.digest_id or None, now=now)
            marked.append(bounce)
    return marked


def read_maildir(book, path, now: Optional[float] = None) -> list:
    """Read the new mails of the Maildir ``path`` as DSNs (:func:`record`) and move each to
    ``cur`` marked seen, so that it is read once. Returns the Bounces that marked a contact."""
    folder = mailbox.Maildir(str(path), factory=None, create=False)
    marked = []
    for key in list(folder.iterkeys()):
        message = folder.get_message(key)
        if message.get_subdir() != "new":
            continue
        marked += record(book, folder.get_bytes(key), now=now)
        message.set_subdir("cur")
        message.add_flag("S")
        folder[key] = message
    return marked


def read_files(book, paths, now: Optional[float] = None) -> list:
    """Read mails from files (``.eml``, one mail each) as DSNs; return the Bounces that marked."""
    marked = []
    for path in paths:
        marked += record(book, Path(path).read_bytes(), now=now)
    return marked
