"""A local SMTP sink for the demo, the tests and the benchmarks: aiosmtpd keeping every mail it receives."""

import asyncio
import email
import email.policy
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from intelmq_nsm.testbed.pipeline import LOOPBACK, HarnessError, free_port


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every mail it accepted.

    ``messages`` holds ``(envelope sender, recipients, email.message.EmailMessage)``;
    ``logins`` is for an authenticator to note who logged in. ``data_delay`` holds the reply
    to DATA that many seconds after the message arrived (kept already: a client that gives
    up meanwhile leaves a copy here), ``quit_delay`` the reply to QUIT; ``quits`` counts the
    QUIT commands received, ``raw`` keeps each message's bytes. ``keep``: a folder where each
    mail is also written, as received, to an ``.eml`` file named by its arrival and first
    recipient (``0001-security@rotterdam.example.eml``); ``files`` lists them.
    """

    def __init__(self, data_delay: float = 0, quit_delay: float = 0, keep: Optional[Path] = None, **smtp_options):
        """``smtp_options`` go to aiosmtpd's Controller/SMTP: ``ssl_context`` (SMTPS),
        ``tls_context`` and ``require_starttls``, ``authenticator`` and ``auth_required``."""
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise HarnessError("aiosmtpd is not installed: install intelmq-nsm[demo].") from exc
        self.messages = []
        self.raw = []
        self.logins = []
        self.quits = 0
        self.keep = Path(keep) if keep is not None else None
        self.files = []
        self.data_delay, self.quit_delay = data_delay, quit_delay
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname=LOOPBACK, port=self.port, **smtp_options)

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.raw.append(envelope.original_content)
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
            if self.keep is not None:
                self._write(len(self.raw), envelope.rcpt_tos, envelope.original_content)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 Message accepted for delivery"

    def _write(self, number: int, recipients: list, raw: bytes) -> None:
        # Kept before the reply to DATA, as the messages are: a mail the client counts as
        # delivered is on disk. A recipient's address names the file, made safe for a path.
        name = re.sub(r"[^A-Za-z0-9@._+-]+", "_", recipients[0] if recipients else "mail")
        self.keep.mkdir(parents=True, exist_ok=True)
        path = self.keep / f"{number:04d}-{name}.eml"
        path.write_bytes(raw)
        self.files.append(path)

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        if self.quit_delay:
            await asyncio.sleep(self.quit_delay)
        return "221 Bye"

    def digest_ids(self) -> Counter:
        """How often each digest (X-NSM-Digest-Id) arrived."""
        with self._lock:
            return Counter(message["X-NSM-Digest-Id"] for _, _, message in self.messages)

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list:
        """Wait until at least ``count`` mails arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise HarnessError(f"SMTP server got {len(self.messages)} of {count} messages in {timeout} s.")
            time.sleep(0.05)
        return self.messages
