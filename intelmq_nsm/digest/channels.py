"""Delivery channels: REST (signed JSON), SMTP (text + CSV attachment) and files.

A channel's ``send(digest)`` returns when the receiver confirmed the digest and raises
:class:`TransientError` (try again later) or :class:`PermanentError` (keep it as failed
until an operator acts) otherwise. Retry scheduling is the spool's business, never a
sleep in here. ``finish()`` then ends what ``send`` left open (SMTP's QUIT): the caller
records the outcome in between, because a mail the server accepted (its reply to DATA)
is delivered whatever happens to the goodbye.
"""

import email.policy
import email.utils
import hashlib
import hmac
import os
import smtplib
import socket
import ssl
import tempfile
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Optional

from intelmq_nsm.digest import render


class DeliveryError(Exception):
    """The receiver did not confirm the digest."""


class TransientError(DeliveryError):
    """Worth trying again: network error, timeout, 5xx, 429, a temporary SMTP error.

    ``retry_after`` is the receiver's wish in seconds (HTTP Retry-After), if it said so.
    """

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Not worth trying again without a change: a 4xx answer, a refused recipient."""


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC-SHA256 of the exact body, hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


#: Seconds to wait for the answer to QUIT: the message is accepted already.
QUIT_TIMEOUT = 5.0


class RestChannel:
    """POST the digest's JSON to ``url``, signed, with the digest id as Idempotency-Key."""

    def __init__(
        self,
        url: str,
        secret: str,
        signature_header: str = "X-NSM-Signature",
        timeout: float = 30.0,
        verify_tls: bool = True,
        session=None,
    ):
        import requests

        if not url or not url.startswith(("http://", "https://")):
            raise ValueError(f"A REST channel needs an http(s) URL, not {url!r}.")
        if not secret:
            raise ValueError("A REST channel needs a shared secret to sign its requests.")
        self.url = url
        self.secret = secret.encode("utf-8")
        self.signature_header = signature_header
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.requests = requests
        self.session = session or requests.Session()

    def send(self, digest) -> None:
        body = render.to_json(digest)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": digest.id,
            self.signature_header: sign(self.secret, body),
        }
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, verify=self.verify_tls
            )
        except self.requests.RequestException as exc:
            raise TransientError(f"POST to {self.url} failed: {exc.__class__.__name__}: {exc}") from exc
        if 200 <= response.status_code < 300:
            return
        summary = f"POST to {self.url} answered {response.status_code}: {response.text[:200]!r}"
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(summary, retry_after=_retry_after(response.headers.get("Retry-After")))
        raise PermanentError(summary)

    def close(self) -> None:
        self.session.close()


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _address(value: str) -> Address:
    """A single mailbox; raises ValueError for anything else (line breaks, several, garbage)."""
    value = (value or "").strip()
    if not value or any(c in value for c in '\r\n,;<>"') or value.count("@") != 1:
        raise ValueError(f"{value!r} is not a single e-mail address.")
    return Address(addr_spec=value)


class SmtpChannel:
    """Mail the digest: text body in the chosen language, the CSV attached."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: Optional[str] = None,
        testing_to: Optional[str] = None,
        security: str = "starttls",
        username: Optional[str] = None,
        password: Optional[str] = None,
        timeout: float = 30.0,
        language: str = "nl",
        verify_tls: bool = True,
    ):
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"smtp security must be starttls, ssl or none, not {security!r}.")
        if language not in render.LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(render.LANGUAGES)}, not {language!r}.")
        self.host, self.port, self.security = host, port, security
        self.sender = _address(sender)
        self.to = _address(to) if to else None
        self.testing_to = _address(testing_to) if testing_to else None
        self.username, self.password = username, password
        self.timeout = timeout
        self.language = language
        self.tls = ssl.create_default_context()
        if not verify_tls:
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE
        self._session = None  # the SMTP connection send() leaves for finish()

    def recipients(self, digest) -> list:
        """``testing_to`` if set, else the fixed recipient, else the organisation's contacts."""
        if self.testing_to:
            return [self.testing_to]
        if self.to:
            return [self.to]
        contacts = digest.organisation.get("contacts") or []
        valid = []
        for contact in contacts:
            try:
                valid.append(_address(contact))
            except ValueError:
                continue
        if not valid:
            raise PermanentError(
                f"Organisation {digest.organisation.get('id')!r} has no valid contact address ({contacts!r})."
            )
        return valid

    def message(self, digest) -> EmailMessage:
        # Long ids stay on one line (RFC 5322 allows 998 characters), so the Message-ID
        # and X-NSM-Digest-Id headers read back exactly as written.
        msg = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        # EmailMessage refuses header values with line breaks, and render.subject strips
        # control characters from the organisation's name: event values cannot add headers.
        msg["Subject"] = render.subject(digest, self.language)
        msg["From"] = self.sender
        msg["To"] = self.recipients(digest)
        msg["Date"] = email.utils.formatdate(digest.created, usegmt=True)
        # The same digest always has the same Message-ID: a repeat after a crash is recognisable.
        msg["Message-ID"] = f"<{digest.id}@{self.sender.domain}>"
        msg["X-NSM-Digest-Id"] = digest.id
        msg.set_content(render.to_text(digest, self.language))
        # Bytes in base64 keep the CSV's CRLF line ends exactly; the charset parameter tells
        # the mail client how to read them.
        msg.add_attachment(
            render.to_csv(digest).encode("utf-8"),
            maintype="text",
            subtype="csv",
            filename=f"{digest.organisation.get('id', 'digest')}-{digest.id[:12]}.csv",
            params={"charset": "utf-8"},
        )
        return msg

    def send(self, digest) -> None:
        """Mail the digest; returns once the server accepted it (its reply to DATA), before QUIT."""
        msg = self.message(digest)
        self.finish()
        try:
            if self.security == "ssl":
                server = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.tls)
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self._session = server
            if self.security == "starttls":
                server.starttls(context=self.tls)
            if self.username:
                server.login(self.username, self.password or "")
            refused = server.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"The SMTP server refused every recipient: {exc.recipients!r}") from exc
        except smtplib.SMTPResponseException as exc:
            text = f"The SMTP server answered {exc.smtp_code}: {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TransientError(text) from exc
            raise PermanentError(text) from exc
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TransientError(f"SMTP to {self.host}:{self.port} failed: {exc.__class__.__name__}: {exc}") from exc
        if refused:
            # Some recipients took it: sending again would repeat it to them. Keep it visible.
            raise PermanentError(f"The SMTP server refused some recipients: {refused!r}")

    def finish(self) -> None:
        """Say QUIT on the connection the last ``send`` left open, briefly; errors do not matter."""
        server, self._session = self._session, None
        if server is None:
            return
        try:
            if server.sock is not None:
                server.sock.settimeout(min(self.timeout, QUIT_TIMEOUT))
                server.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            server.close()

    def close(self) -> None:
        self.finish()


class FileChannel:
    """Write ``<digest id>.<format>`` files into a directory, each atomically."""

    FORMATS = ("json", "csv", "txt")

    def __init__(self, directory: str, formats=FORMATS, language: str = "nl"):
        if not directory:
            raise ValueError("A file channel needs a directory.")
        unknown = set(formats) - set(self.FORMATS)
        if unknown or not formats:
            raise ValueError(f"file formats must be some of {', '.join(self.FORMATS)}, not {list(formats)!r}.")
        self.directory = Path(directory)
        self.formats = list(formats)
        self.language = language

    def _content(self, digest, fmt: str) -> bytes:
        if fmt == "json":
            return render.to_json(digest)
        if fmt == "csv":
            return render.to_csv(digest).encode("utf-8")
        return render.to_text(digest, self.language).encode("utf-8")

    def send(self, digest) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for fmt in self.formats:
                _write_atomically(self.directory / f"{digest.id}.{fmt}", self._content(digest, fmt))
        except OSError as exc:
            raise TransientError(f"Writing digest {digest.id} into {self.directory} failed: {exc}") from exc

    def close(self) -> None:
        pass


def _write_atomically(path: Path, content: bytes) -> None:
    """A reader sees the old file or the whole new one, never half of it, even after a crash."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
