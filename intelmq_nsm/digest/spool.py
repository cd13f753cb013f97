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

Every statement on the spool's tables is a named constant of this module, run by
:class:`DigestSpool` (the bot's and the delivery thread's connections) or by
:class:`SpoolReader` (the spool read from outside while its bot writes it).
"""

import contextlib
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

# -- the statements ----------------------------------------------------------------------

# Findings and arrivals.
ADD_FINDING = (
    "INSERT OR IGNORE INTO events (event_hash, group_key, org_id, constituency, case_id,"
    " organisation, row, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
ADD_ARRIVAL = "INSERT INTO arrivals (received_at, event) VALUES (?, ?)"
OLDEST_ARRIVALS = "SELECT id, received_at, event FROM arrivals WHERE error IS NULL ORDER BY id LIMIT ?"
ARRIVAL_FAILED = "UPDATE arrivals SET error = ? WHERE id = ?"
DROP_ARRIVAL = "DELETE FROM arrivals WHERE id = ? AND error IS NULL"

# Forming digests.
WAITING_GROUPS = (
    "SELECT group_key, COUNT(*) AS n, MIN(received_at) AS oldest FROM events WHERE digest_id IS NULL GROUP BY group_key"
)
WAITING_IN_GROUP = (
    "SELECT id, event_hash, org_id, constituency, received_at FROM events"
    " WHERE digest_id IS NULL AND group_key = ? ORDER BY received_at, id LIMIT ?"
)
ADD_DIGEST = (
    "INSERT OR IGNORE INTO digests (id, group_key, org_id, constituency, state, attempts,"
    " next_attempt, created, event_count) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
)
PUT_IN_DIGEST = "UPDATE events SET digest_id = ? WHERE id = ?"

# Delivery.
DUE_DIGESTS = (
    "SELECT id FROM digests WHERE state = 'pending' AND next_attempt <= ? ORDER BY next_attempt, created LIMIT ?"
)
DIGEST = "SELECT * FROM digests WHERE id = ?"
#: The organisation a digest was for (a bounce names the digest it is about: the contacts'
#: book, intelmq_nsm.digest.contacts, asks on its connection to this file).
DIGEST_ORGANISATION = "SELECT org_id FROM digests WHERE id = ?"
DIGEST_FINDINGS = "SELECT organisation, row FROM events WHERE digest_id = ? ORDER BY received_at, id"
MARK_ATTEMPTING = "UPDATE digests SET state = 'attempting', attempt_started = ? WHERE id = ?"
INTERRUPTED = "SELECT id, attempt_started FROM digests WHERE state = 'attempting' ORDER BY attempt_started, id"
MARK_INTERRUPTED = (
    "UPDATE digests SET state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt = ?"
    " WHERE id = ? AND state = 'attempting'"
)
MARK_DELIVERED = (
    "UPDATE digests SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ?"
)
MARK_RETRY = (
    "UPDATE digests SET state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt = ? WHERE id = ?"
)
ATTEMPTS = "SELECT attempts FROM digests WHERE id = ?"
MARK_FAILED = "UPDATE digests SET state = 'failed', attempts = attempts + ?, last_error = ? WHERE id = ?"
UNRECORDED = (
    "SELECT id FROM digests WHERE state = 'delivered'"
    " AND NOT EXISTS (SELECT 1 FROM ledger_recorded WHERE digest_id = digests.id)"
    " ORDER BY delivered_at, id LIMIT ?"
)
MARK_RECORDED = "INSERT OR IGNORE INTO ledger_recorded (digest_id) VALUES (?)"

# The operator's view and actions.
ALL_DIGESTS = "SELECT * FROM digests ORDER BY created DESC, id"
DIGESTS_IN_STATE = "SELECT * FROM digests WHERE state = ? ORDER BY created DESC, id"
DIGESTS_PER_STATE = "SELECT state, COUNT(*) FROM digests GROUP BY state"
#: Findings not yet in a digest, counting arrivals not yet filed as waiting.
WAITING = (
    "SELECT (SELECT COUNT(*) FROM events WHERE digest_id IS NULL) + (SELECT COUNT(*) FROM arrivals WHERE error IS NULL)"
)
FAILED_ARRIVALS = "SELECT COUNT(*) FROM arrivals WHERE error IS NOT NULL"
RETRY = "UPDATE digests SET state = 'pending', next_attempt = ? WHERE id = ? AND state != 'delivered'"
#: Purging: the digests in a state (with the given ids, or created before a time).
PURGEABLE_IDS = "SELECT id FROM digests WHERE state = ? AND id IN ({marks})"
PURGEABLE_BEFORE = "SELECT id FROM digests WHERE state = ? AND created <= ?"
RECORDED = "SELECT digest_id FROM ledger_recorded"
DROP_DIGEST_FINDINGS = "DELETE FROM events WHERE digest_id = ?"
DROP_DIGEST = "DELETE FROM digests WHERE id = ?"
DROP_RECORDED = "DELETE FROM ledger_recorded WHERE digest_id = ?"

# Read from outside (SpoolReader).
HELD = "SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM arrivals)"
ARRIVING = "SELECT COUNT(*) FROM arrivals"
DELIVERED_ROWS = "SELECT row FROM events WHERE digest_id = ? AND org_id = ?"

# Bringing a spool of an earlier version up to date.
DIGESTS_COLUMNS_NOW = "PRAGMA table_info(digests)"
SET_DIGESTS_ASIDE = "ALTER TABLE digests RENAME TO digests_before_attempting"
DROP_DUE_INDEX = "DROP INDEX IF EXISTS digests_due"
COPY_DIGESTS_BACK = f"INSERT INTO digests ({DIGEST_COLUMNS}) SELECT {DIGEST_COLUMNS} FROM digests_before_attempting"  # noqa: S608
DROP_DIGESTS_ASIDE = "DROP TABLE digests_before_attempting"


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
    DigestSpool per thread.

    Each write runs in the transaction open on the spool's connection, if there is one (the
    ledger's, when the ledger lives in the spool's file and both must commit together:
    :meth:`intelmq_nsm.digest.ledger.Ledger.sqlite_transaction`), else in one of its own."""

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

    def _writing(self):
        """The transaction open on this connection, else one of its own committed at the end."""
        return storage.transaction(self.db, join=True)

    # -- intake ------------------------------------------------------------------------

    def add(self, findings, now: Optional[float] = None) -> int:
        """Store the findings of one event; return how many were new (a repeated event's are not)."""
        now = time.time() if now is None else now
        rows = [
            (
                f.event_hash,
                grouping.key_of(f, self.by_case),
                f.organisation["id"],
                f.constituency,
                f.case_id,
                json.dumps(f.organisation, sort_keys=True),
                json.dumps(f.row, sort_keys=True, default=str),
                now,
            )
            for f in findings
        ]
        with self._writing() as db:
            before = db.total_changes
            db.executemany(ADD_FINDING, rows)
            return db.total_changes - before

    def arrive(self, event: dict, now: Optional[float] = None) -> None:
        """Append one event (a flat dict, checked by
        :func:`intelmq_nsm.digest.event_findings.findings_of`) to the arrivals, committed; the
        delivery thread files it (:func:`intelmq_nsm.digest.notify.file_arrivals`)."""
        now = time.time() if now is None else now
        # default=str as in event_findings.event_hash: the event read back hashes the same.
        text = json.dumps(event, ensure_ascii=False, default=str)
        with self._writing() as db:
            db.execute(ADD_ARRIVAL, (now, text))

    def arrivals(self, limit: int = 500) -> list:
        """The oldest arrivals: ``(id, received_at, event)`` in the order they came."""
        return [(r[0], r[1], json.loads(r[2])) for r in self.db.execute(OLDEST_ARRIVALS, (limit,))]

    def arrival_failed(self, arrival_id: int, error: str) -> None:
        """Keep an arrival that cannot be filed, with the reason, out of the next batches."""
        with self._writing() as db:
            db.execute(ARRIVAL_FAILED, (error, arrival_id))

    def drop_arrivals(self, ids) -> None:
        """Remove filed arrivals (those marked failed stay)."""
        with self._writing() as db:
            db.executemany(DROP_ARRIVAL, [(i,) for i in ids])

    # -- forming digests ---------------------------------------------------------------

    def form_digests(self, max_events: int, max_age: float, now: Optional[float] = None, flush: bool = False) -> list:
        """Turn every due group into digests of at most ``max_events`` findings; return their ids."""
        now = time.time() if now is None else now
        formed = []
        for group in self.db.execute(WAITING_GROUPS).fetchall():
            if grouping.group_is_due(group["group_key"], group["n"], group["oldest"], now, max_events, max_age, flush):
                formed += self._form_group(group["group_key"], max_events, max_age, now, flush)
        return formed

    def _form_group(self, key: str, max_events: int, max_age: float, now: float, flush: bool) -> list:
        formed = []
        while True:
            with self._writing() as db:
                rows = db.execute(WAITING_IN_GROUP, (key, max_events)).fetchall()
                oldest = rows[0]["received_at"] if rows else 0
                if not rows or not grouping.group_is_due(key, len(rows), oldest, now, max_events, max_age, flush):
                    return formed
                org_id, constituency = rows[0]["org_id"], rows[0]["constituency"]
                digest = grouping.digest_id(org_id, constituency, key, [r["event_hash"] for r in rows])
                db.execute(ADD_DIGEST, (digest, key, org_id, constituency, now, now, len(rows)))
                db.executemany(PUT_IN_DIGEST, [(digest, r["id"]) for r in rows])
            formed.append(digest)

    # -- delivery ----------------------------------------------------------------------

    def due(self, now: Optional[float] = None, limit: int = 100) -> list:
        """Ids of pending digests whose next attempt is due, oldest first."""
        now = time.time() if now is None else now
        return [r["id"] for r in self.db.execute(DUE_DIGESTS, (now, limit)).fetchall()]

    def load(self, digest_id: str) -> Digest:
        """A digest with its organisation and findings (rows in arrival order)."""
        info = self.db.execute(DIGEST, (digest_id,)).fetchone()
        if info is None:
            raise KeyError(f"No digest {digest_id!r} in {self.path}.")
        rows = self.db.execute(DIGEST_FINDINGS, (digest_id,)).fetchall()
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
        with self._writing() as db:
            db.execute(MARK_ATTEMPTING, (now, digest_id))

    def interrupted(self) -> list:
        """``(id, attempt_started)`` of the digests whose attempt never recorded an outcome."""
        return [(r["id"], r["attempt_started"]) for r in self.db.execute(INTERRUPTED)]

    def mark_interrupted(self, digest_id: str, error: str, now: Optional[float] = None) -> None:
        """Count an interrupted attempt and put the digest back in line for delivery now."""
        now = time.time() if now is None else now
        with self._writing() as db:
            db.execute(MARK_INTERRUPTED, (error, now, digest_id))

    def mark_delivered(self, digest_id: str, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        with self._writing() as db:
            db.execute(MARK_DELIVERED, (now, digest_id))

    def mark_retry(self, digest_id: str, error: str, delay: float, now: Optional[float] = None) -> int:
        """Record a transient failure and schedule the next attempt; return the attempts so far."""
        now = time.time() if now is None else now
        with self._writing() as db:
            db.execute(MARK_RETRY, (error, now + delay, digest_id))
            return db.execute(ATTEMPTS, (digest_id,)).fetchone()[0]

    def mark_failed(self, digest_id: str, error: str, count_attempt: bool = True) -> None:
        """A permanent failure: kept in the spool, visible, retried only on request.

        ``count_attempt=False`` when the attempt was counted already (giving up after retries)."""
        with self._writing() as db:
            db.execute(MARK_FAILED, (1 if count_attempt else 0, error, digest_id))

    def unrecorded(self, limit: int = 100) -> list:
        """Ids of delivered digests the ledger has not counted yet, oldest first."""
        return [r["id"] for r in self.db.execute(UNRECORDED, (limit,)).fetchall()]

    def mark_recorded(self, digest_id: str) -> None:
        with self._writing() as db:
            db.execute(MARK_RECORDED, (digest_id,))

    # -- operator ----------------------------------------------------------------------

    def digests(self, state: Optional[str] = None) -> list:
        """Summary rows of the digests (all, or in one state), newest first."""
        rows = self.db.execute(DIGESTS_IN_STATE, (state,)) if state else self.db.execute(ALL_DIGESTS)
        return [dict(r) for r in rows]

    def counts(self) -> dict:
        """Digests per state and findings not yet in a digest."""
        result = {state: 0 for state in STATES}
        for row in self.db.execute(DIGESTS_PER_STATE):
            result[row[0]] = row[1]
        result["waiting_findings"] = self.db.execute(WAITING).fetchone()[0]
        failed = self.db.execute(FAILED_ARRIVALS).fetchone()[0]
        if failed:  # only then: the counts of a spool without them stay as they were
            result["failed_arrivals"] = failed
        return result

    def retry(self, digest_id: str, now: Optional[float] = None) -> bool:
        """Put a failed (or pending) digest back in line for delivery now; False if no such digest
        or it was delivered already."""
        now = time.time() if now is None else now
        with self._writing() as db:
            return db.execute(RETRY, (now, digest_id)).rowcount == 1

    def purge(self, older_than: float, state: str = "delivered", digest_ids=(), now: Optional[float] = None) -> int:
        """Delete digests (and their findings) in ``state`` created more than ``older_than`` seconds
        ago, or exactly the given ids; never pending ones. Returns how many digests went."""
        now = time.time() if now is None else now
        if state not in ("delivered", "failed"):
            raise ValueError("Only delivered or failed digests can be purged.")
        with self._writing() as db:
            if digest_ids:
                query = PURGEABLE_IDS.format(marks=",".join("?" * len(digest_ids)))  # placeholders only
                ids = [r[0] for r in db.execute(query, (state, *digest_ids))]
            else:
                ids = [r[0] for r in db.execute(PURGEABLE_BEFORE, (state, now - older_than))]
            if state == "delivered":
                # Kept until the ledger counted its notifications.
                recorded = {r[0] for r in db.execute(RECORDED)}
                ids = [i for i in ids if i in recorded]
            for statement in (DROP_DIGEST_FINDINGS, DROP_DIGEST, DROP_RECORDED):
                db.executemany(statement, [(i,) for i in ids])
            return len(ids)


class SpoolReader:
    """A digest output's spool file read from outside (the feedback service, the demo, the
    benchmarks) while its bot may be writing it: a short connection per question, and a
    spool its bot has not made yet is neither made nor changed here; it holds nothing."""

    def __init__(self, path):
        self.path = Path(path)

    def _rows(self, statement: str, args=()) -> Optional[list]:
        """The rows of ``statement``, or None when the spool is not there (yet) or not readable."""
        if not self.path.exists():
            return None
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as db:
                return db.execute(statement, args).fetchall()
        except sqlite3.Error:
            return None

    def held(self) -> int:
        """How many findings the spool holds plus how many events wait among its arrivals, not
        yet filed (0 while the bot has not made it)."""
        rows = self._rows(HELD)
        return rows[0][0] if rows else 0

    def arriving(self) -> int:
        """How many events wait among the spool's arrivals, not yet filed into the ledger."""
        rows = self._rows(ARRIVING)
        return rows[0][0] if rows else 0

    def delivered_rows(self, digest_id: str, org_id: str) -> list:
        """The rows (dicts) of the digest ``digest_id`` for ``org_id``, while the spool keeps it."""
        return [json.loads(text) for (text,) in self._rows(DELIVERED_ROWS, (digest_id, org_id)) or ()]


def _upgrade_digests(db: sqlite3.Connection) -> None:
    """Bring a digests table from before the ``attempting`` state up to the current schema.

    SQLite cannot change a CHECK constraint in place: the table is rebuilt in one
    transaction, rows and their states kept.
    """
    columns = {row["name"] for row in db.execute(DIGESTS_COLUMNS_NOW)}
    if "attempt_started" in columns:
        return
    with storage.transaction(db):
        db.execute(SET_DIGESTS_ASIDE)
        db.execute(DROP_DUE_INDEX)
        for statement in DIGESTS_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(COPY_DIGESTS_BACK)
        db.execute(DROP_DIGESTS_ASIDE)
