"""Digest output: findings per organisation into a durable spool, delivered as digests.

The finding ledger decides what a finding is in a digest (new, reminder, reopened, fixed)
or whether it goes into none (already notified, no reminder due): intelmq_nsm.digest.notify.
Digests carry their TLP label, are signed with the CERT's OpenPGP key when one is set
(intelmq_nsm.digest.openpgp) and follow each organisation's language, channel and pace.
"""

import os
import time
from typing import Optional

from intelmq import VAR_STATE_PATH
from intelmq.lib.bot import OutputBot
from intelmq.lib.exceptions import InvalidValue

from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.ledgered import until_reachable
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.digest import notify
from intelmq_nsm.digest.event_findings import FindingError

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
    ledger_url: Optional[str] = None
    ledger_name: Optional[str] = None
    reminder_after: int = 604800
    report_fixed: bool = True
    quiet_after: int = 1209600
    kinds_of_abuse: Optional[dict] = None
    ledger_retry_delay: float = 10.0
    clock_offset: float = 0.0
    feedback_base_url: Optional[str] = None
    feedback_secret_file: Optional[str] = None
    feedback_link_lifetime: int = 2592000
    tlp: str = "AMBER"
    organisation_channels: bool = True
    smtp_reply_to: Optional[str] = None
    openpgp_fingerprint: Optional[str] = None
    openpgp_home: Optional[str] = None
    openpgp_passphrase_file: Optional[str] = None
    openpgp_encrypt: bool = True
    openpgp_allow_unsigned: bool = False
    bounce_maildir: Optional[str] = None
    instance_name: Optional[str] = None
    upstream_url: Optional[str] = None
    upstream_token_file: Optional[str] = None
    upstream_instance: Optional[str] = None
    upstream_batch: int = 500
    upstream_interval: float = 5.0
    upstream_share_names: bool = False
    upstream_timeout: float = 30.0
    upstream_verify_tls: bool = True

    _spool = None
    _thread = None
    _ledger = None
    _arrivals = False
    _kinds = None

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
        from intelmq_nsm.digest.delivery import DeliveryThread
        from intelmq_nsm.digest.ledger import Ledger, sqlite_url
        from intelmq_nsm.digest.spool import DigestSpool

        path = self.spool_path()
        self._ledger = self._ledgered(
            lambda: Ledger(
                self.ledger_url or sqlite_url(path),
                name=self.ledger_name or self.bot_id,
                reminder_after=self.reminder_after,
                report_fixed=self.report_fixed,
                quiet_after=self.quiet_after,
                synchronous=self.spool_synchronous,
                autocheckpoint=INTAKE_CHECKPOINT,
            )
        )
        # The delivery thread checkpoints the WAL every round; the high threshold here only
        # keeps the WAL bounded if it cannot (see intelmq_nsm.digest.spool).
        self._spool = DigestSpool(
            path, synchronous=self.spool_synchronous, by_case=self.group_by_case, autocheckpoint=INTAKE_CHECKPOINT
        )
        self._arrivals = self._ledger.shares_file(path)
        self.tlp = normalise_tlp(self.tlp)
        self._kinds = check_kinds(self.kinds_of_abuse)
        channel = self.make_channel()
        self._thread = DeliveryThread(
            lambda: DigestSpool(path, synchronous=self.spool_synchronous, by_case=self.group_by_case),
            channel,
            self.logger,
            interval=self.delivery_interval,
            max_events=self.max_events,
            max_age=self.max_age,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
            max_attempts=self.max_attempts,
            ledger=self._ledger,
            links=self.feedback_links(),
            clock=self.now,
            tlp=self.tlp,
            bounce_maildir=self.bounce_maildir,
            pusher=self.outbox_pusher(),
            kinds=self._kinds,
        )
        self._thread.start()
        where = "the spool's file" if not self.ledger_url else self._ledger.engine.url.render_as_string()
        self.logger.info("Spool %s opened, ledger in %s; delivering over %s.", path, where, self.channel)

    def feedback_links(self):
        """The feedback links the digests carry, or None without ``feedback_base_url``."""
        if not self.feedback_base_url:
            return None
        from intelmq_nsm.feedback.links import DigestLinks, LinkSigner

        signer = LinkSigner.from_file(self.feedback_secret_file, lifetime=self.feedback_link_lifetime)
        return DigestLinks(self.feedback_base_url, signer)

    def outbox_pusher(self):
        """At a CERT with a hub: what sends the ledger's changes of the hub's findings back to
        it (None without ``upstream_url``)."""
        if not self.upstream_url:
            return None
        from intelmq_nsm.digest.outbox import OutboxPusher

        for needed in ("instance_name", "upstream_token_file"):
            if not getattr(self, needed):
                # Changes sent without this CERT's name would carry ids no later batch matches.
                raise ValueError(f"Parameter upstream_url needs {needed}, which is not set.")
        if not instance_name_ok(self.instance_name):
            # The hub would refuse every batch whole (and each change, one by one, with it).
            raise ValueError("Parameter instance_name must be 1 to 100 characters without control characters.")

        self.logger.info("Changes of the findings a hub forwarded go back to %s.", self.upstream_url)
        return OutboxPusher(
            self._ledger,
            self.upstream_url,
            self.upstream_token_file,
            self.instance_name,
            self.logger,
            batch=self.upstream_batch,
            interval=self.upstream_interval,
            hub=self.upstream_instance,
            share_names=self.upstream_share_names,
            timeout=self.upstream_timeout,
            verify_tls=self.upstream_verify_tls,
            retry_max=self.retry_max,
        )

    def now(self) -> float:
        """The output's clock: the system's, moved by ``clock_offset`` seconds (rehearsals)."""
        return time.time() + self.clock_offset

    def _ledgered(self, action):
        """Run ``action`` until the ledger's database answers; the message stays unacknowledged."""
        return until_reachable(action, self.logger, self.ledger_retry_delay)

    def spool_path(self) -> str:
        return self.spool_file or os.path.join(VAR_STATE_PATH, f"{self.bot_id}.spool.sqlite")

    def signer(self):
        """The CERT's OpenPGP key (None: nothing is signed). A key that cannot sign is
        logged as an error here; digests then wait (or go unsigned if allowed)."""
        if not self.openpgp_fingerprint:
            return None
        from intelmq_nsm.digest.openpgp import Signer

        signer = Signer(self.openpgp_home, self.openpgp_fingerprint, self.openpgp_passphrase_file)
        for problem in signer.problems():
            then = "they go unsigned" if self.openpgp_allow_unsigned else "they wait until it can"
            self.logger.error("%s Digests cannot be signed; %s.", problem, then)
        return signer

    def make_channel(self):
        """The output's channels: ``channel`` and every other one whose parameters are set
        (an organisation may ask for it); digests signed with the CERT's key, if set."""
        from intelmq_nsm.digest import channels

        if self.channel not in CHANNEL_NEEDS:
            raise ValueError(f"Unknown channel {self.channel!r}: use rest, smtp or file.")
        signer = self.signer()
        unsigned = self.openpgp_allow_unsigned
        made = {}
        if self.channel == "rest" or all(getattr(self, p) for p in CHANNEL_NEEDS["rest"]):
            made["rest"] = channels.RestChannel(
                self.rest_url,
                self.rest_secret,
                signature_header=self.rest_signature_header,
                timeout=self.rest_timeout,
                verify_tls=self.rest_verify_tls,
                signer=signer,
                allow_unsigned=unsigned,
            )
        if self.channel == "smtp" or all(getattr(self, p) for p in CHANNEL_NEEDS["smtp"]):
            made["smtp"] = channels.SmtpChannel(
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
                reply_to=self.smtp_reply_to,
                signer=signer,
                allow_unsigned=unsigned,
                encrypt=self.openpgp_encrypt,
            )
        if self.channel == "file" or all(getattr(self, p) for p in CHANNEL_NEEDS["file"]):
            made["file"] = channels.FileChannel(
                self.file_directory,
                formats=self.file_formats,
                language=self.language,
                signer=signer,
                allow_unsigned=unsigned,
            )
        return channels.Channels(made, self.channel, follow_organisations=self.organisation_channels)

    def process(self):
        event = self.receive_message()
        try:
            # Committed to disk before the acknowledgement: with the ledger in the spool's
            # file as an arrival, which the delivery thread files; with the ledger
            # elsewhere in the ledger, then the spool (intelmq_nsm.digest.notify).
            fields = shortcuts.as_dict(event)
            if self._arrivals:
                notify.arrive(fields, self._spool, self.now(), self.constituency, tlp=self.tlp, kinds=self._kinds)
            else:
                notify.accept(
                    fields,
                    self._spool,
                    self._ledger,
                    self.now(),
                    self.constituency,
                    call=self._ledgered,
                    tlp=self.tlp,
                    kinds=self._kinds,
                )
        except FindingError as exc:
            raise InvalidValue(exc.field, exc.value, exc.reason) from exc
        self.acknowledge_message()

    def shutdown(self):
        if self._thread is not None:
            self._thread.stop(timeout=self.rest_timeout + self.smtp_timeout)
            self._thread = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    @staticmethod
    def check(parameters: dict):
        parameters = without_empty(NSMDigestOutputBot, parameters)
        channel = parameters.get("channel", "file")
        if channel not in CHANNEL_NEEDS:
            return [["error", f"Parameter channel is {channel!r}; it must be rest, smtp or file."]]
        missing = [p for p in CHANNEL_NEEDS[channel] if not parameters.get(p)]
        results = [["error", f"The {channel} channel needs parameter {p}, which is not set."] for p in missing]
        if parameters.get("language", "nl") not in ("nl", "en"):
            results.append(["error", "Parameter language must be nl or en."])
        if str(parameters.get("spool_synchronous", "NORMAL")).upper() not in ("NORMAL", "FULL", "EXTRA"):
            results.append(["error", "Parameter spool_synchronous must be NORMAL, FULL or EXTRA."])
        if float(parameters.get("reminder_after", NSMDigestOutputBot.reminder_after) or 0) < 0:
            results.append(["error", "Parameter reminder_after must be 0 (never remind) or a number of seconds."])
        if float(parameters.get("quiet_after", NSMDigestOutputBot.quiet_after) or 0) < 0:
            results.append(["error", "Parameter quiet_after must be 0 (never) or a number of seconds."])
        try:
            check_kinds(parameters.get("kinds_of_abuse"))
        except ValueError as exc:
            results.append(["error", f"Parameter {exc}."])
        url = parameters.get("ledger_url")
        if url and not str(url).startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            results.append(["error", "Parameter ledger_url must be a sqlite:/// or postgresql:// URL."])
        if parameters.get("feedback_base_url"):
            from intelmq_nsm.feedback.links import SecretError, read_secret

            if not str(parameters["feedback_base_url"]).startswith(("https://", "http://")):
                results.append(["error", "Parameter feedback_base_url must be an http(s):// URL."])
            if not parameters.get("feedback_secret_file"):
                results.append(["error", "Parameter feedback_base_url needs feedback_secret_file, which is not set."])
            else:
                try:
                    read_secret(parameters["feedback_secret_file"])
                except SecretError as exc:
                    results.append(["error", str(exc)])
        try:
            normalise_tlp(parameters.get("tlp", NSMDigestOutputBot.tlp))
        except ValueError as exc:
            results.append(["error", f"Parameter tlp: {exc}."])
        results += check_openpgp(parameters)
        results += check_upstream(parameters)
        if parameters.get("spool_file"):
            results += check_spool(parameters["spool_file"])
        if not parameters.get("constituency"):
            results.append(
                ["warning", "Parameter constituency is not set: events of any constituency will be delivered."]
            )
        return results or None


#: The parameters each channel needs; the output has every channel whose parameters are set.
CHANNEL_NEEDS = {"rest": ("rest_url", "rest_secret"), "smtp": ("smtp_from",), "file": ("file_directory",)}
#: Days before the signing key expires from which check() warns.
KEY_EXPIRY_WARNING_DAYS = 30


def check_kinds(rules) -> dict:
    """The ``kinds_of_abuse`` parameter checked (raises ValueError saying what is wrong)."""
    from intelmq_nsm.abuse_kinds import check_rules

    return check_rules(rules)


def normalise_tlp(value) -> str:
    from intelmq_nsm.tlp import normalise

    return normalise(value)


def check_openpgp(parameters: dict) -> list:
    """What check() says of the signing key: missing, expired, revoked, cannot sign, expiring soon."""
    fingerprint = parameters.get("openpgp_fingerprint")
    if not fingerprint:
        if parameters.get("openpgp_home"):
            return [["warning", "Parameter openpgp_home is set but openpgp_fingerprint is not: nothing is signed."]]
        return []
    if not parameters.get("openpgp_home"):
        return [["error", "Parameter openpgp_fingerprint needs openpgp_home (the GnuPG home), which is not set."]]
    try:
        from intelmq_nsm.digest.openpgp import OpenPGPError, Signer

        signer = Signer(parameters["openpgp_home"], fingerprint, parameters.get("openpgp_passphrase_file"))
        problems = signer.problems()
        expires = None if problems else signer.expires()
    except ImportError:
        return [["error", "python-gnupg is not installed, so digests cannot be signed: pip install python-gnupg."]]
    except OpenPGPError as exc:
        problems, expires = [str(exc)], None
    except OSError as exc:
        problems, expires = [f"gpg cannot be run: {exc}."], None
    level = "warning" if parameters.get("openpgp_allow_unsigned") else "error"
    then = "digests go unsigned (openpgp_allow_unsigned)" if level == "warning" else "no digest is sent until it can"
    results = [[level, f"{problem} The signing key cannot sign: {then}."] for problem in problems]
    if expires is not None and expires - time.time() < KEY_EXPIRY_WARNING_DAYS * 86400:
        day = time.strftime("%Y-%m-%d", time.gmtime(expires))
        results.append(["warning", f"The signing key {fingerprint} expires on {day}; extend it before then."])
    return results


def instance_name_ok(name) -> bool:
    """An instance name the hub takes (``nsm-outcomes/1``: no control characters), short enough
    that its change ids stay within the hub's limit."""
    return isinstance(name, str) and 0 < len(name) <= 100 and not any(ord(c) < 32 or ord(c) == 127 for c in name)


def check_upstream(parameters: dict) -> list:
    """What check() says of the way back to a hub: what it needs, the token file's mode."""
    url = parameters.get("upstream_url")
    if not url:
        return []
    results = []
    if not str(url).startswith(("https://", "http://")):
        results.append(["error", "Parameter upstream_url must be the hub's https:// URL of /v1/outcomes."])
    elif str(url).startswith("http://") and not str(url).startswith(
        ("http://127.", "http://[::1]", "http://localhost")
    ):
        results.append(["warning", "Parameter upstream_url is http://: the CERT's token goes unencrypted; use https."])
    name = parameters.get("instance_name")
    if not name:
        results.append(["error", "Parameter upstream_url needs instance_name (this CERT's name at the hub), not set."])
    elif not instance_name_ok(name):
        results.append(["error", "Parameter instance_name must be 1 to 100 characters without control characters."])
    if not parameters.get("upstream_token_file"):
        results.append(["error", "Parameter upstream_url needs upstream_token_file, which is not set."])
    else:
        from intelmq_nsm.auth.client import token_problem

        problem = token_problem(parameters["upstream_token_file"])
        if problem:
            results.append(["error", f"{problem} No change goes back to the hub until it can be used."])
    if int(parameters.get("upstream_batch", NSMDigestOutputBot.upstream_batch) or 0) < 1:
        results.append(["error", "Parameter upstream_batch must be 1 or more."])
    return results


def check_spool(path: str) -> list:
    """What check() says of the spool: failed digests and unreachable contacts (warnings)."""
    if not os.path.exists(path):
        return []
    from intelmq_nsm.digest.health import problems

    return [["warning", line] for line in problems(path)]


BOT = NSMDigestOutputBot
