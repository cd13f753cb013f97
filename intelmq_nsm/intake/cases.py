"""Who may speak for a case: its owner and the researchers the case is shared with.

The first researcher whose submission names a case id owns the case, unless an operator
assigned it before (``intelmq-nsm cases assign``). Another researcher's submission naming
it is refused with ``403`` unless the case is shared with them (``intelmq-nsm cases
share``: a second team rescanning for the owner). Only the owner and those it is shared
with read the case's figures (``GET /v1/cases/<id>``). The intake stamps every report of an
accepted submission with the case's owner (``extra.nsm.case_owner``), and the digest
outputs' ledgers let a not-vulnerable result close a finding only for the reporter that
opened it (``harmonization/finding-id.md``).

Researchers are named as the token file names them (a token's ``researcher``), so that a
new token of the same researcher keeps its cases. One SQLite file (WAL mode) holds the
cases: every intake instance of a host opens the same file (the collector's
``case_file``), so that no instance hands a case to a second owner.
"""

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Optional

from intelmq_nsm import storage

#: The case file's name in IntelMQ's state folder: the intake collector's default ``case_file``.
CASE_FILE_NAME = "nsm-cases.sqlite"
#: How a case got its owner.
BY_SUBMISSION, BY_OPERATOR = "submission", "operator"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    since REAL NOT NULL,
    assigned_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS case_shares (
    case_id TEXT NOT NULL,
    researcher TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (case_id, researcher)
);
"""
OWNER = "SELECT owner FROM cases WHERE case_id = ?"
CASE = "SELECT case_id, owner, since, assigned_by FROM cases WHERE case_id = ?"
CASES = "SELECT case_id, owner, since, assigned_by FROM cases ORDER BY case_id"
SHARED = "SELECT 1 FROM case_shares WHERE case_id = ? AND researcher = ?"
SHARES = "SELECT researcher FROM case_shares WHERE case_id = ? ORDER BY researcher"
ALL_SHARES = "SELECT case_id, researcher FROM case_shares ORDER BY case_id, researcher"
NEW_CASE = "INSERT OR IGNORE INTO cases (case_id, owner, since, assigned_by) VALUES (?, ?, ?, ?)"
NEW_OWNER = "UPDATE cases SET owner = ?, since = ?, assigned_by = ? WHERE case_id = ?"
SHARE = "INSERT OR IGNORE INTO case_shares (case_id, researcher, since) VALUES (?, ?, ?)"
UNSHARE = "DELETE FROM case_shares WHERE case_id = ? AND researcher = ?"


class CaseTaken(PermissionError):
    """The case belongs to another researcher and is not shared with this one."""

    def __init__(self, case_id: str):
        super().__init__(
            f"Case {case_id!r} belongs to another researcher: only its owner and the researchers it is shared "
            "with may report on it. Ask its owner or the operators to share it with you."
        )
        self.case_id = case_id


class UnknownCase(LookupError):
    """No case of this id has an owner."""


class CaseBook:
    """The cases' owners and shares in the SQLite file ``path``; thread-safe (one
    connection, one lock: SQLite serialises writers anyway)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = storage.connect(self.path, synchronous="FULL", check_same_thread=False)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the intake ---------------------------------------------------------------------

    def owner(self, case_id: str) -> Optional[str]:
        with self._lock:
            row = self._db.execute(OWNER, (case_id,)).fetchone()
        return row[0] if row else None

    def may_speak(self, case_id: str, researcher: str) -> bool:
        """Whether ``researcher`` owns the case or it is shared with them (an unowned case: no)."""
        with self._lock:
            return self._may_speak(case_id, researcher)

    def _may_speak(self, case_id: str, researcher: str) -> bool:
        row = self._db.execute(OWNER, (case_id,)).fetchone()
        if row is None:
            return False
        return row[0] == researcher or self._db.execute(SHARED, (case_id, researcher)).fetchone() is not None

    def check(self, case_id: str, researcher: str) -> None:
        """Raise CaseTaken unless the case is unowned (``researcher`` would take it) or
        ``researcher`` may speak for it. Nothing is written."""
        with self._lock:
            if self._db.execute(OWNER, (case_id,)).fetchone() is not None and not self._may_speak(case_id, researcher):
                raise CaseTaken(case_id)

    def claim(self, case_id: str, researcher: str, now: Optional[float] = None) -> str:
        """The owner of the case ``researcher`` submits a report on: ``researcher`` itself
        for a case nobody owns yet (it is theirs from now on), else the owner, if the case
        is shared with ``researcher``; CaseTaken otherwise. Two first claims at once: one wins."""
        now = time.time() if now is None else now
        with self._lock, storage.transaction(self._db) as db:
            db.execute(NEW_CASE, (case_id, researcher, now, BY_SUBMISSION))
            owner = db.execute(OWNER, (case_id,)).fetchone()[0]
            if owner != researcher and db.execute(SHARED, (case_id, researcher)).fetchone() is None:
                raise CaseTaken(case_id)
            return owner

    def adopt(self, submitted) -> int:
        """Owners for cases submitted before cases had owners: ``submitted`` is ``(case id,
        researcher)`` pairs, oldest submission first; the first researcher of each case
        owns it unless it has an owner already. Returns how many cases got one."""
        now = time.time()
        with self._lock, storage.transaction(self._db) as db:
            before = db.total_changes
            db.executemany(NEW_CASE, [(case_id, researcher, now, BY_SUBMISSION) for case_id, researcher in submitted])
            return db.total_changes - before

    # -- operators ----------------------------------------------------------------------

    def assign(self, case_id: str, researcher: str, transfer: bool = False, now: Optional[float] = None) -> str:
        """Make ``researcher`` the owner of ``case_id``; a case another researcher owns only
        with ``transfer`` (else CaseTaken). Returns the previous owner ("" for none)."""
        now = time.time() if now is None else now
        with self._lock, storage.transaction(self._db) as db:
            row = db.execute(OWNER, (case_id,)).fetchone()
            if row is None:
                db.execute(NEW_CASE, (case_id, researcher, now, BY_OPERATOR))
                return ""
            if row[0] != researcher:
                if not transfer:
                    raise CaseTaken(case_id)
                db.execute(NEW_OWNER, (researcher, now, BY_OPERATOR, case_id))
                db.execute(UNSHARE, (case_id, researcher))
            return row[0]

    def share(self, case_id: str, researcher: str, now: Optional[float] = None) -> bool:
        """Let ``researcher`` report on and read the case; False if they could already."""
        now = time.time() if now is None else now
        with self._lock, storage.transaction(self._db) as db:
            row = db.execute(OWNER, (case_id,)).fetchone()
            if row is None:
                raise UnknownCase(case_id)
            if row[0] == researcher:
                return False
            return db.execute(SHARE, (case_id, researcher, now)).rowcount == 1

    def unshare(self, case_id: str, researcher: str) -> bool:
        """Take the share back; False if the case was not shared with ``researcher``."""
        with self._lock, storage.transaction(self._db) as db:
            if db.execute(OWNER, (case_id,)).fetchone() is None:
                raise UnknownCase(case_id)
            return db.execute(UNSHARE, (case_id, researcher)).rowcount == 1

    def case(self, case_id: str) -> Optional[dict]:
        """``{case_id, owner, since, assigned_by, shared_with}``, None for an unowned case."""
        with self._lock:
            row = self._db.execute(CASE, (case_id,)).fetchone()
            if row is None:
                return None
            shared = [r[0] for r in self._db.execute(SHARES, (case_id,))]
        return {**dict(row), "shared_with": shared}

    def cases(self) -> list:
        """Every owned case as :meth:`case` gives it, by case id."""
        with self._lock:
            rows = [dict(row) for row in self._db.execute(CASES)]
            shares = {}
            for case_id, researcher in self._db.execute(ALL_SHARES):
                shares.setdefault(case_id, []).append(researcher)
        return [{**row, "shared_with": shares.get(row["case_id"], [])} for row in rows]


def hand_over(path) -> None:
    """As root, give the case file (and SQLite's files beside it) to the owner of its folder
    (the bots' user), so that the intake can still write what a command made or changed."""
    if os.geteuid() != 0:
        return
    path = Path(path)
    owner = path.parent.stat()
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chown(path.parent / name, owner.st_uid, owner.st_gid)
