"""The intake's submission spool and idempotency record, in one SQLite database (WAL mode,
``synchronous=FULL``: a committed submission survives a crash or power loss).

A submission is written here, with all its reports, in one transaction before the
researcher hears ``202``; the bot then moves the reports into the pipeline and deletes
each one after it was sent. A crash between sending and deleting sends that report
again after the restart (repeated, never lost). The submission's row stays as the
idempotency record: the same submission id again creates nothing new.

Each report is kept as its text and its metadata (a plain dict: researcher, feed name,
feed code, time of receipt, ...); which IntelMQ fields they become is the collector's
business.

States: ``accepted`` (stored, not yet sent), ``spooled`` (the pipeline refused it; sent
when it can), ``queued`` (every report is in the pipeline).
"""

import json
import threading
import time
from dataclasses import astuple, dataclass

from intelmq_nsm import storage

ACCEPTED, SPOOLED, QUEUED = "accepted", "spooled", "queued"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    researcher TEXT NOT NULL,
    token_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    state TEXT NOT NULL,
    records INTEGER NOT NULL,
    reports INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    fields TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_submission ON outbox (submission_id);
CREATE TABLE IF NOT EXISTS submission_cases (
    submission_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    PRIMARY KEY (submission_id, case_id)
);
CREATE INDEX IF NOT EXISTS submission_cases_case ON submission_cases (case_id);
"""
CASE_SUBMITTERS = (
    "SELECT submission_cases.case_id, submissions.researcher FROM submission_cases "
    "JOIN submissions ON submissions.id = submission_cases.submission_id "
    "ORDER BY submissions.created, submissions.rowid"
)


@dataclass
class Submission:
    id: str
    researcher: str
    token_id: str
    content_type: str
    state: str
    records: int
    reports: int
    created: float
    updated: float

    def public(self) -> dict:
        """What the submitter may see."""
        return {
            "submission_id": self.id,
            "status": self.state,
            "content_type": self.content_type,
            "records": self.records,
            "reports": self.reports,
            "received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
        }


@dataclass
class OutboxItem:
    """One spooled report: ``meta`` is its metadata as the service stored it."""

    seq: int
    submission_id: str
    part: int
    meta: dict
    raw: bytes


class SubmissionSpool:
    """Thread-safe: one connection, one lock (SQLite serialises writers anyway)."""

    def __init__(self, path):
        self._lock = threading.Lock()
        self._db = storage.connect(path, synchronous="FULL", check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def accept(self, submission: Submission, reports: list, cases=()) -> tuple:
        """Store a submission with its reports ``[(meta, raw_bytes), ...]`` and the case ids
        it reported on unless its id is known. Returns ``(stored submission, created)``;
        ``created`` is False for a repeat. The case ids stay with the submission's row."""
        with self._lock, storage.transaction(self._db) as db:
            known = self._get(submission.id)
            if known is not None:
                return known, False
            db.execute("INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", astuple(submission))
            db.executemany(
                "INSERT INTO outbox (submission_id, part, fields, raw) VALUES (?, ?, ?, ?)",
                [(submission.id, n, json.dumps(meta), raw) for n, (meta, raw) in enumerate(reports, 1)],
            )
            db.executemany(
                "INSERT OR IGNORE INTO submission_cases VALUES (?, ?)", [(submission.id, c) for c in cases if c]
            )
        return submission, True

    def case_submitters(self) -> list:
        """``(case id, researcher)`` of every case a submission named, oldest submission
        first: who submitted each case before cases had owners (:mod:`.cases`)."""
        with self._lock:
            return [tuple(row) for row in self._db.execute(CASE_SUBMITTERS)]

    def _get(self, submission_id: str):
        row = self._db.execute("SELECT * FROM submissions WHERE id = ?", (submission_id,)).fetchone()
        return Submission(*row) if row else None

    def get(self, submission_id: str):
        with self._lock:
            return self._get(submission_id)

    def pending(self, limit: int = 100) -> list:
        """The oldest reports not yet in the pipeline."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, submission_id, part, fields, raw FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [OutboxItem(seq, sid, part, json.loads(meta), bytes(raw)) for seq, sid, part, meta, raw in rows]

    def pending_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def sent(self, item: OutboxItem) -> None:
        """A report is in the pipeline: forget it; the submission is queued once all are."""
        with self._lock, storage.transaction(self._db) as db:
            db.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,))
            left = db.execute("SELECT COUNT(*) FROM outbox WHERE submission_id = ?", (item.submission_id,)).fetchone()
            if not left[0]:
                db.execute(
                    "UPDATE submissions SET state = ?, updated = ? WHERE id = ?",
                    (QUEUED, time.time(), item.submission_id),
                )

    def mark_spooled(self) -> int:
        """The pipeline refused: every submission still waiting is now ``spooled``."""
        with self._lock, storage.transaction(self._db) as db:
            cursor = db.execute(
                "UPDATE submissions SET state = ?, updated = ? WHERE state = ? "
                "AND id IN (SELECT DISTINCT submission_id FROM outbox)",
                (SPOOLED, time.time(), ACCEPTED),
            )
            return cursor.rowcount
