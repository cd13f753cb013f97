"""Delivery channels: REST (signed JSON), SMTP (text + CSV attachment, PGP/MIME) and files.

A channel's ``send(digest)`` returns when the receiver confirmed the digest and raises
:class:`TransientError` (try again later) or :class:`PermanentError` (keep it as failed
until an operator acts) otherwise. Retry scheduling is the spool's business, never a
sleep in here. ``finish()`` then ends what ``send`` left open (SMTP's QUIT): the caller
records the outcome in between, because a mail the server accepted (its reply to DATA)
is delivered whatever happens to the goodbye.

``send`` may return an :class:`Outcome` naming contacts the receiver refused for good
(SMTP 5xx at RCPT or DATA): the caller marks them unreachable (``intelmq_nsm.digest.contacts``).
An organisation's own language and channel (``intelmq_nsm.constituency.preferences``) win
over the channel's defaults; :class:`Channels` picks the channel per organisation.
"""

import base64
import email.policy
import email.utils
import hashlib
import hmac
import os
import smtplib
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Optional

from intelmq_nsm.digest import pgp_mime, render


class DeliveryError(Exception):
    """The receiver did not confirm the digest. ``refused``: ``(address, reason)`` of the
    contacts refused for good on the way (they are marked unreachable all the same)."""

    def __init__(self, message: str, refused=()):
        super().__init__(message)
        self.refused = list(refused)


class TransientError(DeliveryError):
    """Worth trying again: network error, timeout, 5xx, 429, a temporary SMTP error.

    ``retry_after`` is the receiver's wish in seconds (HTTP Retry-After), if it said so.
    """

    def __init__(self, message: str, retry_after: Optional[float] = None, refused=()):
        super().__init__(message, refused)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Not worth trying again without a change: a 4xx answer, a refused recipient."""


@dataclass
class Outcome:
    """What a channel says beside "delivered": who took the digest, who refused it for good
    (``(address, reason)``: unreachable), who only for now (not marked), and whether it went
    unsigned although signing was asked for (the operator allowed it: ``unsigned`` says why)."""

    accepted: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    deferred: list = field(default_factory=list)
    unsigned: str = ""


def language_of(digest, default: str) -> str:
    """The organisation's language if its registry entry names one, else the channel's."""
    language = digest.organisation.get("language")
    return language if language in render.LANGUAGES else default


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
        signer=None,
        allow_unsigned: bool = False,
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
        #: An ``openpgp.Signer``: the body's detached OpenPGP signature goes along.
        self.signer, self.allow_unsigned = signer, allow_unsigned

    def send(self, digest) -> Optional[Outcome]:
        body = render.to_json(digest)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": digest.id,
            self.signature_header: sign(self.secret, body),
        }
        unsigned = ""
        if self.signer is not None:
            signature, unsigned = detached_signature(self.signer, body, self.allow_unsigned)
            if signature:
                # A header holds no line breaks: the binary signature in base64, one line.
                headers[OPENPGP_HEADER] = base64.b64encode(dearmor(signature)).decode("ascii")
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, verify=self.verify_tls
            )
        except self.requests.RequestException as exc:
            raise TransientError(f"POST to {self.url} failed: {exc.__class__.__name__}: {exc}") from exc
        if 200 <= response.status_code < 300:
            return Outcome(unsigned=unsigned) if unsigned else None
        summary = f"POST to {self.url} answered {response.status_code}: {response.text[:200]!r}"
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(summary, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        raise PermanentError(summary)

    def close(self) -> None:
        self.session.close()


#: The REST channel's header with the body's detached OpenPGP signature (binary, base64).
OPENPGP_HEADER = "X-NSM-OpenPGP-Signature"


def detached_signature(signer, data: bytes, allow_unsigned: bool) -> tuple:
    """``(armoured signature, "")``, or with ``allow_unsigned`` ``("", why)`` when the key
    cannot sign; otherwise a signing failure is a TransientError: nothing goes unsigned,
    the digest waits until the key is mended."""
    from intelmq_nsm.digest.openpgp import OpenPGPError

    try:
        return signer.sign(data)[0], ""
    except OpenPGPError as exc:
        if allow_unsigned:
            return "", str(exc)
        raise TransientError(f"Not sent, since it cannot be signed: {exc}") from exc


def dearmor(armoured: str) -> bytes:
    """The binary OpenPGP data inside ASCII armour (RFC 4880, 6.2)."""
    lines = armoured.strip().splitlines()
    body = lines[lines.index("") + 1 : -1] if "" in lines else lines[1:-1]
    return base64.b64decode("".join(line for line in body if not line.startswith("=")))


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """An HTTP ``Retry-After`` in seconds (None if absent or not a number of seconds)."""
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
    """Mail the digest: text body in the organisation's language, the CSV attached; with a
    ``signer`` as PGP/MIME (RFC 3156) signed, and encrypted to an organisation whose registry
    entry carries its key. One SMTP transaction per contact on one connection, so that the
    server's answer (RCPT and DATA) is known per contact."""

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
        reply_to: Optional[str] = None,
        signer=None,
        allow_unsigned: bool = False,
        encrypt: bool = True,
    ):
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"smtp security must be starttls, ssl or none, not {security!r}.")
        if language not in render.LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(render.LANGUAGES)}, not {language!r}.")
        self.host, self.port, self.security = host, port, security
        self.sender = _address(sender)
        self.to = _address(to) if to else None
        self.testing_to = _address(testing_to) if testing_to else None
        self.reply_to = _address(reply_to) if reply_to else None
        self.username, self.password = username, password
        self.timeout = timeout
        self.language = language
        #: An ``openpgp.Signer`` (None: mails go unsigned); ``allow_unsigned``: send unsigned
        #: when the key cannot sign, instead of waiting; ``encrypt``: to organisations' keys.
        self.signer, self.allow_unsigned, self.encrypt = signer, allow_unsigned, encrypt
        self.tls = ssl.create_default_context()
        if not verify_tls:
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE
        self._session = None  # the SMTP connection send() leaves for finish()

    def recipients(self, digest) -> list:
        """``testing_to`` if set, else the fixed recipient, else the organisation's contacts;
        never a contact marked unreachable (``digest.organisation["unreachable"]``)."""
        unreachable = digest.organisation.get("unreachable") or {}
        if self.testing_to or self.to:
            fixed = self.testing_to or self.to
            if fixed.addr_spec.lower() in unreachable:
                raise PermanentError(
                    f"The recipient {fixed.addr_spec} is unreachable: {unreachable[fixed.addr_spec.lower()]}"
                )
            return [fixed]
        contacts = digest.organisation.get("contacts") or []
        valid = []
        for contact in contacts:
            try:
                valid.append(_address(contact))
            except ValueError:
                continue
        reachable = [a for a in valid if a.addr_spec.lower() not in unreachable]
        if not valid:
            raise PermanentError(
                f"Organisation {digest.organisation.get('id')!r} has no valid contact address ({contacts!r})."
            )
        if not reachable:
            reasons = "; ".join(f"{a.addr_spec}: {unreachable[a.addr_spec.lower()]}" for a in valid)
            organisation = digest.organisation.get("id")
            raise PermanentError(f"Every contact of organisation {organisation!r} is unreachable ({reasons}).")
        return reachable

    def headers(self, digest, recipients) -> EmailMessage:
        """The mail's headers (no body): the digest id in the subject, Message-ID and
        X-NSM-Digest-Id; Auto-Submitted and Reply-To keep auto-replies and loops off the
        sender (RFC 3834)."""
        # Long ids stay on one line (RFC 5322 allows 998 characters), so the Message-ID
        # and X-NSM-Digest-Id headers read back exactly as written.
        msg = EmailMessage(policy=pgp_mime.POLICY)
        # EmailMessage refuses header values with line breaks, and render.subject strips
        # control characters from the organisation's name: event values cannot add headers.
        msg["Subject"] = render.subject(digest, language_of(digest, self.language))
        msg["From"] = self.sender
        msg["To"] = recipients
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        msg["Date"] = email.utils.formatdate(digest.created, usegmt=True)
        # The same digest always has the same Message-ID: a repeat after a crash is recognisable.
        msg["Message-ID"] = f"<{digest.id}@{self.sender.domain}>"
        msg["X-NSM-Digest-Id"] = digest.id
        msg["X-NSM-TLP"] = render.tlp(digest)
        # Machine-made (RFC 3834): vacation replies and other responders stay quiet;
        # Exchange reads its own header for the same.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        return msg

    def compose(self, digest, recipients=None) -> tuple:
        """The mail's bytes and, if it went unsigned although signing was asked for, why."""
        recipients = self.recipients(digest) if recipients is None else recipients
        language = language_of(digest, self.language)
        content = pgp_mime.content_part(
            render.to_text(digest, language), render.to_csv(digest).encode("utf-8"), render.csv_name(digest)
        )
        headers = self.headers(digest, recipients)
        if self.signer is None:
            return pgp_mime.mail(headers, content), ""
        from intelmq_nsm.digest.openpgp import OpenPGPError, RecipientKeyError

        try:
            signature, micalg = self.signer.sign(content)
        except OpenPGPError as exc:
            if not self.allow_unsigned:
                raise TransientError(f"Not sent, since it cannot be signed: {exc}") from exc
            return pgp_mime.mail(headers, content), str(exc)
        entity = pgp_mime.signed_entity(content, signature, micalg)
        key = digest.organisation.get("openpgp")
        if self.encrypt and key:
            try:
                entity = pgp_mime.encrypted_entity(self.signer.encrypt(entity, key["fingerprint"], key["key_file"]))
            except RecipientKeyError as exc:
                # Never fall back to plain text for an organisation that asked for encryption.
                raise PermanentError(f"Not sent, since it cannot be encrypted as its organisation asks: {exc}") from exc
        return pgp_mime.mail(headers, entity), ""

    def message(self, digest) -> EmailMessage:
        """The mail as the receiver parses it."""
        return email.message_from_bytes(self.compose(digest)[0], policy=email.policy.default)

    def send(self, digest) -> Outcome:
        """Mail the digest to each recipient in a transaction of its own; returns once the server
        accepted it for at least one (its reply to DATA), before QUIT. A contact refused with
        5xx is in ``refused``; with none accepted the digest failed (for good if every refusal
        was permanent)."""
        recipients = self.recipients(digest)
        raw, unsigned = self.compose(digest, recipients)
        outcome = Outcome(unsigned=unsigned)
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
        except smtplib.SMTPResponseException as exc:
            raise _response_error(exc) from exc
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TransientError(f"SMTP to {self.host}:{self.port} failed: {exc.__class__.__name__}: {exc}") from exc
        for number, recipient in enumerate(recipients):
            address = recipient.addr_spec
            try:
                server.sendmail(self.sender.addr_spec, [address], raw)
                outcome.accepted.append(address)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                _sort(outcome, address, code, f"RCPT answered {code} {_text(text)}")
            except smtplib.SMTPDataError as exc:
                _sort(outcome, address, exc.smtp_code, f"DATA answered {exc.smtp_code} {_text(exc.smtp_error)}")
            except smtplib.SMTPSenderRefused as exc:
                # About the sender, not the contact: nothing to mark.
                if outcome.accepted:
                    outcome.deferred += [(r.addr_spec, str(exc)) for r in recipients[number:]]
                    break
                raise _response_error(exc) from exc
            except (smtplib.SMTPException, OSError, socket.timeout) as exc:
                reason = f"SMTP to {self.host}:{self.port} failed: {exc.__class__.__name__}: {exc}"
                if outcome.accepted:
                    # The connection broke after some contacts got it: the organisation has it.
                    outcome.deferred += [(r.addr_spec, reason) for r in recipients[number:]]
                    break
                raise TransientError(reason, refused=outcome.refused) from exc
        if outcome.accepted:
            return outcome
        summary = "; ".join(f"{a}: {r}" for a, r in outcome.refused + outcome.deferred)
        if outcome.deferred:
            raise TransientError(f"No contact took the digest for now ({summary})", refused=outcome.refused)
        raise PermanentError(f"Every contact refused the digest ({summary})", refused=outcome.refused)

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


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())


def _sort(outcome: Outcome, address: str, code: int, reason: str) -> None:
    """A refusal: permanent (5xx: the contact is unreachable) or for now (4xx)."""
    (outcome.refused if 500 <= code < 600 else outcome.deferred).append((address, reason))


def _response_error(exc: smtplib.SMTPResponseException) -> DeliveryError:
    text = f"The SMTP server answered {exc.smtp_code}: {exc.smtp_error!r}"
    return TransientError(text) if 400 <= exc.smtp_code < 500 else PermanentError(text)


class FileChannel:
    """Write ``<digest id>.<format>`` files into a directory, each atomically."""

    FORMATS = ("json", "csv", "txt")

    def __init__(
        self, directory: str, formats=FORMATS, language: str = "nl", signer=None, allow_unsigned: bool = False
    ):
        if not directory:
            raise ValueError("A file channel needs a directory.")
        unknown = set(formats) - set(self.FORMATS)
        if unknown or not formats:
            raise ValueError(f"file formats must be some of {', '.join(self.FORMATS)}, not {list(formats)!r}.")
        self.directory = Path(directory)
        self.formats = list(formats)
        self.language = language
        #: An ``openpgp.Signer``: the JSON gets a detached signature, ``<digest id>.json.asc``.
        self.signer, self.allow_unsigned = signer, allow_unsigned

    def _content(self, digest, fmt: str) -> bytes:
        if fmt == "json":
            return render.to_json(digest)
        if fmt == "csv":
            return render.to_csv(digest).encode("utf-8")
        return render.to_text(digest, language_of(digest, self.language)).encode("utf-8")

    def send(self, digest) -> Optional[Outcome]:
        files = [(f"{digest.id}.{fmt}", self._content(digest, fmt)) for fmt in self.formats]
        unsigned = ""
        if self.signer is not None:
            signature, unsigned = detached_signature(self.signer, render.to_json(digest), self.allow_unsigned)
            if signature:
                # Before the JSON: a reader who sees the JSON finds its signature beside it.
                files.insert(0, (f"{digest.id}.json.asc", signature.encode("ascii")))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for name, content in files:
                _write_atomically(self.directory / name, content)
        except OSError as exc:
            raise TransientError(f"Writing digest {digest.id} into {self.directory} failed: {exc}") from exc
        return Outcome(unsigned=unsigned) if unsigned else None

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


#: The output's channel names and the names an organisation's registry entry uses for them.
PREFERENCE_NAMES = {"smtp": "mail", "rest": "rest", "file": "file"}


class Channels:
    """The output's channels, by name (``smtp``, ``rest``, ``file``): an organisation's digest
    goes over the channel its registry entry names (``mail``, ``rest``, ``file``) when
    ``follow_organisations``, else, and for organisations that name none, over ``default``.
    An organisation asking for a channel the output has no parameters for: the digest fails,
    visibly, rather than going another way than the organisation asked."""

    def __init__(self, channels: dict, default: str, follow_organisations: bool = True):
        if default not in channels:
            raise ValueError(f"The default channel {default!r} is not among {sorted(channels)}.")
        self.channels, self.default, self.follow = dict(channels), default, follow_organisations
        self._last = None

    def pick(self, digest):
        wanted = digest.organisation.get("channel") if self.follow else None
        if not wanted:
            return self.channels[self.default]
        name = next((n for n, p in PREFERENCE_NAMES.items() if p == wanted), wanted)
        if name not in self.channels:
            raise PermanentError(
                f"Organisation {digest.organisation.get('id')!r} asks for its digests by {wanted}, for which this"
                f" output has no parameters (it has {', '.join(PREFERENCE_NAMES[n] for n in self.channels)})."
            )
        return self.channels[name]

    def send(self, digest):
        channel = self.pick(digest)
        self._last = channel
        return channel.send(digest)

    def finish(self) -> None:
        channel, self._last = self._last, None
        finish = getattr(channel, "finish", None)
        if finish is not None:
            finish()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
