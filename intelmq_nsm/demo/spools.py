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
    """How many events the spool holds (0 while the bot has not created it yet)."""
    try:
        with sqlite3.connect(spool_file, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
