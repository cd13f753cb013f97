"""Waiting for the finding ledger: the outputs that write it keep their message until it answers.

A ledger on PostgreSQL may be unreachable for a while (a restart, the network); the
output's message then stays unacknowledged and the write is tried again every
``delay`` seconds, logged as a warning each time, rather than dumped: nothing is lost and
nothing is recorded twice (every ledger write is idempotent).
"""

import time


def until_reachable(action, logger, delay: float):
    """Run ``action`` until the ledger's database answers; return what it returns."""
    from intelmq_nsm.digest.ledger import LedgerUnavailable

    while True:
        try:
            return action()
        except LedgerUnavailable as exc:
            logger.warning("The ledger cannot be reached, trying again in %s s: %s.", delay, exc)
            time.sleep(delay)
