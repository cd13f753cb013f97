"""A digest bot's spool read from outside, while the bot may be writing it."""

from pathlib import Path

from intelmq_nsm.digest.spool import SpoolReader


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
    return SpoolReader(spool_file).held()


def arriving(spool_file: Path) -> int:
    """How many events wait among the spool's arrivals, not yet filed into the ledger."""
    return SpoolReader(spool_file).arriving()
