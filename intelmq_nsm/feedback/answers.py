"""What the feedback service reads from and writes to the finding ledger.

Transport-free and blocking (the web stack runs it in its worker pool). Everything an
owner sees or answers is bounded by a verified link: the findings the ledger recorded
as delivered in that digest to that organisation (and only the one finding for a
finding's link). Another organisation's finding, or one from another digest, is
answered as unknown, whatever id is put into a form.
"""

import threading
import time
from dataclasses import dataclass
from typing import Optional

from intelmq_nsm.digest.ledger import Ledger, sqlite_path
from intelmq_nsm.digest.spool import SpoolReader
from intelmq_nsm.feedback.links import Link

#: The owners' four choices and the ledger state each one sets.
CHOICES = {
    "fixed": "fixed-reported",
    "accepted-risk": "accepted-risk",
    "not-ours": "disputed",
    "false-positive": "false-positive",
}
#: States the ticket system may set: the owners' answers, and ``open`` to take one back
#: (what each does to a finding's state is the ledger's precedence, source ``ticket``).
API_STATES = ("fixed-reported", "accepted-risk", "disputed", "false-positive", "open")
MAX_COMMENT_CHARS = 2000
#: The facts of a finding the page shows, from the digest as it was delivered.
FACT_COLUMNS = (
    "kind_of_abuse",
    "ip",
    "port",
    "fqdn",
    "url",
    "cves",
    "severity",
    "product",
    "malware",
    "case_title",
    "description",
    "recommendation",
    "feed",
)


class UnknownFinding(LookupError):
    """No such finding for this organisation (in this digest): nothing to show or answer."""


class ConflictingReference(ValueError):
    """A reference used before for a different answer."""


@dataclass
class FeedbackConfig:
    ledger_url: str
    ledger_name: str
    #: The digest output's spool: where the facts of a delivered digest are read from.
    #: Derived from a SQLite ledger URL (the ledger lives in the spool's file by default).
    spool_file: Optional[str] = None


class FeedbackStore:
    """The ledger (and the digest spool's facts) as the feedback service needs them."""

    def __init__(self, config: FeedbackConfig, ledger: Optional[Ledger] = None):
        self.config = config
        self.ledger = ledger or Ledger(config.ledger_url, name=config.ledger_name)
        self.spool_file = config.spool_file or sqlite_path(config.ledger_url)
        # Reference look-up and answer are one step for a given reference.
        self._references = threading.Lock()

    def close(self) -> None:
        self.ledger.close()

    # -- reading ------------------------------------------------------------------------

    def findings_for(self, link: Link) -> list:
        """The link's findings with their ledger record, facts and history (oldest first)."""
        records = self.ledger.delivered_in(link.digest_id, link.org_id, link.finding_id)
        facts = self._facts(link.digest_id, link.org_id)
        for record in records:
            record["facts"] = facts.get(record["finding_id"], {})
        return records

    def finding_for(self, link: Link, finding_id: str) -> dict:
        """One of the link's findings; UnknownFinding when the link does not cover it."""
        if link.finding_id is not None and finding_id != link.finding_id:
            raise UnknownFinding(finding_id)
        for record in self.findings_for(Link(link.digest_id, link.org_id, finding_id, link.expires)):
            return record
        raise UnknownFinding(finding_id)

    def _facts(self, digest_id: str, org_id: str) -> dict:
        """finding id → the digest row's facts, from the spool while it keeps the digest."""
        if not self.spool_file:
            return {}
        facts = {}
        for row in SpoolReader(self.spool_file).delivered_rows(digest_id, org_id):
            if row.get("finding_id"):
                facts[row["finding_id"]] = {c: row[c] for c in FACT_COLUMNS if row.get(c) not in (None, "")}
        return facts

    # -- answers ------------------------------------------------------------------------

    def answer(self, link: Link, finding_id: str, choice: str, comment: str = "", now: Optional[float] = None) -> dict:
        """An owner's answer through a link: the finding's record after it."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}.")
        self.finding_for(link, finding_id)
        previous = self.ledger.record_answer(
            finding_id,
            link.org_id,
            CHOICES[choice],
            source="owner",
            note=comment[:MAX_COMMENT_CHARS],
            reference=f"digest {link.digest_id}",
            now=now,
        )
        if previous is None:
            raise UnknownFinding(finding_id)
        return self.finding_for(link, finding_id)

    def api_answer(
        self, client: str, finding_id: str, org_id: str, state: str, comment: str, reference: str, now=None
    ) -> tuple:
        """The ticket system's answer: ``(created, result)``; the same reference again
        (same answer) is not recorded twice."""
        if state not in API_STATES:
            raise ValueError(f"state must be one of {', '.join(API_STATES)}, not {state!r}.")
        stored_reference = f"ticket {client} {reference}"
        with self._references:
            earlier = self.ledger.change_by_reference(stored_reference)
            if earlier is not None:
                if (earlier["finding_id"], earlier["org_id"], earlier["state"], earlier["note"]) != (
                    finding_id,
                    org_id,
                    state,
                    comment,
                ):
                    raise ConflictingReference(reference)
                return False, self._result(earlier, reference)
            previous = self.ledger.record_answer(
                finding_id,
                org_id,
                state,
                source="ticket",
                note=comment,
                reference=stored_reference,
                now=time.time() if now is None else now,
            )
            if previous is None:
                raise UnknownFinding(finding_id)
            return True, self._result(self.ledger.change_by_reference(stored_reference), reference)

    @staticmethod
    def _result(row: dict, reference: str) -> dict:
        return {
            "finding_id": row["finding_id"],
            "organisation": row["org_id"],
            "state": row["state"],
            "previous_state": row["old_state"],
            "recorded_at": row["at"],
            "reference": reference,
        }
