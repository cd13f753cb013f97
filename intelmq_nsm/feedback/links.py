"""Signed feedback links: who may answer for which findings of which digest, until when.

A link's token is ``<payload>.<mac>``, both URL-safe base64 without padding. The payload
is compact JSON ``{"v": 1, "d": digest id, "o": organisation id, "f": finding id or
null, "e": expiry (Unix seconds)}``; the MAC is HMAC-SHA256 under the server's secret
over a domain label and the payload, checked with :func:`hmac.compare_digest`. A link
without a finding id stands for all of that organisation's findings in that digest.

Nothing in a link is secret but the MAC: an organisation can read its own link, and a
link changed in any byte (another finding, organisation, digest or expiry) fails the
check. The expiry is the digest's creation time plus the lifetime, so a digest rendered
again for a retried delivery carries the very same links (and the same REST signature).
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode

from intelmq_nsm import storage

VERSION = 1
#: Separates link MACs from every other MAC made with the same secret (the forms' CSRF tokens).
_LINK_LABEL = b"nsm-feedback-link/1\n"
_CSRF_LABEL = b"nsm-feedback-form/1\n"
#: A secret shorter than this is refused: the links' safety is the secret's.
MIN_SECRET_BYTES = 32
#: Thirty days: long enough for a municipality's change process, short enough to age out.
DEFAULT_LIFETIME = 30 * 24 * 3600
#: The path of the page on the service.
PAGE_PATH = "/feedback"
#: Upper bound of a token's length, checked before any decoding.
MAX_TOKEN_CHARS = 2048


class LinkError(ValueError):
    """A link that cannot be honoured; ``reason`` is one of tampered, expired, malformed."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SecretError(ValueError):
    """The secret file is missing, unreadable or too short."""


@dataclass(frozen=True)
class Link:
    digest_id: str
    org_id: str
    finding_id: Optional[str]
    expires: int

    @property
    def whole_digest(self) -> bool:
        return self.finding_id is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_secret(path) -> bytes:
    """The secret in ``path`` (surrounding whitespace stripped); SecretError when unusable."""
    path = Path(path)
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"The feedback secret file {path} cannot be read: {exc.strerror or exc}.") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(
            f"The feedback secret in {path} is {len(secret)} bytes long; it must be at least {MIN_SECRET_BYTES}."
        )
    return secret


def create_secret(path) -> bool:
    """Write a new random secret to ``path`` (mode 0600) unless it exists; True if written."""
    path = Path(path)
    if path.exists():
        return False
    storage.atomic_write(path, (secrets.token_urlsafe(48) + "\n").encode("ascii"), mode=0o600)
    return True


class LinkSigner:
    """Makes and checks links with one secret."""

    def __init__(self, secret: bytes, lifetime: float = DEFAULT_LIFETIME):
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretError(f"A feedback secret must be at least {MIN_SECRET_BYTES} bytes long.")
        self._secret = bytes(secret)
        self.lifetime = float(lifetime)

    @classmethod
    def from_file(cls, path, lifetime: float = DEFAULT_LIFETIME) -> "LinkSigner":
        return cls(read_secret(path), lifetime)

    def sign(self, label: bytes, text: str) -> str:
        """An HMAC-SHA256 of ASCII ``text`` under the secret, as URL-safe base64. ``label``
        keeps each use apart (links, forms, the operators' sessions): one label per use."""
        return _b64(hmac.new(self._secret, label + text.encode("ascii"), hashlib.sha256).digest())

    def signed(self, label: bytes, text: str, mac: Optional[str]) -> bool:
        """Whether ``mac`` is :meth:`sign`'s for ``label`` and ``text`` (compared in constant time)."""
        try:
            return bool(mac) and hmac.compare_digest(self.sign(label, text), mac)
        except (TypeError, UnicodeEncodeError):
            return False

    def token(self, digest_id: str, org_id: str, finding_id: Optional[str], created: float) -> str:
        """The token of a link that expires ``lifetime`` seconds after ``created``."""
        payload = {"v": VERSION, "d": digest_id, "o": org_id, "f": finding_id, "e": int(created + self.lifetime)}
        text = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        return f"{text}.{self.sign(_LINK_LABEL, text)}"

    def verify(self, token: Optional[str], now: Optional[float] = None) -> Link:
        """The link a token stands for; LinkError if it is malformed, tampered with or expired."""
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise LinkError("malformed", "This is not a feedback link.")
        text, mac = token.split(".")
        try:
            text.encode("ascii")
            mac.encode("ascii")
        except UnicodeEncodeError:
            raise LinkError("malformed", "This is not a feedback link.") from None
        # The MAC first: nothing of an unsigned payload is looked at.
        if not self.signed(_LINK_LABEL, text, mac):
            raise LinkError("tampered", "This link was changed or was not made by this service.")
        try:
            payload = json.loads(_unb64(text))
            link = Link(str(payload["d"]), str(payload["o"]), payload["f"], int(payload["e"]))
            if payload["v"] != VERSION or (link.finding_id is not None and not isinstance(link.finding_id, str)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise LinkError("malformed", "This is not a feedback link.") from None
        if (time.time() if now is None else now) >= link.expires:
            raise LinkError("expired", "This link has expired.")
        return link

    def csrf(self, token: str) -> str:
        """The form token bound to a link's token: a form posted without it is refused."""
        return self.sign(_CSRF_LABEL, token)

    def csrf_ok(self, token: str, value: Optional[str]) -> bool:
        return self.signed(_CSRF_LABEL, token, value)


def url(base_url: str, token: str) -> str:
    """The link: the service's base URL, the page's path and the token as the ``link`` parameter."""
    return f"{base_url.rstrip('/')}{PAGE_PATH}?{urlencode({'link': token})}"


class DigestLinks:
    """What the digest output adds to a digest before it renders it: a link per finding
    and one for the whole digest (the organisation's findings in it)."""

    def __init__(self, base_url: str, signer: LinkSigner):
        self.base_url, self.signer = base_url, signer

    def annotate(self, digest):
        org_id = str(digest.organisation.get("id"))
        for finding in digest.findings:
            if finding.get("finding_id"):
                token = self.signer.token(digest.id, org_id, finding["finding_id"], digest.created)
                finding["feedback_url"] = url(self.base_url, token)
        digest.feedback_url = url(self.base_url, self.signer.token(digest.id, org_id, None, digest.created))
        return digest
