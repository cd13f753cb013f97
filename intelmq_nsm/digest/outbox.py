"""A CERT's outbox to its hub: what became of the findings the hub forwarded goes back to it.

The CERT's finding ledger keeps, for a finding a hub forwarded, the hub's finding id and
instance (``extra.nsm.upstream``). Its history is the outbox: every change of such a finding
(first seen, notified, reminded, verified fixed, reopened, the owners' and the ticket
system's answers) is written in the same transaction as the change itself, so nothing can
change without being in the outbox. :class:`OutboxPusher` sends that history to the hub's
``POST /v1/outcomes`` (``nsm-outcomes/1``), in history order and in batches, and moves its
cursor (``ledger_outbox``, per hub) only after the hub answered for a batch:

- the hub down, a timeout, ``5xx`` or ``429``: the cursor stays, the next try waits (one
  interval, doubling up to ``retry_max``; ``Retry-After`` honoured). Nothing is lost: the
  batch goes again, and the hub applies a change it had applied once (by its change id
  ``<instance>/<ledger>/<history id>``) as a duplicate, so a crash after the hub's answer
  and before the cursor moved repeats nothing;
- ``401``/``403``: the hub does not take this CERT's token; the outbox waits, logged as
  an error, until the token is mended;
- a change the hub refuses (per change in its answer, or a batch of one it refuses whole
  with ``400``/``413``): kept in ``ledger_outbox_refused`` for the CERT's operators
  (``intelmq-nsm spool FILE list``, the output's check) and never sent again; the cursor
  moves past it, so it holds nothing else up. A batch refused whole is halved first.

Organisation names go to the hub only where the CERT shares them (``share_names``), and
the owners' comments with them; otherwise an organisation is an opaque id (an HMAC of
its id under a key the outbox keeps), the same for every change of that organisation.
"""

import datetime
import hashlib
import hmac
import json
import time
from typing import Optional

from intelmq_nsm.auth.client import read_token
from intelmq_nsm.auth.tokens import TokenFileError
from intelmq_nsm.digest.channels import retry_after_seconds
from intelmq_nsm.digest.grouping import backoff
from intelmq_nsm.digest.ledger import LedgerUnavailable

FORMAT = "nsm-outcomes/1"
#: The longest note sent (the hub's schema's limit).
MAX_NOTE = 2000
#: Refused changes named one by one in the log at most, per batch.
LOGGED = 5
#: Seconds a round sends at most before it lets the delivery thread go on (a long backlog
#: goes on in the next round, at once).
ROUND_SECONDS = 10.0
#: Statuses of a whole batch that say a smaller batch (or none) would be taken.
TOO_BIG = (400, 413, 422)
#: Statuses that say the hub does not take this CERT's credentials.
NOT_ALLOWED = (401, 403)


def iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="microseconds")


class OutboxPusher:
    """Sends the outbox of ``ledger`` to the hub at ``url`` (its ``/v1/outcomes``)."""

    def __init__(
        self,
        ledger,
        url: str,
        token_file: str,
        instance: str,
        logger,
        batch: int = 500,
        interval: float = 5.0,
        hub: Optional[str] = None,
        share_names: bool = False,
        timeout: float = 30.0,
        verify_tls: bool = True,
        retry_max: float = 3600.0,
        session=None,
    ):
        import requests

        self.ledger, self.url, self.token_file, self.instance, self.logger = ledger, url, token_file, instance, logger
        self.batch, self.interval, self.share_names = max(1, int(batch)), float(interval), share_names
        #: The hub's instance name: only its forwarded findings are sent (None: every hub's).
        self.hub = hub
        #: The cursor's name: one outbox per hub.
        self.upstream = hub or url
        self.timeout, self.verify_tls, self.retry_max = timeout, verify_tls, retry_max
        self.requests = requests
        self.session = session or requests.Session()
        self.failures = 0
        self.next_attempt = 0.0
        self._key: Optional[bytes] = None
        self._told: Optional[str] = None

    # -- what goes out -------------------------------------------------------------------

    def organisation(self, row: dict) -> dict:
        if self.share_names:
            return {"id": row["org_id"], "name": row["org_name"] or row["org_id"]}
        digest = hmac.new(self._key, row["org_id"].encode("utf-8"), hashlib.sha256).hexdigest()
        return {"id": f"org-{digest[:20]}"}

    def change(self, row: dict) -> dict:
        """One history row as a change of ``nsm-outcomes/1``."""
        change = {
            "change_id": f"{self.instance}/{self.ledger.name}/{row['id']}",
            "finding_id": row["upstream_finding_id"],
            "state": row["state"],
            "at": iso(row["at"]),
            "source": row["source"],
            "organisation": self.organisation(row),
        }
        if self.share_names and row["note"]:
            change["note"] = row["note"][:MAX_NOTE]
        return change

    # -- rounds --------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        return now >= self.next_attempt

    def run_once(self, now: Optional[float] = None, stop=None) -> dict:
        """Send what waits, batch after batch, until nothing does, the hub fails or ``stop`` is
        set; returns counts of this round (``sent``, ``applied``, ``duplicate``, ``refused``)."""
        now = time.time() if now is None else now
        counts = {"sent": 0, "applied": 0, "duplicate": 0, "refused": 0, "batches": 0}
        if not self.due(now):
            return counts
        until, more = time.monotonic() + ROUND_SECONDS, False
        try:
            sent_to, key = self.ledger.outbox(self.upstream)
            self._key = bytes.fromhex(key)
            while not (stop is not None and stop.is_set()):
                if time.monotonic() > until:
                    more = True
                    break
                rows, upto = self.ledger.outgoing(sent_to, self.batch, self.hub)
                if not rows:
                    if upto > sent_to:  # nothing for a hub there: the next round starts past it
                        self.ledger.outbox_sent(self.upstream, upto)
                    break
                moved = self.send(rows, upto, counts, sent_to)
                if moved is None:
                    break
                sent_to = moved
        except LedgerUnavailable as exc:
            self.logger.warning("The outbox to %s waits: the ledger cannot be reached: %s.", self.url, exc)
            self.next_attempt = now + self.interval
        if not self.failures:
            self.next_attempt = now if more else max(self.next_attempt, now + self.interval)
        if counts["batches"]:
            self.logger.info(
                "Sent %d changes to %s: %d applied, %d duplicates, %d refused.",
                counts["sent"],
                self.url,
                counts["applied"],
                counts["duplicate"],
                counts["refused"],
            )
        return counts

    def send(self, rows: list, upto: int, counts: dict, sent_to: int) -> Optional[int]:
        """One batch; the cursor's new place once the hub answered for it (``sent_to``, where
        it was, to try again at once), None to stop for now."""
        changes = [self.change(row) for row in rows]
        try:
            token = read_token(self.token_file)
        except TokenFileError as exc:
            return self.wait(f"its token cannot be used: {exc}", error=True)
        body = json.dumps({"format": FORMAT, "instance": self.instance, "changes": changes}).encode("utf-8")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, verify=self.verify_tls
            )
        except self.requests.RequestException as exc:
            return self.wait(f"it cannot be reached: {exc}")
        status = response.status_code
        if status == 200:
            return self.answered(rows, changes, upto, self.results(response, changes), counts)
        if status in TOO_BIG:
            return self.too_big(rows, changes, response, counts, sent_to)
        if status == 429 or status >= 500:
            return self.wait(f"it answered {status} {_message(response)}", retry_after_seconds(_header(response)))
        if status in NOT_ALLOWED:
            return self.wait(f"it refuses this CERT's token ({status} {_message(response)})", error=True)
        return self.wait(f"it answered {status} {_message(response)}: is {self.url} its /v1/outcomes?", error=True)

    def results(self, response, changes: list) -> Optional[list]:
        """The hub's result per change, in order; None when the answer is not one."""
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(results, list) or len(results) != len(changes):
            return None
        if any(
            not isinstance(r, dict) or r.get("change_id") not in (c["change_id"], None)
            for r, c in zip(results, changes)
        ):
            return None
        return results

    def answered(self, rows, changes, upto, results, counts) -> Optional[int]:
        if results is None:
            return self.wait("its answer does not say what became of each change")
        refused = []
        for row, change, result in zip(rows, changes, results):
            status = result.get("status")
            counts[status if status in ("applied", "duplicate") else "refused"] += 1
            if status not in ("applied", "duplicate"):
                reason = f"{result.get('reason') or status}: {result.get('message') or ''}".strip(": ")
                refused.append(self.refusal(row, change, 200, reason))
        return self.moved(rows, changes, upto, refused, counts)

    def too_big(self, rows, changes, response, counts, sent_to: int) -> int:
        """A batch refused whole: halved until it is taken; one change refused alone is kept."""
        if len(rows) > 1:
            self.batch = max(1, len(rows) // 2)
            self.logger.warning(
                "The hub at %s refused a batch of %d changes (%d %s); sending %d at a time.",
                self.url,
                len(rows),
                response.status_code,
                _message(response),
                self.batch,
            )
            return sent_to  # the cursor where it was: at once again, smaller
        counts["refused"] += 1
        refused = [self.refusal(rows[0], changes[0], response.status_code, _message(response))]
        return self.moved(rows, changes, rows[0]["id"], refused, counts)

    def refusal(self, row: dict, change: dict, status: int, reason: str) -> dict:
        return {
            "history_id": row["id"],
            "change_id": change["change_id"],
            "finding_id": row["finding_id"],
            "upstream_finding_id": row["upstream_finding_id"],
            "state": row["state"],
            "status": status,
            "reason": reason[:2000],
        }

    def moved(self, rows, changes, upto, refused, counts) -> int:
        """The hub answered for ``rows``: the cursor moves past them (to ``upto`` when the
        batch was not full: nothing else up to there is for a hub), the refused are kept."""
        to = upto if len(rows) < self.batch else rows[-1]["id"]
        to = max(to, rows[-1]["id"])
        self.ledger.outbox_sent(self.upstream, to, refused)
        counts["sent"] += len(rows)
        counts["batches"] += 1
        for item in refused[:LOGGED]:
            self.logger.warning(
                "The hub at %s refused change %s (finding %s, %s); it is kept, not sent again: %s.",
                self.url,
                item["change_id"],
                item["upstream_finding_id"],
                item["state"],
                item["reason"],
            )
        if len(refused) > LOGGED:
            self.logger.warning("The hub at %s refused %d more changes of that batch.", self.url, len(refused) - LOGGED)
        if self.failures:
            self.logger.info("The hub at %s takes the outbox's changes again.", self.url)
        self.failures, self._told = 0, None
        return to

    def wait(self, why: str, retry_after: Optional[float] = None, error: bool = False) -> None:
        """The hub did not take the batch: try again later, nothing moves."""
        self.failures += 1
        delay = backoff(self.failures, self.interval, self.retry_max)
        if retry_after is not None:
            delay = min(self.retry_max, max(delay, retry_after))
        self.next_attempt = time.time() + delay
        message = f"The outbox to {self.url} waits, {why}; next try in {delay:.0f} s."
        if not error:
            self.logger.warning(message)
        elif why != self._told:  # an error until it is mended: said once, not every round
            self.logger.error(message)
        self._told = why if error else None
        return None

    def close(self) -> None:
        self.session.close()


def _header(response) -> Optional[str]:
    return response.headers.get("Retry-After")


def _message(response) -> str:
    """The refusal's code and sentence from the hub's JSON answer, else the start of its text."""
    try:
        body = response.json()
        return f"{body.get('error', '')}: {body.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return (response.text or "")[:200]
