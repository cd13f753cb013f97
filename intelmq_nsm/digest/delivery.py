"""The delivery loop: form due digests from the spool and hand them to the channel.

After a digest is delivered it is marked so in the spool, then counted in the finding
ledger (which may be another database), then marked counted in the spool. A crash or a
ledger outage in between leaves a delivered, uncounted digest, which every round counts
again; counting is idempotent by digest id. Nothing is sent again for it.

An attempt is recorded (state ``attempting``) before the channel starts sending, and its
outcome as soon as the channel returns, before the channel ends its conversation
(``finish``: SMTP's QUIT). A receiver slow to say goodbye, or a crash meanwhile, thus
cannot make a delivered digest look undelivered and send it again. A crash during the
attempt itself leaves the digest ``attempting``: the next round logs that the receiver may
hold a copy and sends it again under the same id (Message-ID, Idempotency-Key), by which
the receiver recognises the repeat.

Contacts: before a mail goes out, the contacts marked unreachable are taken off it
(``intelmq_nsm.digest.contacts``); a contact the mail server refuses for good is marked
(with the server's answer), and so is one a bounce (DSN) names, read from the bounce
Maildir at the start of every round (``intelmq_nsm.digest.bounces``).
"""

import datetime
import threading
import time
from typing import Optional

from intelmq_nsm import tlp as traffic_light
from intelmq_nsm.digest import channels, grouping
from intelmq_nsm.digest.contacts import ContactBook
from intelmq_nsm.digest.spool import DigestSpool

#: Seconds between two looks for compromised and misbehaving findings no longer seen.
QUIET_CHECK = 3600.0


class Deliverer:
    """One round of forming and delivering, on a spool connection of the calling thread."""

    def __init__(
        self,
        spool: DigestSpool,
        channel,
        logger,
        max_events: int = 500,
        max_age: float = 3600,
        retry_base: float = 30,
        retry_max: float = 3600,
        max_attempts=None,
        ledger=None,
        links=None,
        tlp: str = traffic_light.DEFAULT,
        bounce_maildir: Optional[str] = None,
        kinds=None,
        quiet_check: float = QUIET_CHECK,
    ):
        self.spool, self.channel, self.logger = spool, channel, logger
        self.ledger = ledger
        #: The output's ``kinds_of_abuse`` rules (checked), for the events it files.
        self.kinds = kinds
        #: Seconds between two looks for findings no longer seen (the ledger's quiet period).
        self.quiet_check = quiet_check
        self.last_quiet_check: Optional[float] = None
        #: The label of a finding whose event carries none (the output's ``tlp``).
        self.tlp = tlp
        #: Unreachable contacts, in the spool's file, on the spool's connection.
        self.contacts = ContactBook(spool.db)
        self.bounce_maildir = bounce_maildir
        #: Adds the feedback links to a digest before it is rendered
        #: (:class:`intelmq_nsm.feedback.links.DigestLinks`); None: digests carry none.
        self.links = links
        self.max_events, self.max_age = max_events, max_age
        self.retry_base, self.retry_max, self.max_attempts = retry_base, retry_max, max_attempts
        self.recovered = False

    def recover(self, now=None) -> list:
        """Put digests whose attempt was interrupted (found ``attempting``) back in line; return their ids.

        Only for the one deliverer of a spool, before its first attempt: an ``attempting``
        digest is then one that a process ended while it was being sent."""
        ids = []
        for digest_id, started in self.spool.interrupted():
            when = _iso(started)
            self.spool.mark_interrupted(
                digest_id, f"The attempt started at {when} was interrupted; the receiver may hold a copy.", now=now
            )
            self.logger.warning(
                "Digest %s: the attempt started at %s was interrupted, so the receiver may already hold a copy;"
                " it is sent again with the same id.",
                digest_id,
                when,
            )
            ids.append(digest_id)
        self.recovered = True
        return ids

    def run_once(self, now=None, flush: bool = False, stop: Optional[threading.Event] = None) -> dict:
        """Form what is due, deliver what is due; return counts of this round."""
        if not self.recovered:
            self.recover(now=now)
        self.read_bounces(now=now)
        self.count_delivered(now=now)
        self.file_arrivals()
        self.no_longer_seen(now=now)
        formed = self.spool.form_digests(self.max_events, self.max_age, now=now, flush=flush)
        for digest_id in formed:
            self.logger.debug("Formed digest %s.", digest_id)
        result = {"formed": len(formed), "delivered": 0, "retry": 0, "failed": 0}
        attempted = set()
        while not (stop is not None and stop.is_set()):
            # Each digest at most once per round, even if its retry is due at once again.
            batch = [d for d in self.spool.due(now=now) if d not in attempted]
            if not batch:
                break
            for digest_id in batch:
                if stop is not None and stop.is_set():
                    break
                attempted.add(digest_id)
                result[self.deliver(digest_id, now=now)] += 1
        return result

    def read_bounces(self, now=None) -> list:
        """Mark the contacts that the new DSNs in the bounce Maildir say failed for good."""
        if not self.bounce_maildir:
            return []
        from intelmq_nsm.digest import bounces

        try:
            marked = bounces.read_maildir(self.contacts, self.bounce_maildir, now=now)
        except OSError as exc:
            self.logger.warning("The bounce Maildir %s cannot be read: %s.", self.bounce_maildir, exc)
            return []
        for bounce in marked:
            self.logger.warning(
                "Contact %s is unreachable (a bounce for digest %s): %s.",
                bounce.recipient,
                bounce.digest_id or "unknown",
                bounce.reason,
            )
        return marked

    def deliver(self, digest_id: str, now=None) -> str:
        digest = self.contacts.annotate(self.spool.load(digest_id))
        if self.links is not None:
            digest = self.links.annotate(digest)
        self.spool.mark_attempting(digest_id, now=now)
        try:
            return self._attempt(digest, now)
        finally:
            self._finish()

    def _finish(self) -> None:
        finish = getattr(self.channel, "finish", None)
        if finish is None:
            return
        try:
            finish()
        except Exception as exc:
            # The outcome is recorded already; a failed goodbye changes nothing about it.
            self.logger.debug("Ending the conversation with the receiver failed: %s.", exc)

    def _attempt(self, digest, now) -> str:
        digest_id = digest.id
        try:
            outcome = self.channel.send(digest)
        except channels.DeliveryError as exc:
            self._refused(digest, exc.refused, now)
            return self._failed(digest, exc, now)
        except ValueError as exc:
            return self._failed(digest, exc, now)
        except Exception as exc:
            # Unforeseen: whether the receiver got it is unknown. Retried like a transient
            # error rather than left "attempting" until the next start.
            delay = grouping.backoff(digest.attempts + 1, self.retry_base, self.retry_max)
            attempts = self.spool.mark_retry(digest_id, f"{type(exc).__name__}: {exc}", delay, now=now)
            self.logger.exception(
                "Digest %s raised an unexpected error (attempt %d), retry in %.0f s:", digest_id, attempts, delay
            )
            return "retry"
        self.spool.mark_delivered(digest_id, now=now)
        self.logger.info(
            "Delivered digest %s for %s with %d findings.", digest_id, digest.organisation["id"], len(digest.findings)
        )
        if outcome is not None:
            self._refused(digest, outcome.refused, now)
            for address, reason in outcome.deferred:
                self.logger.warning(
                    "Digest %s went to the other contacts; %s did not take it for now: %s.", digest_id, address, reason
                )
            if outcome.unsigned:
                self.logger.warning(
                    "Digest %s was sent unsigned, as the output allows: %s", digest_id, outcome.unsigned
                )
        self.count(digest, now=now)
        return "delivered"

    def _refused(self, digest, refused, now) -> None:
        """Mark the contacts a mail server refused for good."""
        for address, reason in refused:
            self.contacts.mark(address, reason, "smtp", digest.organisation.get("id", ""), digest.id, now=now)
            self.logger.warning(
                "Contact %s of %s is unreachable, it gets no digests until an operator clears it: %s.",
                address,
                digest.organisation.get("id"),
                reason,
            )

    def _failed(self, digest, exc: Exception, now) -> str:
        """A digest the channel did not deliver: retry later (TransientError), or failed and
        kept for an operator (PermanentError, or a ValueError from rendering it)."""
        digest_id = digest.id
        if isinstance(exc, channels.TransientError):
            delay = grouping.backoff(digest.attempts + 1, self.retry_base, self.retry_max)
            if exc.retry_after is not None:
                delay = min(self.retry_max, max(delay, exc.retry_after))
            attempts = self.spool.mark_retry(digest_id, str(exc), delay, now=now)
            if self.max_attempts and attempts >= self.max_attempts:
                self.spool.mark_failed(digest_id, f"Gave up after {attempts} attempts: {exc}", count_attempt=False)
                self.logger.error("Digest %s failed after %d attempts, kept in the spool: %s", digest_id, attempts, exc)
                return "failed"
            self.logger.warning(
                "Digest %s not delivered (attempt %d), retry in %.0f s: %s", digest_id, attempts, delay, exc
            )
            return "retry"
        self.spool.mark_failed(digest_id, str(exc))
        self.logger.error("Digest %s failed, kept in the spool for an operator: %s", digest_id, exc)
        return "failed"

    def file_arrivals(self) -> int:
        """File the events that arrived since the last round into the ledger and the spool
        (:func:`intelmq_nsm.digest.notify.file_arrivals`), before digests are formed."""
        from intelmq_nsm.digest import notify
        from intelmq_nsm.digest.ledger import LedgerUnavailable

        if self.ledger is None:
            return 0
        try:
            return notify.file_arrivals(
                self.spool, self.ledger, failed=self._unfileable, tlp=self.tlp, kinds=self.kinds
            )
        except LedgerUnavailable as exc:
            self.logger.warning("The ledger cannot be reached; arrived events wait for the next round: %s.", exc)
            return 0

    def no_longer_seen(self, now=None) -> int:
        """Every ``quiet_check`` seconds: the compromised and misbehaving findings the feeds
        stopped reporting for the ledger's quiet period become no longer seen
        (:meth:`intelmq_nsm.digest.ledger.Ledger.quiet`); how many did."""
        from intelmq_nsm.digest.ledger import LedgerUnavailable

        now = time.time() if now is None else now
        if self.ledger is None or (
            self.last_quiet_check is not None and now - self.last_quiet_check < self.quiet_check
        ):
            return 0
        try:
            changed = self.ledger.quiet(now=now)
        except LedgerUnavailable as exc:
            self.logger.warning("The ledger cannot be reached; findings no longer seen wait: %s.", exc)
            return 0
        self.last_quiet_check = now
        if changed:
            self.logger.info("%d compromised or misbehaving findings are no longer seen.", len(changed))
        return len(changed)

    def _unfileable(self, arrival_id: int, error: str) -> None:
        self.logger.error(
            "The event that arrived as %d in the spool cannot be filed and stays there, marked failed: %s.",
            arrival_id,
            error,
        )

    def count_delivered(self, now=None) -> None:
        """Count in the ledger the delivered digests it has not counted yet."""
        if self.ledger is None:
            return
        for digest_id in self.spool.unrecorded():
            if not self.count(self.spool.load(digest_id), now=now):
                return

    def count(self, digest, now=None) -> bool:
        """The digest's notifications into the ledger; False if the ledger cannot be reached."""
        from intelmq_nsm.digest.ledger import LedgerUnavailable

        if self.ledger is None:
            return True
        entries = [
            (f["finding_id"], digest.organisation["id"], f["kind"]) for f in digest.findings if f.get("finding_id")
        ]
        try:
            self.ledger.record_delivery(digest.id, [e for e in entries if e[2]], now=now)
        except LedgerUnavailable as exc:
            self.logger.warning(
                "Digest %s delivered; the ledger will count it when it can be reached: %s.", digest.id, exc
            )
            return False
        self.spool.mark_recorded(digest.id)
        return True


def _iso(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "an unknown time"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


class DeliveryThread(threading.Thread):
    """Runs :class:`Deliverer` rounds every ``interval`` seconds until stopped.

    IntelMQ calls a bot only when a message arrives, so digests that become due by age while
    the queue is idle need their own clock. The thread opens its own SQLite connection
    (connections are per thread) and stops between two digests when asked. At a CERT whose
    findings come from a hub, each round also sends the ledger's outbox to the hub
    (``pusher``, :class:`intelmq_nsm.digest.outbox.OutboxPusher`), when it is due: so the
    owners' answers, which the feedback service writes into the same ledger, go too.
    """

    def __init__(self, spool_factory, channel, logger, interval: float = 5.0, clock=time.time, pusher=None, **settings):
        super().__init__(name="nsm-digest-delivery", daemon=True)
        self.clock = clock
        self.spool_factory, self.channel, self.logger = spool_factory, channel, logger
        self.interval = interval
        self.pusher = pusher
        self.settings = settings
        self.stopping = threading.Event()

    def run(self) -> None:
        spool = self.spool_factory()
        try:
            deliverer = Deliverer(spool, self.channel, self.logger, **self.settings)
            while not self.stopping.is_set():
                try:
                    deliverer.run_once(now=self.clock(), stop=self.stopping)
                    spool.checkpoint()
                except Exception:
                    # The spool keeps everything; the next round tries again.
                    self.logger.exception("Delivery round failed, trying again in %s s.", self.interval)
                self.push()
                self.stopping.wait(self.interval)
            # What arrived since the last round goes into the ledger before the output
            # stops, so that the ledger (and who reads it) is up to date.
            try:
                deliverer.file_arrivals()
            except Exception:
                self.logger.exception("Filing the last arrived events failed; the next start files them.")
        finally:
            spool.close()
            self.channel.close()
            if self.pusher is not None:
                self.pusher.close()

    def push(self) -> None:
        """Send the outbox to the hub when it is due (the ledger keeps it meanwhile)."""
        if self.pusher is None or not self.pusher.due(time.time()):
            return
        try:
            self.pusher.run_once(stop=self.stopping)
        except Exception:
            self.logger.exception("Sending the outbox failed; the next round tries again.")

    def stop(self, timeout: Optional[float] = None) -> None:
        self.stopping.set()
        self.join(timeout)
