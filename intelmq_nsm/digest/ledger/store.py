"""The ledger on a database: SQLite (default, in the digest spool's file) or PostgreSQL.

Every statement on the ledger's tables (:mod:`.schema`) is a named constant of this module,
and :class:`Ledger` is the one way to run them: the digest output's writes, the readers'
questions (the statistics, a case's outcome, the feedback service, disputes, the
operators' overview, the commands).

Why SQLAlchemy Core (2.x) with psycopg 3: one dialect-neutral layer writes the same
statements for SQLite and PostgreSQL, upserts use each dialect's own ``insert … ON
CONFLICT``, and its connection pool reconnects after a database restart. psycopg 3 is
PostgreSQL's maintained driver.

Differences that matter and how they are met:

- SQLite: transactions start with ``BEGIN IMMEDIATE`` (SQLAlchemy's recipe for pysqlite:
  the driver's own transaction handling off), so a writer holds the write lock from the
  start; connections come from :func:`intelmq_nsm.storage.connect` (WAL mode).
- PostgreSQL: READ COMMITTED; a record is read ``FOR UPDATE`` (ignored by SQLite, where
  the write lock covers it), a new one inserted with ``ON CONFLICT DO NOTHING`` and read
  again if another writer was first. So several outputs on several hosts may share one
  ledger (the same ``name``): each finding changes under a row lock.
- A database that cannot be reached raises :class:`LedgerUnavailable`; the caller keeps
  its message unacknowledged and tries again. Every write is idempotent (by event hash,
  by digest id), so a repeat after a crash or an outage changes nothing twice.

A record changes in the same few steps whoever changes it (an observation, a delivery, an
answer): read it, insert it if new, update it, add the change to its history. The policy
that decides what changes (:mod:`.policy`) is applied in one place per kind of write;
the steps run through one of two executors: :class:`_AlchemySteps` (PostgreSQL) or
:class:`_SQLiteSteps` (SQLite: the same statements compiled to SQLite's text once and run
on the sqlite3 connection itself, see there why).
"""

import contextlib
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from sqlalchemy import CheckConstraint, and_, bindparam, create_engine, event, exc, func, inspect, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from intelmq_nsm import storage
from intelmq_nsm.abuse_kinds import SEEN_BY_FEEDS
from intelmq_nsm.digest.ledger.downstream import downstream_state, on_record
from intelmq_nsm.digest.ledger.policy import (
    QUIET_FROM,
    Observation,
    again,
    delivered,
    first,
    forwarded_again,
    forwarded_first,
    quiet,
)
from intelmq_nsm.digest.ledger.precedence import decide
from intelmq_nsm.digest.ledger.schema import (
    ANSWERS,
    CERT_SOURCE,
    STATES,
    SUPERSEDED_INDEXES,
    ledger_disputes,
    ledger_downstream,
    ledger_findings,
    ledger_history,
    ledger_notifications,
    ledger_outbox,
    ledger_outbox_refused,
    ledger_received,
    metadata,
)

__all__ = ["BAD_VALUE_ERRORS", "Ledger", "LedgerUnavailable", "make_url", "sqlite_path", "sqlite_url"]

HISTORY_COLUMNS = (
    "ledger",
    "finding_id",
    "org_id",
    "at",
    "old_state",
    "state",
    "source",
    "note",
    "reference",
    "requested",
)
#: The advisory lock (any fixed number) under which a ledger's schema is made on PostgreSQL.
SCHEMA_LOCK = 0x6E736D6C  # 'nsml'

F, H, N, D = ledger_findings, ledger_history, ledger_notifications, ledger_disputes
OB, RF, RC, DS = ledger_outbox, ledger_outbox_refused, ledger_received, ledger_downstream


def _key(table):
    """One record's key as bound parameters, named apart from the columns (an UPDATE sets
    those by their own names)."""
    return and_(
        table.c.ledger == bindparam("k_ledger"),
        table.c.finding_id == bindparam("k_finding"),
        table.c.org_id == bindparam("k_org"),
    )


def _mine(table):
    """The rows of this ledger (of the ones its database holds)."""
    return table.c.ledger == bindparam("k_ledger")


def _same_record(a, b):
    return and_(a.c.ledger == b.c.ledger, a.c.finding_id == b.c.finding_id, a.c.org_id == b.c.org_id)


def _of_case():
    return F.c.case_id == bindparam("case_id")


# -- the statements: one record's change -------------------------------------------------

#: A record, locked for the change that follows (``FOR UPDATE``; on SQLite the write lock
#: taken at ``BEGIN IMMEDIATE`` covers it).
READ_RECORD = select(F).where(_key(F)).with_for_update()
UPDATE_RECORD = F.update().where(_key(F))
ADD_CHANGE = H.insert()
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
#: A new finding's record, or a digest's notification of a finding, unless its key exists;
#: per dialect (each has its own ``ON CONFLICT``). ``RETURNING`` says whether it was new,
#: rather than the row count, which drivers report differently for ``DO NOTHING``.
NEW_RECORD = {name: insert(F).on_conflict_do_nothing().returning(F.c.ledger) for name, insert in _INSERT.items()}
NEW_NOTIFICATION = {name: insert(N).on_conflict_do_nothing().returning(N.c.ledger) for name, insert in _INSERT.items()}

# -- the statements: reading -------------------------------------------------------------

#: This ledger's records, filtered and ordered by :meth:`Ledger.records`.
RECORDS = select(F).where(_mine(F))
RECORDS_ORDER = (F.c.first_seen, F.c.finding_id, F.c.org_id)
#: Every organisation's record of one finding.
FINDING_RECORDS = select(F).where(_mine(F), F.c.finding_id == bindparam("finding_id")).order_by(F.c.org_id)
#: One record's changes of state, oldest first, and the digests it was in.
HISTORY = (
    select(H.c.at, H.c.old_state, H.c.state, H.c.source, H.c.note, H.c.reference, H.c.requested)
    .where(_key(H))
    .order_by(H.c.id)
)
DIGESTS = select(N.c.digest_id, N.c.kind, N.c.delivered_at).where(_key(N)).order_by(N.c.delivered_at)
NAMES = select(F.c.ledger).distinct().order_by(F.c.ledger)
COUNT = select(func.count()).select_from(F).where(_mine(F))
_GROUP = (F.c.case_id, F.c.constituency, F.c.org_id, F.c.abuse, F.c.state)
#: The statistics' counts per (case, constituency, organisation, kind of abuse, state): one
#: pass over the covering index ``ledger_findings_tally``, in its order, so the database
#: groups as it reads. Far fewer rows than findings: a case reaches some organisations, not
#: every finding.
STATE_COUNTS = (
    select(*_GROUP, func.count(), func.count(F.c.first_notified), func.max(F.c.org_name))
    .where(_mine(F))
    .group_by(*_GROUP)
)
#: The fixed findings' seconds from the first notification to the verified fix, from the
#: partial index ``ledger_findings_fixed_days``.
FIX_SECONDS = select(F.c.case_id, F.c.constituency, F.c.org_id, F.c.fixed_at - F.c.first_notified).where(
    _mine(F), F.c.state == "fixed-verified", F.c.first_notified.is_not(None), F.c.fixed_at.is_not(None)
)
#: A case's records and their changes of state (oldest first): in this ledger, or in every
#: ledger of the database.
CASE_RECORDS = select(F).where(_mine(F), _of_case())
CASE_RECORDS_EVERY_LEDGER = select(F).where(_of_case())
_CHANGES = select(H.c.ledger, H.c.finding_id, H.c.org_id, H.c.at, H.c.state).join(F, _same_record(F, H))
CASE_CHANGES = _CHANGES.where(_mine(F), _of_case()).order_by(H.c.id)
CASE_CHANGES_EVERY_LEDGER = _CHANGES.where(_of_case()).order_by(H.c.id)
#: The records of an organisation's findings in one delivered digest (what a feedback
#: link covers), with the kind each had in it; and one finding of them.
DELIVERED_IN = (
    select(F, N.c.kind.label("digest_kind"))
    .join(N, _same_record(N, F))
    .where(_mine(F), N.c.digest_id == bindparam("digest_id"), F.c.org_id == bindparam("org_id"))
    .order_by(F.c.case_id, F.c.target, F.c.finding_id)
)
DELIVERED_FINDING = DELIVERED_IN.where(F.c.finding_id == bindparam("finding_id"))
#: The first change recorded under a reference (the ticket system's).
BY_REFERENCE = select(H).where(_mine(H), H.c.reference == bindparam("reference")).order_by(H.c.id).limit(1)
#: The answers (owners', the ticket system's, operators', downstream CERTs') with what they
#: were about: every change but the output's own (source ``scan``).
ANSWERS_GIVEN = (
    select(H, F.c.org_name, F.c.target, F.c.case_id, F.c.abuse)
    .join(F, _same_record(F, H))
    .where(_mine(H), H.c.source != "scan")
)
#: Compromised and misbehaving findings not seen since a cutoff, in a state a quiet period
#: ends (the sweep of :meth:`Ledger.quiet`), locked for the change that follows.
QUIET_RECORDS = (
    select(F)
    .where(
        _mine(F),
        F.c.abuse.in_(SEEN_BY_FEEDS),
        F.c.state.in_(QUIET_FROM),
        F.c.last_seen <= bindparam("cutoff"),
    )
    .order_by(F.c.last_seen, F.c.finding_id, F.c.org_id)
    .limit(bindparam("limit"))
    .with_for_update()
)
#: The last change of a record to a state (a dispute's comment and time).
LAST_CHANGE_TO = (
    select(H.c.note, H.c.at, H.c.source)
    .where(_key(H), H.c.state == bindparam("state"))
    .order_by(H.c.id.desc())
    .limit(1)
)
DECISIONS = select(D).where(_mine(D))
DROP_DECISION = D.delete().where(_key(D))
ADD_DECISION = D.insert()
#: When the findings in some states were first seen and first notified, per organisation.
FIRST_TIMES = select(F.c.org_id, F.c.org_name, F.c.constituency, F.c.first_seen, F.c.first_notified).where(
    _mine(F), F.c.state.in_(bindparam("states", expanding=True))
)
CASE_IDS = select(F.c.case_id).where(_mine(F), F.c.case_id != "").group_by(F.c.case_id).order_by(F.c.case_id)
_OWNERS_LAST_ANSWER = (
    select(H.c.org_id, func.max(H.c.at).label("answered"))
    .where(_mine(H), H.c.source == "owner")
    .group_by(H.c.org_id)
    .subquery()
)
#: Per organisation: its findings first notified at a cutoff or before that no answer of
#: the owner's followed (the name, how many, the first notification, the last answer).
SILENT = (
    select(
        F.c.org_id,
        func.max(F.c.org_name),
        func.count(),
        func.min(F.c.first_notified),
        func.max(_OWNERS_LAST_ANSWER.c.answered),
    )
    .select_from(F.outerjoin(_OWNERS_LAST_ANSWER, _OWNERS_LAST_ANSWER.c.org_id == F.c.org_id))
    .where(
        _mine(F),
        F.c.first_notified <= bindparam("cutoff"),
        or_(_OWNERS_LAST_ANSWER.c.answered.is_(None), F.c.first_notified > _OWNERS_LAST_ANSWER.c.answered),
    )
    .group_by(F.c.org_id)
)

# -- the statements: a CERT's outbox to its hub ------------------------------------------


def _outbox_key(table):
    return and_(table.c.ledger == bindparam("k_ledger"), table.c.upstream == bindparam("k_upstream"))


#: How far the history went to an upstream, and the key of its opaque organisation ids.
OUTBOX = select(OB.c.sent_to, OB.c.org_key).where(_outbox_key(OB))
NEW_OUTBOX = {name: insert(OB).on_conflict_do_nothing() for name, insert in _INSERT.items()}
#: The cursor only ever moves forward.
MOVE_OUTBOX = (
    OB.update()
    .where(_outbox_key(OB), OB.c.sent_to < bindparam("to"))
    .values(sent_to=bindparam("to"), updated_at=bindparam("now"))
)
#: The newest history id: everything up to it is committed when it is read (SQLite has one
#: writer at a time; on PostgreSQL it is read under HOLD_HISTORY, which waits for the
#: transactions writing history, so that no smaller id can still come).
HISTORY_HIGH_WATER = select(func.coalesce(func.max(H.c.id), 0))
HOLD_HISTORY = "LOCK TABLE ledger_history IN SHARE MODE"
#: The history of the findings a hub forwarded, after one history id and up to another,
#: oldest first, with what the change must carry. ``ledger || ''`` keeps SQLite from
#: walking the index that starts with the ledger rather than the ids' range.
OUTGOING = (
    select(
        H.c.id,
        H.c.finding_id,
        H.c.org_id,
        H.c.at,
        H.c.old_state,
        H.c.state,
        H.c.source,
        H.c.note,
        F.c.org_name,
        F.c.upstream_finding_id,
        F.c.upstream_instance,
    )
    .join(F, _same_record(F, H))
    .where(
        H.c.ledger.concat("") == bindparam("k_ledger"),
        H.c.id > bindparam("after"),
        H.c.id <= bindparam("upto"),
        F.c.upstream_finding_id != "",
    )
    .order_by(H.c.id)
    .limit(bindparam("limit"))
)
OUTGOING_TO = OUTGOING.where(F.c.upstream_instance == bindparam("instance"))
#: The outboxes of this ledger, and how much of the history after a cursor is for a hub.
OUTBOXES = select(OB).where(_mine(OB)).order_by(OB.c.upstream)
WAITING = (
    select(func.count())
    .select_from(H.join(F, _same_record(F, H)))
    .where(H.c.ledger.concat("") == bindparam("k_ledger"), H.c.id > bindparam("after"), F.c.upstream_finding_id != "")
)
WAITING_FOR = WAITING.where(F.c.upstream_instance == bindparam("instance"))
NEW_REFUSED = {name: insert(RF).on_conflict_do_nothing() for name, insert in _INSERT.items()}
REFUSED = select(RF).where(_mine(RF)).order_by(RF.c.at, RF.c.history_id)
REFUSED_EVERY_LEDGER = select(RF).order_by(RF.c.at, RF.c.ledger, RF.c.history_id)

# -- the statements: a hub's changes from its CERTs --------------------------------------

#: A CERT's change by its id, unless it was applied before (then RETURNING gives nothing).
NEW_RECEIVED = {name: insert(RC).on_conflict_do_nothing().returning(RC.c.ledger) for name, insert in _INSERT.items()}
#: What the CERT said of one of its organisations, locked for the change that follows.
READ_DOWNSTREAM = select(DS.c.state).where(_key(DS), DS.c.downstream_id == bindparam("downstream_id")).with_for_update()


def _put_downstream(insert):
    statement = insert(DS)
    changed = {c: statement.excluded[c] for c in ("name", "state", "at", "instance")}
    return statement.on_conflict_do_update(index_elements=list(DS.primary_key.columns), set_=changed)


PUT_DOWNSTREAM = {name: _put_downstream(insert) for name, insert in _INSERT.items()}
_DOWNSTREAM = select(
    DS.c.ledger, DS.c.finding_id, DS.c.org_id, DS.c.downstream_id, DS.c.name, DS.c.state, DS.c.at, DS.c.instance
).join(F, _same_record(F, DS))
CASE_DOWNSTREAM = _DOWNSTREAM.where(_mine(F), _of_case())
CASE_DOWNSTREAM_EVERY_LEDGER = _DOWNSTREAM.where(_of_case())
#: Per CERT: the changes applied from it and the last one's time.
RECEIVED_PER_SOURCE = (
    select(RC.c.source, func.count(), func.max(RC.c.applied_at)).where(_mine(RC)).group_by(RC.c.source)
)

# -- the statements: the schema and the database -----------------------------------------

TAKE_SCHEMA_LOCK = f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"
ADD_MATCHES_COLUMN = "ALTER TABLE ledger_findings ADD COLUMN matches TEXT NOT NULL DEFAULT ''"
#: Columns added after ledgers were made, each with its default for the rows there are
#: (a finding recorded before kinds of abuse existed was a vulnerable system).
ADD_COLUMNS = {
    ("ledger_findings", "matches"): ADD_MATCHES_COLUMN,
    ("ledger_findings", "abuse"): (
        "ALTER TABLE ledger_findings ADD COLUMN abuse VARCHAR(20) NOT NULL DEFAULT 'vulnerable'"
    ),
    ("ledger_findings", "last_report"): "ALTER TABLE ledger_findings ADD COLUMN last_report TEXT NOT NULL DEFAULT ''",
    ("ledger_findings", "reporter"): "ALTER TABLE ledger_findings ADD COLUMN reporter TEXT NOT NULL DEFAULT ''",
    ("ledger_findings", "upstream_finding_id"): (
        "ALTER TABLE ledger_findings ADD COLUMN upstream_finding_id VARCHAR(200) NOT NULL DEFAULT ''"
    ),
    ("ledger_findings", "upstream_instance"): (
        "ALTER TABLE ledger_findings ADD COLUMN upstream_instance VARCHAR(200) NOT NULL DEFAULT ''"
    ),
    ("ledger_history", "requested"): "ALTER TABLE ledger_history ADD COLUMN requested VARCHAR(20) NOT NULL DEFAULT ''",
}
# Widening a check constraint of a ledger made before a value was added (a state, a source,
# a digest's kind). SQLite cannot alter a constraint: its table's text in the schema is
# rewritten, the documented way for a change that loosens what rows may hold and leaves
# the stored rows as they are (sqlite.org/lang_altertable.html, "making other kinds of
# table schema changes"), in the schema's transaction with its version counted up.
TABLE_TEXT = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?"
SCHEMA_VERSION = "PRAGMA schema_version"
SET_SCHEMA_VERSION = "PRAGMA schema_version = {:d}"
WRITABLE_SCHEMA = "PRAGMA writable_schema = {}"
SET_TABLE_TEXT = "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?"
# PostgreSQL alters it in place (and the wider column of a CERT's source).
CONSTRAINT_TEXT = (
    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
    " WHERE c.conname = %(name)s AND t.relname = %(table)s"
)
REPLACE_CONSTRAINT = "ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK ({text})"
WIDEN_SOURCE = "ALTER TABLE ledger_history ALTER COLUMN source TYPE VARCHAR(200)"
DROP_INDEX = "DROP INDEX IF EXISTS {}"
TABLES_ON_DISK = (
    "SELECT pg_total_relation_size('ledger_findings') + pg_total_relation_size('ledger_history')"
    " + pg_total_relation_size('ledger_notifications')"
)


def _checks():
    """``(table, constraint name, its text)`` of the check constraints of the ledger's tables."""
    for table in (F, H, N):
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint):
                yield table.name, constraint.name, str(constraint.sqltext)


def _covers(current: str, wanted: str) -> bool:
    """Whether a constraint's text in the database names every value of ``wanted``'s."""
    return all(value in current for value in re.findall(r"'[^']*'", wanted))


def _widen_checks(conn) -> None:
    """Widen the check constraints of a ledger made before a value was added to them."""
    if conn.dialect.name == "postgresql":
        for table, name, text in _checks():
            current = conn.exec_driver_sql(CONSTRAINT_TEXT, {"name": name, "table": table}).scalar()
            if current is not None and not _covers(current, text):
                # psycopg reads % as a placeholder even without parameters (LIKE 'cert:%').
                conn.exec_driver_sql(REPLACE_CONSTRAINT.format(table=table, name=name, text=text.replace("%", "%%")))
        source = next(c for c in inspect(conn).get_columns(H.name) if c["name"] == "source")
        if (getattr(source["type"], "length", None) or 64) < H.c.source.type.length:
            conn.exec_driver_sql(WIDEN_SOURCE)
        return
    rewritten = {}
    for table, name, text in _checks():
        current = rewritten.get(table) or conn.exec_driver_sql(TABLE_TEXT, (table,)).scalar() or ""
        found = re.search(rf"CONSTRAINT {name} CHECK \((?:[^()]|\([^()]*\))*\)", current)
        if found and not _covers(found.group(0), text):
            rewritten[table] = current.replace(found.group(0), f"CONSTRAINT {name} CHECK ({text})")
    if not rewritten:
        return
    version = conn.exec_driver_sql(SCHEMA_VERSION).scalar()
    conn.exec_driver_sql(WRITABLE_SCHEMA.format("ON"))
    try:
        for table, text in rewritten.items():
            conn.exec_driver_sql(SET_TABLE_TEXT, (text, table))
        conn.exec_driver_sql(SET_SCHEMA_VERSION.format(version + 1))
    finally:
        conn.exec_driver_sql(WRITABLE_SCHEMA.format("OFF"))


class LedgerUnavailable(Exception):
    """The ledger's database cannot be reached (or is locked) now; try again later."""


#: What the ledger raises for a value it cannot store (its data, not the database's state):
#: sqlite3 refusing to bind it, PostgreSQL (through SQLAlchemy) refusing it.
BAD_VALUE_ERRORS = (sqlite3.InterfaceError, sqlite3.ProgrammingError, exc.StatementError)


def sqlite_url(path) -> str:
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Optional[str]:
    """The file of a ``sqlite:///`` URL; None for another database."""
    parsed = make_url(url)
    return parsed.database if parsed.get_backend_name() == "sqlite" else None


def make_engine(url: str, synchronous: str = "NORMAL", autocheckpoint: Optional[int] = None):
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database

        def connect():
            db = storage.connect(path, synchronous=synchronous, check_same_thread=False, autocheckpoint=autocheckpoint)
            db.row_factory = None
            return db

        engine = create_engine(url, creator=connect)

        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"The ledger runs on sqlite or postgresql, not {parsed.get_backend_name()!r}.")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})


class _Reachable:
    """Makes LedgerUnavailable of a database that cannot be reached (or is locked). A class
    rather than a generator: it is on the path of every event."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is not None and issubclass(kind, (exc.OperationalError, exc.InterfaceError, sqlite3.OperationalError)):
            raise LedgerUnavailable(str(error).splitlines()[0]) from error
        return False


# -- the two executors of a record's change ----------------------------------------------


class _AlchemySteps:
    """A record's change through SQLAlchemy, on a connection in a transaction."""

    def __init__(self, conn):
        self.conn = conn
        self.dialect = conn.dialect.name
        self._new = {F: NEW_RECORD[conn.dialect.name], N: NEW_NOTIFICATION[conn.dialect.name]}

    def record(self, key: dict):
        """The record (a mapping) under ``key``, locked; None if there is none."""
        return self.conn.execute(READ_RECORD, key).mappings().first()

    def added(self, table, row: dict) -> bool:
        """Insert ``row`` into ``table`` (findings or notifications) unless its key exists;
        True if it was new."""
        return self.conn.execute(self._new[table], row).first() is not None

    def update(self, values: dict, key: dict) -> None:
        self.conn.execute(UPDATE_RECORD, {**values, **key})

    def change(self, row: dict) -> None:
        self.conn.execute(ADD_CHANGE, row)

    def run(self, statement, params: dict) -> None:
        """Another of this module's statements, for its effect."""
        self.conn.execute(statement, params)

    def first(self, statement, params: dict):
        """Another of this module's statements: its first row (None without one)."""
        return self.conn.execute(statement, params).first()


class _SQLiteText:
    """The statements of a record's change compiled once to SQLite's text (named parameters),
    per set of columns a write names."""

    def __init__(self):
        self._dialect = sqlite.dialect(paramstyle="named")
        self.read = self._compile(READ_RECORD)
        self.columns = [c.name for c in F.c]
        self.change = self._compile(ADD_CHANGE, HISTORY_COLUMNS)
        self._new = {F: NEW_RECORD["sqlite"], N: NEW_NOTIFICATION["sqlite"]}
        self._compiled = {}

    def _compile(self, statement, keys=None) -> str:
        return str(statement.compile(dialect=self._dialect, column_keys=None if keys is None else list(keys)))

    def new(self, table, keys) -> str:
        key = (table.name, tuple(keys))
        if key not in self._compiled:
            self._compiled[key] = self._compile(self._new[table], key[1])
        return self._compiled[key]

    def update(self, keys) -> str:
        key = ("update", tuple(keys))
        if key not in self._compiled:
            self._compiled[key] = self._compile(UPDATE_RECORD, key[1])
        return self._compiled[key]

    def of(self, statement, keys) -> str:
        """Another statement of this module (an insert naming the columns ``keys``)."""
        key = (id(statement), tuple(keys))
        if key not in self._compiled:
            self._compiled[key] = self._compile(statement, key[1] if statement.is_insert else None)
        return self._compiled[key]


class _SQLiteSteps:
    """A record's change on a sqlite3 connection in a transaction, with :class:`_SQLiteText`.

    Why not SQLAlchemy here: an event's ledger work is a few primary-key statements, and on
    SQLite each costs the database 10-20 µs while SQLAlchemy's execution around it (cache
    lookup, parameter processing, result set-up, events) costs about as much again, twice
    for the transaction's begin and commit; that made the ledger dearer than the spool it
    rides with. The statements are still the ones above, compiled by SQLAlchemy's SQLite
    dialect."""

    dialect = "sqlite"

    def __init__(self, db: sqlite3.Connection, text: _SQLiteText):
        self.db, self.text = db, text

    def record(self, key: dict) -> Optional[dict]:
        row = self.db.execute(self.text.read, key).fetchone()
        return None if row is None else dict(zip(self.text.columns, row))

    def added(self, table, row: dict) -> bool:
        return self.db.execute(self.text.new(table, row), row).fetchone() is not None

    def update(self, values: dict, key: dict) -> None:
        self.db.execute(self.text.update(values), {**values, **key})

    def change(self, row: dict) -> None:
        self.db.execute(self.text.change, row)

    def run(self, statement, params: dict) -> None:
        self.db.execute(self.text.of(statement, params), params)

    def first(self, statement, params: dict):
        return self.db.execute(self.text.of(statement, params), params).fetchone()


class Ledger:
    """The life of every finding per organisation, in the ledger ``name`` of one database."""

    def __init__(
        self,
        url: str,
        name: str = "default",
        reminder_after: float = 604800,
        report_fixed: bool = True,
        quiet_after: float = 1209600,
        synchronous: str = "NORMAL",
        autocheckpoint: Optional[int] = None,
    ):
        self.url, self.name = url, name
        self.reminder_after, self.report_fixed = float(reminder_after), bool(report_fixed)
        #: Seconds without a feed's report after which a compromised or misbehaving finding
        #: is no longer seen (0: never).
        self.quiet_after = float(quiet_after)
        self.engine = make_engine(url, synchronous=synchronous, autocheckpoint=autocheckpoint)
        self._shares = {}
        self._sqlite = _SQLiteText() if self.engine.dialect.name == "sqlite" else None
        with _Reachable():
            self._create_schema()

    def _create_schema(self) -> None:
        """Make what is missing of the schema, in one transaction. On PostgreSQL several
        outputs (or hosts) may open one ledger at the same moment, and two concurrent
        ``CREATE TABLE IF NOT EXISTS`` (or ``CREATE INDEX``) of one name fail in
        PostgreSQL's catalogue: a transaction-level advisory lock lets one make the schema
        while the others wait."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(TAKE_SCHEMA_LOCK)
            metadata.create_all(conn)
            # Columns added after a ledger was made (create_all makes only missing tables):
            # added with their default, so older ledgers go on working.
            inspector = inspect(conn)
            present = {table: {c["name"] for c in inspector.get_columns(table)} for table in (F.name, H.name)}
            for (table, column), statement in ADD_COLUMNS.items():
                if column not in present[table]:
                    conn.exec_driver_sql(statement)
            _widen_checks(conn)
            # A ledger made by an earlier version: its tables exist, so create_all leaves
            # them alone; the statistics' present indexes are made here, the old dropped.
            for index in (*F.indexes, *H.indexes):
                index.create(conn, checkfirst=True)
            for index in SUPERSEDED_INDEXES:
                conn.exec_driver_sql(DROP_INDEX.format(index))

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def in_file(path) -> bool:
        """Whether the SQLite file ``path`` holds a ledger (without making one in it)."""
        if not Path(path).exists():
            return False
        engine = create_engine(sqlite_url(path))
        try:
            with _Reachable():
                return inspect(engine).has_table(H.name)
        finally:
            engine.dispose()

    def shares_file(self, path) -> bool:
        """True when this ledger is the SQLite file ``path`` (the spool's): then one
        transaction can hold both (see :func:`intelmq_nsm.digest.notify.accept`)."""
        if path not in self._shares:  # asked once per event: resolve each path once
            database = self.engine.url.database
            same = self.engine.dialect.name == "sqlite" and bool(database)
            self._shares[path] = same and Path(database).resolve() == Path(path).resolve()
        return self._shares[path]

    @contextlib.contextmanager
    def sqlite_transaction(self, db: Optional[sqlite3.Connection] = None):
        """SQLite only: ``BEGIN IMMEDIATE`` … ``COMMIT`` on the sqlite3 connection ``db`` (one
        to this ledger's file, such as the spool's), else on one of the ledger's own; for
        :meth:`observe`. A locked database raises LedgerUnavailable."""
        if db is not None:
            with _Reachable(), storage.transaction(db):
                yield db
            return
        with _Reachable(), contextlib.closing(self.engine.raw_connection()) as pooled:
            with storage.transaction(pooled.driver_connection) as db:
                yield db

    @contextlib.contextmanager
    def _transaction(self):
        """A SQLAlchemy connection in a transaction, committed at the end of the block; an
        unreachable (or locked) database raises LedgerUnavailable, also from inside the block."""
        with _Reachable(), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _steps(self):
        """The executor of a write's steps in a transaction of its own, committed at the end:
        on SQLite on the sqlite3 connection itself, on PostgreSQL through SQLAlchemy."""
        if self._sqlite is not None:
            with self.sqlite_transaction() as db:
                yield _SQLiteSteps(db, self._sqlite)
        else:
            with self._transaction() as conn:
                yield _AlchemySteps(conn)

    def _steps_on(self, conn):
        """The executor of a write's steps in ``conn``'s transaction: a sqlite3 connection in
        :meth:`sqlite_transaction`, or a SQLAlchemy one."""
        return _SQLiteSteps(conn, self._sqlite) if isinstance(conn, sqlite3.Connection) else _AlchemySteps(conn)

    def _bind(self, finding_id: str, org_id: str) -> dict:
        return {"k_ledger": self.name, "k_finding": finding_id, "k_org": org_id}

    def _change(self, finding_id, org_id, change, now, source="scan", reference="", requested="") -> dict:
        """The history row of ``change`` (old state, new state, note); ``requested``: what the
        source asked for when the state stayed."""
        old, new, note = change
        return {
            "requested": requested,
            "ledger": self.name,
            "finding_id": finding_id,
            "org_id": org_id,
            "at": now,
            "old_state": old,
            "state": new,
            "source": source,
            "note": note,
            "reference": reference,
        }

    # -- the digest output ---------------------------------------------------------------

    def observe(self, observations: Iterable[Observation], now: Optional[float] = None, conn=None) -> list:
        """Record one event's findings in one transaction (``conn``'s, if given: on SQLite a
        sqlite3 connection in :meth:`sqlite_transaction`); return per observation the record
        after it (a dict with ``kind``: what to put into a digest now, or None)."""
        now = time.time() if now is None else now
        if conn is None:
            with self._steps() as steps:
                return self._observe(steps, observations, now)
        with _Reachable():
            return self._observe(self._steps_on(conn), observations, now)

    def record_forwarded(self, observations: Iterable[Observation], now: Optional[float] = None) -> list:
        """A hub forwarded one event's findings to a sectoral CERT's instance (each
        observation's organisation is ``cert:<key>``): recorded ``forwarded`` when new,
        counted as seen when known, in one transaction; per observation the record after it."""
        now = time.time() if now is None else now
        with self._steps() as steps:
            return self._observe(steps, observations, now, forwarded_first, forwarded_again)

    def _observe(self, steps, observations: Iterable[Observation], now: float, new=first, known=None) -> list:
        """The loop of an observation's write: ``new(observation, now)`` for a finding the
        ledger has no record of, ``known(record, observation, now)`` for one it has (by
        default the notification policy's :func:`again`)."""
        if known is None:
            known = self._again
        results = []
        for o in observations:
            # A new finding first: one statement where it is new; where it is known, the
            # conflict leaves it alone and it is read (locked) and changed.
            key = self._bind(o.finding_id, o.org_id)
            step = new(o, now)
            row = {"ledger": self.name, "finding_id": o.finding_id, "org_id": o.org_id, **step.values}
            if steps.added(F, row):
                steps.change(self._change(o.finding_id, o.org_id, step.change, now))
                results.append({**row, "kind": step.kind})
                continue
            record = steps.record(key)
            step = known(record, o, now)
            if step.values:
                steps.update(step.values, key)
            if step.change:
                steps.change(self._change(o.finding_id, o.org_id, step.change, now))
            results.append({**record, **step.values, "kind": step.kind})
        return results

    def _again(self, record, observation: Observation, now: float):
        return again(record, observation, now, self.reminder_after, self.report_fixed)

    def record_delivery(self, digest_id: str, entries: Iterable[tuple], now: Optional[float] = None) -> int:
        """The digest ``digest_id`` holding ``(finding id, org id, kind)`` entries was delivered.
        Idempotent: a digest recorded before changes nothing. Returns how many entries were new."""
        now = time.time() if now is None else now
        count = 0
        with self._steps() as steps:
            for finding_id, org_id, kind in entries:
                key = self._bind(finding_id, org_id)
                record = steps.record(key)
                if record is None:
                    continue  # a spool older than its ledger: nothing to count against
                row = {
                    "ledger": self.name,
                    "digest_id": digest_id,
                    "finding_id": finding_id,
                    "org_id": org_id,
                    "kind": kind,
                    "delivered_at": now,
                }
                if not steps.added(N, row):
                    continue
                count += 1
                step = delivered(record, kind, digest_id, now)
                if step.values:
                    steps.update(step.values, key)
                if step.change:
                    steps.change(self._change(finding_id, org_id, step.change, now, reference=digest_id))
        return count

    # -- owners and operators ------------------------------------------------------------

    def record_answer(
        self,
        finding_id: str,
        org_id: str,
        state: str,
        source: str = "owner",
        note: str = "",
        reference: str = "",
        now: Optional[float] = None,
    ) -> Optional[str]:
        """An owner's, the ticket system's or an operator's answer about a finding:
        ``fixed-reported``, ``disputed``, ``accepted-risk``, ``false-positive``, or ``open``
        (taking an answer back). What it changes is :func:`.precedence.decide`'s: an answer
        after a verified fix is kept in the history only. A later rescan still decides
        (fixed-reported, then seen vulnerable: reopened). Returns the previous state, or None
        when the ledger has no such finding for that organisation."""
        if state not in ANSWERS:
            raise ValueError(f"An answer sets one of {', '.join(ANSWERS)}, not {state!r}.")
        recorded = self.record_change(finding_id, org_id, state, source, note, reference, now)
        return None if recorded is None else recorded[0]

    def record_change(
        self,
        finding_id: str,
        org_id: str,
        state: str,
        source: str,
        note: str = "",
        reference: str = "",
        now: Optional[float] = None,
    ) -> Optional[tuple]:
        """A change of a finding's state asked for by ``source`` (``owner``, ``ticket``,
        ``operator``, ``cert:<key>`` or ``cert:<key>/<origin>``: see :mod:`.precedence`),
        applied as :func:`.precedence.decide` says, in one transaction with the record
        locked. Returns ``(previous state, Decision)``, or None when the ledger has no such
        finding for that organisation. Raises ValueError for an unknown state or source."""
        decide(None, state, source)  # an unknown state or source fails before the database is asked
        now = time.time() if now is None else now
        with self._steps() as steps:
            key = self._bind(finding_id, org_id)
            record = steps.record(key)
            if record is None:
                return None
            old = record["state"]
            decision = decide(old, state, source)
            if decision.changes:
                steps.update({"state": decision.state}, key)
            if decision.recorded:
                requested = "" if decision.changes else state
                change = (old, decision.state, note)
                steps.change(self._change(finding_id, org_id, change, now, source, reference, requested))
            return old, decision

    def quiet(self, now: Optional[float] = None, quiet_after: Optional[float] = None, limit: int = 1000) -> list:
        """Compromised and misbehaving findings the feeds stopped reporting ``quiet_after``
        seconds (default: the ledger's) before ``now`` become ``no-longer-seen``, at most
        ``limit`` per call; returns their records after the change."""
        now = time.time() if now is None else now
        quiet_after = self.quiet_after if quiet_after is None else float(quiet_after)
        if quiet_after <= 0:
            return []
        changed = []
        params = {"k_ledger": self.name, "cutoff": now - quiet_after, "limit": limit}
        # Through SQLAlchemy on either database: a sweep an hour is off every event's path.
        with self._transaction() as conn:
            steps = _AlchemySteps(conn)
            for record in conn.execute(QUIET_RECORDS, params).mappings().all():
                step = quiet(record, now, quiet_after)
                if step is None:
                    continue
                key = self._bind(record["finding_id"], record["org_id"])
                steps.update(step.values, key)
                steps.change(self._change(record["finding_id"], record["org_id"], step.change, now))
                changed.append({**record, **step.values})
        return changed

    def record_decision(
        self, finding_id: str, org_id: str, decision: str, at: float, note: str = "", correction: str = ""
    ) -> None:
        """The operator's decision on a finding's dispute (``accepted`` or ``rejected``),
        replacing an earlier one."""
        row = {"ledger": self.name, "finding_id": finding_id, "org_id": org_id, "decision": decision, "at": at}
        with self._transaction() as conn:
            conn.execute(DROP_DECISION, self._bind(finding_id, org_id))
            conn.execute(ADD_DECISION, {**row, "note": note, "correction": correction})

    # -- a CERT's outbox to its hub -------------------------------------------------------

    def outbox(self, upstream: str) -> tuple:
        """``(sent_to, org_key)`` of the outbox to ``upstream``: the history id up to which it
        went, and the key of its opaque organisation ids (made, at random, the first time)."""
        params = {"k_ledger": self.name, "k_upstream": upstream}
        with self._transaction() as conn:
            row = conn.execute(OUTBOX, params).first()
            if row is None:
                new = {"ledger": self.name, "upstream": upstream, "sent_to": 0, "updated_at": time.time()}
                conn.execute(NEW_OUTBOX[conn.dialect.name], {**new, "org_key": secrets.token_hex(32)})
                row = conn.execute(OUTBOX, params).first()
            return row[0], row[1]

    def outgoing(self, after: int, limit: int, instance: Optional[str] = None) -> tuple:
        """``(rows, upto)``: the history of the findings a hub forwarded (of the hub named
        ``instance``, or any) with ids after ``after`` and up to ``upto``, the newest id
        committed when asked, oldest first, at most ``limit``; each row with the record's
        ``org_name``, ``upstream_finding_id`` and ``upstream_instance``. Fewer rows than
        ``limit``: none else up to ``upto`` is for a hub."""
        with _Reachable(), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                with conn.begin():
                    conn.exec_driver_sql(HOLD_HISTORY)
                    upto = conn.execute(HISTORY_HIGH_WATER).scalar_one()
            else:
                upto = conn.execute(HISTORY_HIGH_WATER).scalar_one()
            params = {"k_ledger": self.name, "after": after, "upto": upto, "limit": limit, "instance": instance}
            query = OUTGOING if instance is None else OUTGOING_TO
            return [dict(r) for r in conn.execute(query, params).mappings()], upto

    def outbox_sent(self, upstream: str, to: int, refused=(), now: Optional[float] = None) -> None:
        """The upstream answered for the history up to ``to``: the cursor moves there (never
        back), and the changes it refused for good (rows of ``ledger_outbox_refused``'s
        columns but the ledger, upstream and time) are kept, in one transaction."""
        now = time.time() if now is None else now
        with self._transaction() as conn:
            insert = NEW_REFUSED[conn.dialect.name]
            for row in refused:
                conn.execute(insert, {**row, "ledger": self.name, "upstream": upstream, "at": now})
            conn.execute(MOVE_OUTBOX, {"k_ledger": self.name, "k_upstream": upstream, "to": to, "now": now})

    def outboxes(self) -> list:
        """This ledger's outboxes: ``upstream``, ``sent_to``, ``updated_at`` and ``waiting`` (the
        changes after the cursor for that hub: an outbox named by a hub's instance sends its
        findings only, one named by a URL every hub's)."""
        result = []
        with _Reachable(), self.engine.connect() as conn:
            for row in conn.execute(OUTBOXES, {"k_ledger": self.name}).mappings():
                hub = None if "://" in row["upstream"] else row["upstream"]
                params = {"k_ledger": self.name, "after": row["sent_to"], "instance": hub}
                waiting = conn.execute(WAITING if hub is None else WAITING_FOR, params).scalar_one()
                result.append({k: row[k] for k in ("upstream", "sent_to", "updated_at")} | {"waiting": waiting})
        return result

    def refused_outgoing(self, every_ledger: bool = False) -> list:
        """The changes an upstream refused for good, oldest first (with ``every_ledger``: of
        every ledger this database holds)."""
        return self._read(REFUSED_EVERY_LEDGER if every_ledger else REFUSED)

    # -- a hub's changes from its CERTs --------------------------------------------------

    def apply_reported(self, source: str, instance: str, changes, now: Optional[float] = None) -> list:
        """Apply what the CERT ``source`` (``cert:<key>``, also the org id of the hub's
        records of the findings forwarded to it) reported: :class:`.downstream.Reported`
        changes, in one transaction. Per change ``applied``, ``duplicate`` (its change id
        was applied before) or ``not_forwarded`` (the hub has no record of that finding
        forwarded to that CERT: nothing changes)."""
        if not source.startswith(CERT_SOURCE):
            raise ValueError(f"A CERT's changes have the source {CERT_SOURCE}<key>, not {source!r}.")
        now = time.time() if now is None else now
        results = []
        with self._steps() as steps:
            received, put = NEW_RECEIVED[steps.dialect], PUT_DOWNSTREAM[steps.dialect]
            for change in changes:
                key = self._bind(change.finding_id, source)
                record = steps.record(key)
                if record is None:
                    results.append("not_forwarded")
                    continue
                row = {"ledger": self.name, "source": source, "change_id": change.change_id, "applied_at": now}
                if steps.first(received, {**row, "finding_id": change.finding_id, "state": change.state}) is None:
                    results.append("duplicate")
                    continue
                step = on_record(record, change, source, instance)
                if step.values:
                    steps.update(step.values, key)
                steps.change(self._change(change.finding_id, source, step.change, change.at, source, change.change_id))
                before = steps.first(READ_DOWNSTREAM, {**key, "downstream_id": change.downstream_id})
                state = downstream_state(before[0] if before else None, change, source)
                org = {"ledger": self.name, "finding_id": change.finding_id, "org_id": source}
                org.update(downstream_id=change.downstream_id, name=change.name, state=state, at=change.at)
                steps.run(put, {**org, "instance": instance})
                results.append("applied")
        return results

    def case_downstream(self, case_id: str, every_ledger: bool = False) -> list:
        """What CERTs reported per organisation of theirs for the case's findings forwarded to
        them: ``(ledger, finding_id, org_id, downstream_id, name, state, at, instance)`` dicts."""
        query = CASE_DOWNSTREAM_EVERY_LEDGER if every_ledger else CASE_DOWNSTREAM
        return self._read(query, case_id=case_id)

    def received(self) -> list:
        """Per CERT (``source``): how many changes were applied from it, the last one when."""
        with _Reachable(), self.engine.connect() as conn:
            rows = conn.execute(RECEIVED_PER_SOURCE, {"k_ledger": self.name})
            return [{"source": r[0], "changes": r[1], "last_at": r[2]} for r in sorted(rows)]

    # -- reading -------------------------------------------------------------------------

    def _read(self, statement, **params) -> list:
        """The rows of ``statement`` (as dicts) in this ledger."""
        with _Reachable(), self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(statement, {"k_ledger": self.name, **params}).mappings()]

    def records(
        self,
        state: Optional[str] = None,
        org_id: Optional[str] = None,
        case_id: Optional[str] = None,
        older_than: Optional[float] = None,
        now: Optional[float] = None,
        limit: Optional[int] = None,
    ) -> list:
        """Records of this ledger, oldest first; ``older_than``: first seen at least that many
        seconds before ``now``."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}.")
        query = RECORDS
        if state:
            query = query.where(F.c.state == state)
        if org_id:
            query = query.where(F.c.org_id == org_id)
        if case_id:
            query = query.where(F.c.case_id == case_id)
        if older_than is not None:
            now = time.time() if now is None else now
            query = query.where(F.c.first_seen <= now - older_than)
        query = query.order_by(*RECORDS_ORDER)
        if limit:
            query = query.limit(limit)
        return self._read(query)

    def _history(self, conn, finding_id: str, org_id: str) -> list:
        return [dict(r) for r in conn.execute(HISTORY, self._bind(finding_id, org_id)).mappings()]

    def history_of(self, finding_id: str) -> list:
        """Every organisation's record of ``finding_id`` with its history and digests."""
        with _Reachable(), self.engine.connect() as conn:
            result = []
            for record in conn.execute(FINDING_RECORDS, {"k_ledger": self.name, "finding_id": finding_id}).mappings():
                record = dict(record)
                record["history"] = self._history(conn, finding_id, record["org_id"])
                key = self._bind(finding_id, record["org_id"])
                record["digests"] = [dict(r) for r in conn.execute(DIGESTS, key).mappings()]
                result.append(record)
            return result

    def names(self) -> list:
        """The ledger names this database holds."""
        with _Reachable(), self.engine.connect() as conn:
            return list(conn.execute(NAMES).scalars())

    def count(self) -> int:
        with _Reachable(), self.engine.connect() as conn:
            return conn.execute(COUNT, {"k_ledger": self.name}).scalar_one()

    def statistics_rows(self) -> tuple:
        """``(counts, fixes)`` for :func:`intelmq_nsm.digest.ledger.stats.stats`: the counts per
        (case, constituency, organisation, kind of abuse, state) as ``(case, constituency, org,
        kind, state, findings, notified, org name)``, and per verified fix after a notification ``(case,
        constituency, org, seconds from the first notification to the fix)``; plain tuples."""
        with _Reachable(), self.engine.connect() as conn:
            mine = {"k_ledger": self.name}
            counts = [tuple(r) for r in conn.execute(STATE_COUNTS, mine)]
            return counts, [tuple(r) for r in conn.execute(FIX_SECONDS, mine)]

    def case_records(self, case_id: str, every_ledger: bool = False) -> tuple:
        """``(records, changes)`` of the case in this ledger (with ``every_ledger``: in every
        ledger its database holds); changes ``(ledger, finding_id, org_id, at, state)``,
        oldest first."""
        records_query, changes_query = (
            (CASE_RECORDS_EVERY_LEDGER, CASE_CHANGES_EVERY_LEDGER) if every_ledger else (CASE_RECORDS, CASE_CHANGES)
        )
        params = {"k_ledger": self.name, "case_id": case_id}
        with _Reachable(), self.engine.connect() as conn:
            records = [dict(r) for r in conn.execute(records_query, params).mappings()]
            changes = [dict(r) for r in conn.execute(changes_query, params).mappings()] if records else []
        return records, changes

    def delivered_in(self, digest_id: str, org_id: str, finding_id: Optional[str] = None) -> list:
        """The records of ``org_id``'s findings the ledger counted as delivered in the digest
        ``digest_id`` (only ``finding_id``, if given), each with ``digest_kind`` (what it was
        in that digest) and its ``history`` (oldest first)."""
        params = {"k_ledger": self.name, "digest_id": digest_id, "org_id": org_id, "finding_id": finding_id}
        query = DELIVERED_IN if finding_id is None else DELIVERED_FINDING
        with _Reachable(), self.engine.connect() as conn:
            records = [dict(r) for r in conn.execute(query, params).mappings()]
            for record in records:
                record["history"] = self._history(conn, record["finding_id"], org_id)
        return records

    def change_by_reference(self, reference: str) -> Optional[dict]:
        """The first change of state recorded with ``reference``, or None."""
        rows = self._read(BY_REFERENCE, reference=reference)
        return rows[0] if rows else None

    def answers(self, since: Optional[float] = None, newest_first: bool = False, limit: Optional[int] = None) -> list:
        """The owners' and operators' answers (history rows with the record's ``org_name``,
        ``target`` and ``case_id``), oldest first (or newest first), since a time, at most
        ``limit``."""
        query = ANSWERS_GIVEN
        if since is not None:
            query = query.where(H.c.at >= since)
        query = query.order_by(H.c.id.desc() if newest_first else H.c.id)
        if limit:
            query = query.limit(limit)
        # ``answer``: what was asked, whether it changed the state or was kept in the history.
        return [{**row, "answer": row["requested"] or row["state"]} for row in self._read(query)]

    def last_change_to(self, finding_id: str, org_id: str, state: str) -> Optional[dict]:
        """The last change of a record to ``state``: its ``note``, ``at`` and ``source``; None if none."""
        rows = self._read(LAST_CHANGE_TO, **self._bind(finding_id, org_id), state=state)
        return rows[0] if rows else None

    def decisions(self) -> dict:
        """The operators' decisions on disputes: ``(finding id, org id)`` → the decision's row."""
        return {(r["finding_id"], r["org_id"]): r for r in self._read(DECISIONS)}

    def first_times(self, states) -> list:
        """``(org_id, org_name, constituency, first_seen, first_notified)`` of the findings in
        ``states``."""
        with _Reachable(), self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(FIRST_TIMES, {"k_ledger": self.name, "states": list(states)})]

    def silent(self, cutoff: float) -> list:
        """``(org_id, org name, findings, first notified, last owner's answer or None)`` of the
        organisations with findings first notified at ``cutoff`` or before and no answer of
        the owner's after that notification."""
        with _Reachable(), self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(SILENT, {"k_ledger": self.name, "cutoff": cutoff})]

    def case_ids(self, limit: Optional[int] = None) -> list:
        """The ids of the cases this ledger has findings of, in order, at most ``limit``."""
        query = CASE_IDS.limit(limit) if limit else CASE_IDS
        with _Reachable(), self.engine.connect() as conn:
            return list(conn.execute(query, {"k_ledger": self.name}).scalars())

    # -- measuring -----------------------------------------------------------------------

    def insert_rows(self, records=(), history=(), notifications=()) -> None:
        """Rows as they are (every column given), in one transaction: for filling a ledger to
        measure it (``benchmarks/ledger_scale.py``). Nothing checks them against the policy."""
        with self._transaction() as conn:
            for table, rows in ((F, records), (H, history), (N, notifications)):
                if rows:
                    conn.execute(table.insert(), list(rows))

    def disk_bytes(self) -> int:
        """The database's size on disk: the SQLite file with its WAL, or PostgreSQL's tables of
        findings, history and notifications with their indexes."""
        path = sqlite_path(self.url)
        if path is not None:
            return sum(os.path.getsize(p) for p in Path(path).parent.glob(Path(path).name + "*"))
        with _Reachable(), self.engine.connect() as conn:
            return conn.exec_driver_sql(TABLES_ON_DISK).scalar_one()
