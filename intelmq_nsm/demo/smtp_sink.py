"""A local SMTP sink for the demo and the tests: aiosmtpd keeping every mail it receives."""

import email
import email.policy
import threading

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.pipeline import LOOPBACK, free_port


class SmtpSink:
    """A local SMTP server (aiosmtpd) that keeps every mail it receives."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()
        self.controller = None
        self.port = 0

    def start(self) -> "SmtpSink":
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise DemoError("aiosmtpd is not installed: install intelmq-nsm[demo].") from exc
        self.port = free_port()
        self.controller = Controller(self, hostname=LOOPBACK, port=self.port)
        self.controller.start()
        return self

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
