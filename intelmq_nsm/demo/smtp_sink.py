"""A local SMTP sink for the demo, the tests and the benchmarks: aiosmtpd keeping every mail it receives."""

import email
import email.policy
import threading
import time

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.pipeline import LOOPBACK, HarnessError, free_port


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every mail it accepted.

    ``messages`` holds ``(envelope sender, recipients, email.message.EmailMessage)``;
    ``logins`` is for an authenticator to note who logged in.
    """

    def __init__(self, **smtp_options):
        """``smtp_options`` go to aiosmtpd's Controller/SMTP: ``ssl_context`` (SMTPS),
        ``tls_context`` and ``require_starttls``, ``authenticator`` and ``auth_required``."""
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise DemoError("aiosmtpd is not installed: install intelmq-nsm[demo].") from exc
        self.messages = []
        self.logins = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname=LOOPBACK, port=self.port, **smtp_options)

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

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
