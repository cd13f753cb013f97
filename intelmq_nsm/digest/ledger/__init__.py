"""The finding ledger: one record per (finding id, organisation) with its state and history.

``schema`` (the tables), ``policy`` (what an observation or a delivery changes),
``precedence`` (which state a record takes when a change is reported), ``downstream`` (at a
hub: what a CERT's reported change does to the hub's record), ``store`` (the :class:`Ledger`
on SQLite or PostgreSQL: every statement on its tables), ``stats``, ``outcome`` and
``chart`` (what became of the findings, from the Ledger's reads).
"""

from intelmq_nsm.digest.ledger.policy import FORWARDED, Observation, cert_org_id, forwarded_to
from intelmq_nsm.digest.ledger.schema import ANSWERS, KINDS, SOURCES, STATES
from intelmq_nsm.digest.ledger.store import BAD_VALUE_ERRORS, Ledger, LedgerUnavailable, sqlite_path, sqlite_url

__all__ = [
    "ANSWERS",
    "BAD_VALUE_ERRORS",
    "FORWARDED",
    "KINDS",
    "SOURCES",
    "STATES",
    "Ledger",
    "LedgerUnavailable",
    "Observation",
    "cert_org_id",
    "forwarded_to",
    "sqlite_path",
    "sqlite_url",
]
