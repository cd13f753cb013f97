"""A digest bot's spool read from outside, while the bot may be writing it."""

import sqlite3
from pathlib import Path


def spool_digests(spool_file: Path):
    """``(state, Digest)`` for every digest in a digest bot's spool."""
    from intelmq_nsm.digest.spool import DigestSpool

    if not spool_file.exists():
        return []
    spool = DigestSpool(spool_file)
    try:
        return [(row["state"], spool.load(row["id"])) for row in spool.digests()]
    finally:
        spool.close()


def spooled_events(spool_file: Path) -> int:
    """How many findings the spool holds plus how many events wait among its arrivals, not
    yet filed (0 while the bot has not created it yet)."""
    try:
        with sqlite3.connect(spool_file, timeout=5) as db:
            return db.execute("SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM arrivals)").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def arriving(spool_file: Path) -> int:
    """How many events wait among the spool's arrivals, not yet filed into the ledger."""
    try:
        with sqlite3.connect(spool_file, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM arrivals").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
