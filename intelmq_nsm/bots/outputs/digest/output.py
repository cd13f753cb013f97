"""Digest output: findings per organisation into a durable spool, delivered as digests."""

import os
from typing import Optional

from intelmq import VAR_STATE_PATH
from intelmq.lib.bot import OutputBot
from intelmq.lib.exceptions import InvalidValue

from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.digest.findings import FindingError, findings

#: WAL pages (4 KiB) after which an intake commit checkpoints itself: ~40 MiB.
INTAKE_CHECKPOINT = 10000


class NSMDigestOutputBot(OutputBot):
    """Spool findings per organisation on disk and deliver them as digests (JSON, CSV, text) over REST, SMTP or files"""

    channel: str = "file"
    constituency: Optional[str] = None
    spool_file: Optional[str] = None
    spool_synchronous: str = "NORMAL"
    group_by_case: bool = False
    max_events: int = 500
    max_age: int = 3600
    delivery_interval: float = 5.0
    retry_base: float = 30.0
    retry_max: float = 3600.0
    max_attempts: Optional[int] = None
    language: str = "nl"
    rest_url: Optional[str] = None
    rest_secret: Optional[str] = None
    rest_signature_header: str = "X-NSM-Signature"
    rest_timeout: float = 30.0
    rest_verify_tls: bool = True
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: str = "starttls"
    smtp_username: Optional[str] = None
    smtp_password: Optional[str] = None
    smtp_from: Optional[str] = None
    smtp_to: Optional[str] = None
    testing_to: Optional[str] = None
    smtp_timeout: float = 30.0
    smtp_verify_tls: bool = True
    file_directory: Optional[str] = None
    file_formats: list = ["json", "csv", "txt"]

    _spool = None
    _thread = None

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
        from intelmq_nsm.digest.delivery import DeliveryThread
        from intelmq_nsm.digest.spool import Spool

        path = self.spool_path()
        # The delivery thread checkpoints the WAL every round; the high threshold here only
        # keeps the WAL bounded if it cannot (see intelmq_nsm.digest.spool).
        self._spool = Spool(
            path, synchronous=self.spool_synchronous, by_case=self.group_by_case, autocheckpoint=INTAKE_CHECKPOINT
        )
        self._thread = DeliveryThread(
            lambda: Spool(path, synchronous=self.spool_synchronous, by_case=self.group_by_case),
            self.make_channel(),
            self.logger,
            interval=self.delivery_interval,
            max_events=self.max_events,
            max_age=self.max_age,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
            max_attempts=self.max_attempts,
        )
        self._thread.start()
        self.logger.info("Spool %s opened; delivering over %s.", path, self.channel)

    def spool_path(self) -> str:
        return self.spool_file or os.path.join(VAR_STATE_PATH, f"{self.bot_id}.spool.sqlite")

    def make_channel(self):
        from intelmq_nsm.digest import channels

        if self.channel == "rest":
            return channels.RestChannel(
                self.rest_url,
                self.rest_secret,
                signature_header=self.rest_signature_header,
                timeout=self.rest_timeout,
                verify_tls=self.rest_verify_tls,
            )
        if self.channel == "smtp":
            return channels.SmtpChannel(
                self.smtp_host,
                self.smtp_port,
                self.smtp_from,
                to=self.smtp_to,
                testing_to=self.testing_to,
                security=self.smtp_security,
                username=self.smtp_username,
                password=self.smtp_password,
                timeout=self.smtp_timeout,
                language=self.language,
                verify_tls=self.smtp_verify_tls,
            )
        if self.channel == "file":
            return channels.FileChannel(self.file_directory, formats=self.file_formats, language=self.language)
        raise ValueError(f"Unknown channel {self.channel!r}: use rest, smtp or file.")

    def process(self):
        event = self.receive_message()
        try:
            found = findings(shortcuts.as_dict(event), constituency=self.constituency)
        except FindingError as exc:
            raise InvalidValue(exc.field, exc.value, exc.reason) from exc
        # Committed to disk before the acknowledgement: a crash in between repeats the
        # message, and the spool ignores the repeat.
        if not self._spool.add(found):
            self.logger.debug("Event already in the spool, ignored the repeat.")
        self.acknowledge_message()

    def shutdown(self):
        if self._thread is not None:
            self._thread.stop(timeout=self.rest_timeout + self.smtp_timeout)
            self._thread = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    @staticmethod
    def check(parameters: dict):
        parameters = without_empty(NSMDigestOutputBot, parameters)
        channel = parameters.get("channel", "file")
        needs = {"rest": ["rest_url", "rest_secret"], "smtp": ["smtp_from"], "file": ["file_directory"]}
        if channel not in needs:
            return [["error", f"Parameter channel is {channel!r}; it must be rest, smtp or file."]]
        missing = [p for p in needs[channel] if not parameters.get(p)]
        results = [["error", f"The {channel} channel needs parameter {p}, which is not set."] for p in missing]
        if parameters.get("language", "nl") not in ("nl", "en"):
            results.append(["error", "Parameter language must be nl or en."])
        if str(parameters.get("spool_synchronous", "NORMAL")).upper() not in ("NORMAL", "FULL", "EXTRA"):
            results.append(["error", "Parameter spool_synchronous must be NORMAL, FULL or EXTRA."])
        if not parameters.get("constituency"):
            results.append(
                ["warning", "Parameter constituency is not set: events of any constituency will be delivered."]
            )
        return results or None


BOT = NSMDigestOutputBot
