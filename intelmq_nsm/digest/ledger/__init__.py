"""The finding ledger: one record per (finding id, organisation) with its state and history.

``schema`` (the tables), ``policy`` (what an observation or a delivery changes), ``store``
(the :class:`Ledger` on SQLite or PostgreSQL), ``stats`` (what became of the findings).
"""

from intelmq_nsm.digest.ledger.policy import Observation
from intelmq_nsm.digest.ledger.schema import ANSWERS, KINDS, SOURCES, STATES
from intelmq_nsm.digest.ledger.store import Ledger, LedgerUnavailable, sqlite_url

__all__ = ["ANSWERS", "KINDS", "SOURCES", "STATES", "Ledger", "LedgerUnavailable", "Observation", "sqlite_url"]
