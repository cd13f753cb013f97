"""The durable spool: SQLite in WAL mode holding findings until a channel confirmed them.

An event is written (and committed) before IntelMQ's message is acknowledged, so a crash
at any point leaves it either still in Redis or on disk: as an arrival (the event, to be
filed into the ledger and ``events`` by the delivery thread) or as its findings in
``events``. A message delivered again after a crash before the acknowledgement is ignored
by the unique (event hash, organisation) key. A digest is formed in one transaction (digest row plus the events'
``digest_id``) and counts as delivered only after the channel confirmed it.

A digest's states: ``pending`` (waiting for its next attempt), ``attempting`` (committed
before the channel starts sending, with ``attempt_started``), then ``delivered``,
``pending`` again (a retry) or ``failed``. A digest found ``attempting`` when delivery
starts was interrupted mid-attempt (the process died): the receiver may hold a copy, so
the next attempt says so in the log and carries the same id.

Durability: ``synchronous=NORMAL`` in WAL mode (the default here) survives a crash or
SIGKILL of the process, which is what IntelMQ's acknowledge protects against: the commit
is in the WAL file in the OS page cache before we acknowledge. Only a power loss or
kernel crash in the moment after a commit can lose the last transactions, while the
message is already gone from Redis. ``synchronous=FULL`` closes that window at the cost
of an fsync per message (see benchmarks/RESULTS.md); choose it with the bot's
``spool_synchronous`` parameter.

Checkpoints: SQLite copies the WAL back into the database file (a checkpoint, with fsyncs)
from whichever connection commits when the WAL passed ``wal_autocheckpoint`` pages. The
bot's intake connection sets a high threshold, and the delivery thread runs a passive
checkpoint every round, so this cost stays off the per-message path.
"""

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from intelmq_nsm import storage
from intelmq_nsm.digest import grouping

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_hash TEXT NOT NULL,
    group_key TEXT NOT NULL,
    org_id TEXT NOT NULL,
    constituency TEXT NOT NULL,
    case_id TEXT NOT NULL,
    organisation TEXT NOT NULL,
    row TEXT NOT NULL,
    received_at REAL NOT NULL,
    digest_id TEXT,
    UNIQUE (event_hash, org_id)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (group_key, received_at) WHERE digest_id IS NULL;
-- Partial: a new event (digest_id NULL) costs no entry here, only the formed ones do.
CREATE INDEX IF NOT EXISTS events_digest ON events (digest_id) WHERE digest_id IS NOT NULL;
-- Events checked and acknowledged but not yet filed: one row per event (its flat JSON),
-- appended before the acknowledgement, filed into the ledger and ``events`` by the
-- delivery thread (intelmq_nsm.digest.notify). Append-only, no index: a page per event.
CREATE TABLE IF NOT EXISTS arrivals (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    event TEXT NOT NULL,
    -- Why it could not be filed (its data); such an arrival stays here, out of the way.
    error TEXT
);
-- Delivered digests whose notifications the finding ledger has counted (the ledger may be
-- another database: a delivery is marked here first, then counted there, then listed here).
CREATE TABLE IF NOT EXISTS ledger_recorded (digest_id TEXT PRIMARY KEY);
"""
DIGESTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    id TEXT PRIMARY KEY,
    group_key TEXT NOT NULL,
    org_id TEXT NOT NULL,
    constituency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'attempting', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT,
    created REAL NOT NULL,
    delivered_at REAL,
    event_count INTEGER NOT NULL,
    attempt_started REAL
);
CREATE INDEX IF NOT EXISTS digests_due ON digests (state, next_attempt);
"""
SCHEMA += DIGESTS_SCHEMA

STATES = ("pending", "attempting", "delivered", "failed")
#: The columns of a digests table from before the ``attempting`` state (see ``_upgrade_digests``).
DIGEST_COLUMNS = (
    "id, group_key, org_id, constituency, state, attempts, next_attempt, last_error, created, delivered_at, event_count"
)


@dataclass
class Digest:
    """A formed digest with everything a channel needs to render and send it."""

    id: str
    organisation: dict
    constituency: str
    created: float
    findings: list
    attempts: int = 0
    state: str = "pending"
    last_error: Optional[str] = None
    #: The link to the page with all of this digest's findings (each finding's own link
    #: is its row's ``feedback_url``); empty when the output makes no feedback links.
    feedback_url: str = ""


class DigestSpool:
    """The digest output's SQLite spool file. A connection belongs to one thread: open one
    DigestSpool per thread."""

    def __init__(
        self,
        path,
        synchronous: str = "NORMAL",
        by_case: bool = False,
        busy_timeout: float = 30.0,
        autocheckpoint: int = 1000,
    ):
        self.path = Path(path)
        self.by_case = by_case
        self.db = storage.connect(
            self.path, synchronous=synchronous, busy_timeout=busy_timeout, autocheckpoint=autocheckpoint
        )
        self.db.executescript(SCHEMA)
        _upgrade_digests(self.db)

    def close(self) -> None:
        self.db.close()

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file, without waiting for anyone."""
        storage.checkpoint(self.db)

    def transaction(self):
        """``with spool.transaction() as db``: one committed transaction on this connection."""
        return storage.transaction(self.db)

    # -- intake ------------------------------------------------------------------------

    def add(self, findings, now: Optional[float] = None) -> int:
        """Store the findings of one event in one committed transaction; return how many were new."""
        with self.transaction():
            return self.add_in(self.db, findings, now)

    def add_in(self, db: sqlite3.Connection, findings, now: Optional[float] = None) -> int:
        """Store the findings in the transaction open on ``db`` (a connection to this spool's
        file, e.g. the ledger's, so that both commit together); return how many were new."""
        now = time.time() if now is None else now
        before = db.total_changes
        db.executemany(
            "INSERT OR IGNORE INTO events (event_hash, group_key, org_id, constituency, case_id,"
            " organisation, row, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f.event_hash,
                    grouping.group_key(f.constituency, f.organisation["id"], f.case_id, self.by_case),
                    f.organisation["id"],
                    f.constituency,
                    f.case_id,
                    json.dumps(f.organisation, sort_keys=True),
                    json.dumps(f.row, sort_keys=True, default=str),
                    now,
                )
                for f in findings
            ],
        )
        return db.total_changes - before

    def arrive(self, event: dict, now: Optional[float] = None) -> None:
        """Append one event (a flat dict, checked by
        :func:`intelmq_nsm.digest.event_findings.findings_of`)
        to the arrivals, committed; the delivery thread files it
        (:func:`intelmq_nsm.digest.notify.file_arrivals`)."""
        now = time.time() if now is None else now
        # default=str as in event_findings.event_hash: the event read back hashes the same.
        text = json.dumps(event, ensure_ascii=False, default=str)
        with self.transaction():
            self.db.execute("INSERT INTO arrivals (received_at, event) VALUES (?, ?)", (now, text))

    def arrivals(self, limit: int = 500) -> list:
        """The oldest arrivals: ``(id, received_at, event)`` in the order they came."""
        rows = self.db.execute(
            "SELECT id, received_at, event FROM arrivals WHERE error IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def arrival_failed(self, arrival_id: int, error: str) -> None:
        with self.transaction() as db:
            self.arrival_failed_in(db, arrival_id, error)

    def arrival_failed_in(self, db: sqlite3.Connection, arrival_id: int, error: str) -> None:
        """Keep an arrival that cannot be filed, with the reason, out of the next batches."""
        db.execute("UPDATE arrivals SET error = ? WHERE id = ?", (error, arrival_id))

    def drop_arrivals_in(self, db: sqlite3.Connection, ids) -> None:
        """Remove filed arrivals, in the transaction open on ``db``."""
        db.executemany("DELETE FROM arrivals WHERE id = ? AND error IS NULL", [(i,) for i in ids])

    # -- forming digests ---------------------------------------------------------------

    def form_digests(self, max_events: int, max_age: float, now: Optional[float] = None, flush: bool = False) -> list:
        """Turn every due group into digests of at most ``max_events`` findings; return their ids."""
        now = time.time() if now is None else now
        groups = self.db.execute(
            "SELECT group_key, COUNT(*) AS n, MIN(received_at) AS oldest FROM events"
            " WHERE digest_id IS NULL GROUP BY group_key"
        ).fetchall()
        formed = []
        for group in groups:
            if grouping.is_due(group["n"], group["oldest"], now, max_events, max_age, flush):
                formed += self._form_group(group["group_key"], max_events, max_age, now, flush)
        return formed

    def _form_group(self, key: str, max_events: int, max_age: float, now: float, flush: bool) -> list:
        formed = []
        while True:
            with self.transaction():
                rows = self.db.execute(
                    "SELECT id, event_hash, org_id, constituency, received_at FROM events"
                    " WHERE digest_id IS NULL AND group_key = ? ORDER BY received_at, id LIMIT ?",
                    (key, max_events),
                ).fetchall()
                if not rows or not grouping.is_due(len(rows), rows[0]["received_at"], now, max_events, max_age, flush):
                    return formed
                org_id, constituency = rows[0]["org_id"], rows[0]["constituency"]
                digest = grouping.digest_id(org_id, constituency, key, [r["event_hash"] for r in rows])
                self.db.execute(
                    "INSERT OR IGNORE INTO digests (id, group_key, org_id, constituency, state, attempts,"
                    " next_attempt, created, event_count) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                    (digest, key, org_id, constituency, now, now, len(rows)),
                )
                self.db.executemany("UPDATE events SET digest_id = ? WHERE id = ?", [(digest, r["id"]) for r in rows])
            formed.append(digest)

    # -- delivery ----------------------------------------------------------------------

    def due(self, now: Optional[float] = None, limit: int = 100) -> list:
        """Ids of pending digests whose next attempt is due, oldest first."""
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT id FROM digests WHERE state = 'pending' AND next_attempt <= ?"
            " ORDER BY next_attempt, created LIMIT ?",
            (now, limit),
        ).fetchall()
        return [r["id"] for r in rows]

    def load(self, digest_id: str) -> Digest:
        """A digest with its organisation and findings (rows in arrival order)."""
        info = self.db.execute("SELECT * FROM digests WHERE id = ?", (digest_id,)).fetchone()
        if info is None:
            raise KeyError(f"No digest {digest_id!r} in {self.path}.")
        rows = self.db.execute(
            "SELECT organisation, row FROM events WHERE digest_id = ? ORDER BY received_at, id", (digest_id,)
        ).fetchall()
        organisation = json.loads(rows[0]["organisation"]) if rows else {"id": info["org_id"], "name": info["org_id"]}
        return Digest(
            id=info["id"],
            organisation=organisation,
            constituency=info["constituency"],
            created=info["created"],
            findings=[json.loads(r["row"]) for r in rows],
            attempts=info["attempts"],
            state=info["state"],
            last_error=info["last_error"],
        )

    def mark_attempting(self, digest_id: str, now: Optional[float] = None) -> None:
        """Record, before the channel starts sending, that an attempt begins now."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute(
                "UPDATE digests SET state = 'attempting', attempt_started = ? WHERE id = ?", (now, digest_id)
            )

    def interrupted(self) -> list:
        """``(id, attempt_started)`` of the digests whose attempt never recorded an outcome."""
        rows = self.db.execute(
            "SELECT id, attempt_started FROM digests WHERE state = 'attempting' ORDER BY attempt_started, id"
        )
        return [(r["id"], r["attempt_started"]) for r in rows]

    def mark_interrupted(self, digest_id: str, error: str, now: Optional[float] = None) -> None:
        """Count an interrupted attempt and put the digest back in line for delivery now."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute(
                "UPDATE digests SET state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt = ?"
                " WHERE id = ? AND state = 'attempting'",
                (error, now, digest_id),
            )

    def mark_delivered(self, digest_id: str, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute(
                "UPDATE digests SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL"
                " WHERE id = ?",
                (now, digest_id),
            )

    def mark_retry(self, digest_id: str, error: str, delay: float, now: Optional[float] = None) -> int:
        """Record a transient failure and schedule the next attempt; return the attempts so far."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute(
                "UPDATE digests SET state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt = ?"
                " WHERE id = ?",
                (error, now + delay, digest_id),
            )
            return self.db.execute("SELECT attempts FROM digests WHERE id = ?", (digest_id,)).fetchone()[0]

    def mark_failed(self, digest_id: str, error: str, count_attempt: bool = True) -> None:
        """A permanent failure: kept in the spool, visible, retried only on request.

        ``count_attempt=False`` when the attempt was counted already (giving up after retries)."""
        with self.transaction():
            self.db.execute(
                "UPDATE digests SET state = 'failed', attempts = attempts + ?, last_error = ? WHERE id = ?",
                (1 if count_attempt else 0, error, digest_id),
            )

    def unrecorded(self, limit: int = 100) -> list:
        """Ids of delivered digests the ledger has not counted yet, oldest first."""
        rows = self.db.execute(
            "SELECT id FROM digests WHERE state = 'delivered'"
            " AND NOT EXISTS (SELECT 1 FROM ledger_recorded WHERE digest_id = digests.id)"
            " ORDER BY delivered_at, id LIMIT ?",
            (limit,),
        ).fetchall()
        return [r["id"] for r in rows]

    def mark_recorded(self, digest_id: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO ledger_recorded (digest_id) VALUES (?)", (digest_id,))

    # -- operator ----------------------------------------------------------------------

    def digests(self, state: Optional[str] = None) -> list:
        """Summary rows of the digests (all, or in one state), newest first."""
        query = "SELECT * FROM digests"
        args = ()
        if state:
            query += " WHERE state = ?"
            args = (state,)
        return [dict(r) for r in self.db.execute(query + " ORDER BY created DESC, id", args)]

    def counts(self) -> dict:
        """Digests per state and findings not yet in a digest."""
        result = {state: 0 for state in STATES}
        for row in self.db.execute("SELECT state, COUNT(*) FROM digests GROUP BY state"):
            result[row[0]] = row[1]
        # Arrivals (events) not yet filed count as waiting.
        waiting = (
            "SELECT (SELECT COUNT(*) FROM events WHERE digest_id IS NULL)"
            " + (SELECT COUNT(*) FROM arrivals WHERE error IS NULL)"
        )
        result["waiting_findings"] = self.db.execute(waiting).fetchone()[0]
        failed = self.db.execute("SELECT COUNT(*) FROM arrivals WHERE error IS NOT NULL").fetchone()[0]
        if failed:  # only then: the counts of a spool without them stay as they were
            result["failed_arrivals"] = failed
        return result

    def retry(self, digest_id: str, now: Optional[float] = None) -> bool:
        """Put a failed (or pending) digest back in line for delivery now; False if no such digest
        or it was delivered already."""
        now = time.time() if now is None else now
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE digests SET state = 'pending', next_attempt = ? WHERE id = ? AND state != 'delivered'",
                (now, digest_id),
            )
            return cursor.rowcount == 1

    def purge(self, older_than: float, state: str = "delivered", digest_ids=(), now: Optional[float] = None) -> int:
        """Delete digests (and their findings) in ``state`` created more than ``older_than`` seconds
        ago, or exactly the given ids; never pending ones. Returns how many digests went."""
        now = time.time() if now is None else now
        if state not in ("delivered", "failed"):
            raise ValueError("Only delivered or failed digests can be purged.")
        with self.transaction():
            if digest_ids:
                marks = ",".join("?" * len(digest_ids))
                ids = [
                    r[0]
                    for r in self.db.execute(
                        f"SELECT id FROM digests WHERE state = ? AND id IN ({marks})",  # noqa: S608 (placeholders only)
                        (state, *digest_ids),
                    )
                ]
            else:
                ids = [
                    r[0]
                    for r in self.db.execute(
                        "SELECT id FROM digests WHERE state = ? AND created <= ?", (state, now - older_than)
                    )
                ]
            if state == "delivered":
                # Kept until the ledger counted its notifications.
                recorded = {r[0] for r in self.db.execute("SELECT digest_id FROM ledger_recorded")}
                ids = [i for i in ids if i in recorded]
            self.db.executemany("DELETE FROM events WHERE digest_id = ?", [(i,) for i in ids])
            self.db.executemany("DELETE FROM digests WHERE id = ?", [(i,) for i in ids])
            self.db.executemany("DELETE FROM ledger_recorded WHERE digest_id = ?", [(i,) for i in ids])
            return len(ids)


def _upgrade_digests(db: sqlite3.Connection) -> None:
    """Bring a digests table from before the ``attempting`` state up to the current schema.

    SQLite cannot change a CHECK constraint in place: the table is rebuilt in one
    transaction, rows and their states kept.
    """
    columns = {row["name"] for row in db.execute("PRAGMA table_info(digests)")}
    if "attempt_started" in columns:
        return
    with storage.transaction(db):
        db.execute("ALTER TABLE digests RENAME TO digests_before_attempting")
        db.execute("DROP INDEX IF EXISTS digests_due")
        for statement in DIGESTS_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            f"INSERT INTO digests ({DIGEST_COLUMNS}) SELECT {DIGEST_COLUMNS} FROM digests_before_attempting"  # noqa: S608
        )
        db.execute("DROP TABLE digests_before_attempting")
