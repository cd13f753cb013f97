"""The one storage idiom of intelmq-nsm: SQLite in WAL mode, and atomic file replacement.

Every durable thing the bots keep (the intake's submission spool, the digest spool, the
token file, the digest file channel, the downloaded registry) goes through this module,
so that its durability rules are stated once.

SQLite: WAL mode; transactions are opened explicitly with ``BEGIN IMMEDIATE`` (the
connection runs with ``isolation_level=None``), so a writer takes the write lock at the
start and never meets ``SQLITE_BUSY`` half-way through upgrading a read lock.
``synchronous=NORMAL`` in WAL mode survives a crash or SIGKILL of the process (a commit
is in the WAL in the OS page cache before the caller goes on); ``FULL`` also survives a
power loss, at the cost of an fsync per commit.

Files: :func:`atomic_write` writes a temporary file in the same folder, fsyncs it,
renames it over the target and fsyncs the folder (with ``fsync=True``, the default): a
reader sees the old file or the whole new one, never half, even after a power loss. The
target's owner and mode are kept when it exists (a file rewritten by root for the bot's
user stays readable by that user).
"""

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Optional, Union

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

PathLike = Union[str, os.PathLike]


def connect(
    path: PathLike,
    *,
    synchronous: str = "NORMAL",
    busy_timeout: float = 30.0,
    autocheckpoint: Optional[int] = None,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open (creating its folder) the SQLite database ``path`` in WAL mode, autocommit
    (transactions through :func:`transaction`), rows as :class:`sqlite3.Row`."""
    level = synchronous.upper()
    if level not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=check_same_thread)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={level}")
    if autocheckpoint is not None:
        db.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    return db


def transaction(db: sqlite3.Connection, join: bool = False) -> "_Transaction":
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` when the block raises. With ``join``,
    inside a transaction already open on ``db`` the block runs in that one (its owner
    commits or rolls it back)."""
    return _Transaction(db, join)


def savepoint(db: sqlite3.Connection, name: str = "step") -> "_Savepoint":
    """Inside the open transaction: when the block raises, its changes alone are undone and
    the exception goes on; the transaction stays open for what comes next."""
    return _Savepoint(db, name)


# Context managers as classes rather than generators: they are on the path of every
# message (a generator-based one costs about five times as much to enter and leave).


class _Transaction:
    __slots__ = ("db", "own")

    def __init__(self, db: sqlite3.Connection, join: bool):
        self.db = db
        self.own = not (join and db.in_transaction)

    def __enter__(self) -> sqlite3.Connection:
        if self.own:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, error, traceback) -> bool:
        if not self.own:
            return False
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # not when SQLite itself rolled it back (a full disk)
            self.db.execute("ROLLBACK")
        return False


class _Savepoint:
    __slots__ = ("db", "name")

    def __init__(self, db: sqlite3.Connection, name: str):
        self.db, self.name = db, name

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute(f"SAVEPOINT {self.name}")
        return self.db

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is not None and self.db.in_transaction:  # not when SQLite rolled back it all
            self.db.execute(f"ROLLBACK TO {self.name}")
        if self.db.in_transaction:
            self.db.execute(f"RELEASE {self.name}")
        return False


def checkpoint(db: sqlite3.Connection) -> None:
    """Copy what the WAL holds into the database file, without waiting for readers."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def atomic_write(path: PathLike, data: Union[bytes, str], *, fsync: bool = True, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``data`` atomically (see the module's text for the guarantees).

    ``mode``: the new file's permission bits; by default those of the file it replaces,
    else 0644 less the umask. The replaced file's owner and group are kept where the
    process may set them (as root), so that a bot's user can still read its file."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        previous = path.stat()
    except FileNotFoundError:
        previous = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif previous is not None:
            os.chmod(tmp, previous.st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o644 & ~umask)
        if previous is not None and (previous.st_uid, previous.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(PermissionError):
                os.chown(tmp, previous.st_uid, previous.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_directory(path.parent)


def fsync_directory(directory: PathLike) -> None:
    """Make a rename in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
