"""Unreachable contacts: addresses a mail server refused for good, or that bounced.

A contact is marked when the receiving SMTP server refuses it with a 5xx answer (at RCPT
or at the end of DATA) or when a delivery status notification (RFC 3464) says delivery to
it failed for good (``intelmq_nsm.digest.bounces``). A marked address gets no digest until
an operator clears it (``intelmq-nsm spool FILE contacts --clear ADDRESS``) or the registry
gives the organisation another: its digests go to the organisation's other contacts, and
with none left they fail, visibly (``spool list``, the operators' overview, the bot's
``check``). One table in the digest output's spool file, beside the spool's own, written by
the delivery thread on the spool's connection.
"""

import sqlite3
import time
from collections.abc import Iterable
from typing import Optional

from intelmq_nsm import storage
from intelmq_nsm.digest.spool import DIGEST_ORGANISATION

SCHEMA = """
CREATE TABLE IF NOT EXISTS unreachable_contacts (
    address TEXT PRIMARY KEY,      -- lowercased
    org_id TEXT NOT NULL,          -- the organisation it was a contact of when marked ('' if unknown)
    reason TEXT NOT NULL,          -- the server's answer or the DSN's status and diagnostic
    source TEXT NOT NULL CHECK (source IN ('smtp', 'dsn')),
    since REAL NOT NULL,           -- first failure
    last_failure REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 1,
    digest_id TEXT                 -- the digest that failed last
);
"""
MARK = """
INSERT INTO unreachable_contacts (address, org_id, reason, source, since, last_failure, failures, digest_id)
VALUES (?, ?, ?, ?, ?, ?, 1, ?)
ON CONFLICT (address) DO UPDATE SET
    org_id = CASE WHEN excluded.org_id != '' THEN excluded.org_id ELSE org_id END,
    reason = excluded.reason, source = excluded.source, last_failure = excluded.last_failure,
    failures = failures + 1, digest_id = COALESCE(excluded.digest_id, digest_id)
"""
SELECT_ALL = "SELECT * FROM unreachable_contacts ORDER BY org_id, address"
SELECT_ONE = "SELECT * FROM unreachable_contacts WHERE address = ?"
CLEAR = "DELETE FROM unreachable_contacts WHERE address = ?"
SOURCES = ("smtp", "dsn")


def normal(address: str) -> str:
    return str(address or "").strip().lower()


class ContactBook:
    """The unreachable contacts of one spool file, on a connection of the calling thread
    (a DigestSpool's ``db``, or one of its own)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.db.executescript(SCHEMA)

    @classmethod
    def open(cls, path) -> "ContactBook":
        return cls(storage.connect(path))

    def close(self) -> None:
        self.db.close()

    def mark(
        self,
        address: str,
        reason: str,
        source: str = "smtp",
        org_id: str = "",
        digest_id: Optional[str] = None,
        now: Optional[float] = None,
    ) -> None:
        """Mark ``address`` unreachable (again: the reason and time are updated, the first
        failure kept)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}.")
        now = time.time() if now is None else now
        with storage.transaction(self.db):
            self.db.execute(MARK, (normal(address), org_id or "", reason, source, now, now, digest_id))

    def unreachable(self, addresses: Optional[Iterable[str]] = None) -> dict:
        """``{address: reason (since when)}`` of the marked ones among ``addresses`` (all if None)."""
        if addresses is None:
            rows = self.db.execute(SELECT_ALL).fetchall()
        else:
            rows = [r for a in {normal(a) for a in addresses} if (r := self.db.execute(SELECT_ONE, (a,)).fetchone())]
        return {row["address"]: f"{row['reason']} (unreachable since {_day(row['since'])})" for row in rows}

    def rows(self) -> list:
        """Every marked contact as a dict, by organisation."""
        return [dict(row) for row in self.db.execute(SELECT_ALL)]

    def clear(self, address: str) -> bool:
        """Take the mark off ``address``; False if it had none."""
        with storage.transaction(self.db):
            return self.db.execute(CLEAR, (normal(address),)).rowcount == 1

    def organisation_of(self, digest_id: Optional[str]) -> str:
        """The organisation a digest of this spool was for, '' if unknown."""
        if not digest_id:
            return ""
        try:
            row = self.db.execute(DIGEST_ORGANISATION, (digest_id,)).fetchone()
        except sqlite3.OperationalError:  # a file without digests table
            return ""
        return row[0] if row else ""

    def annotate(self, digest):
        """The digest with ``organisation["unreachable"]``: its contacts that are marked."""
        organisation = digest.organisation
        marked = self.unreachable(organisation.get("contacts") or [])
        if marked:
            digest.organisation = {**organisation, "unreachable": marked}
        return digest


def _day(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))
