"""The ledger on a database: SQLite (default, in the digest spool's file) or PostgreSQL.

Why SQLAlchemy Core (2.x) with psycopg 3: one dialect-neutral layer writes the same
statements for SQLite and PostgreSQL (the tables in :mod:`.schema`, the queries here),
upserts use each dialect's own ``insert … ON CONFLICT``, and its connection pool
reconnects after a database restart. psycopg 3 is PostgreSQL's maintained driver.

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
"""

import contextlib
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from sqlalchemy import and_, bindparam, create_engine, event, exc, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from intelmq_nsm import storage
from intelmq_nsm.digest.ledger.policy import Observation, again, delivered, first
from intelmq_nsm.digest.ledger.schema import (
    ANSWERS,
    SOURCES,
    STATES,
    SUPERSEDED_INDEXES,
    findings,
    history,
    metadata,
    notifications,
)

KEY = ("ledger", "finding_id", "org_id")
HISTORY_COLUMNS = ("ledger", "finding_id", "org_id", "at", "old_state", "state", "source", "note", "reference")


#: The advisory lock (any fixed number) under which a ledger's schema is made on PostgreSQL.
SCHEMA_LOCK = 0x6E736D6C  # 'nsml'


class LedgerUnavailable(Exception):
    """The ledger's database cannot be reached (or is locked) now; try again later."""


def sqlite_url(path) -> str:
    return f"sqlite:///{path}"


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


@contextlib.contextmanager
def _reachable():
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, sqlite3.OperationalError) as error:
        raise LedgerUnavailable(str(error).splitlines()[0]) from error


class _SQLiteStatements:
    """The per-event statements on SQLite, compiled once from the SQLAlchemy ones to SQL
    text with named parameters and run on the sqlite3 connection itself.

    Why: an event's ledger work is a few primary-key statements, and on SQLite each costs
    the database 10-20 µs while SQLAlchemy's execution around it (cache lookup, parameter
    processing, result set-up, events) costs about as much again, twice for the
    transaction's begin and commit; that made the ledger dearer than the spool it rides
    with. The statements are still those of :mod:`.schema` (compiled by SQLAlchemy's SQLite
    dialect), and every other use of the ledger goes through SQLAlchemy."""

    def __init__(self, read, new_finding, update, change):
        dialect = sqlite.dialect(paramstyle="named")
        self.read = str(read.compile(dialect=dialect))
        self.columns = [c.name for c in findings.c]
        self._new = new_finding
        self._new_sql = {}
        self._update = update
        self._update_sql = {}
        self.change = str(change.compile(dialect=dialect, column_keys=list(HISTORY_COLUMNS)))
        self._dialect = dialect

    def new(self, keys) -> str:
        keys = tuple(keys)
        if keys not in self._new_sql:
            self._new_sql[keys] = str(self._new.compile(dialect=self._dialect, column_keys=list(keys)))
        return self._new_sql[keys]

    def update(self, keys) -> str:
        keys = tuple(keys)
        if keys not in self._update_sql:
            self._update_sql[keys] = str(self._update.compile(dialect=self._dialect, column_keys=list(keys)))
        return self._update_sql[keys]


class Ledger:
    """The life of every finding per organisation, in the ledger ``name`` of one database."""

    def __init__(
        self,
        url: str,
        name: str = "default",
        reminder_after: float = 604800,
        report_fixed: bool = True,
        synchronous: str = "NORMAL",
        autocheckpoint: Optional[int] = None,
    ):
        self.url, self.name = url, name
        self.reminder_after, self.report_fixed = float(reminder_after), bool(report_fixed)
        self.engine = make_engine(url, synchronous=synchronous, autocheckpoint=autocheckpoint)
        self.insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        self._shares = {}
        # Built once: the per-event path then only binds values (SQLAlchemy caches the compiled SQL).
        key = {table: self._key(table) for table in (findings, history, notifications)}
        self._read = select(findings).where(key[findings]).with_for_update()
        self._update = findings.update().where(key[findings])
        self._new = {
            table: self.insert(table).on_conflict_do_nothing().returning(table.c.ledger)
            for table in (findings, notifications)
        }
        self._sqlite = None
        if self.engine.dialect.name == "sqlite":
            self._sqlite = _SQLiteStatements(self._read, self._new[findings], self._update, history.insert())
        with _reachable():
            self._create_schema()

    def _create_schema(self) -> None:
        """Make what is missing of the schema, in one transaction. On PostgreSQL several
        outputs (or hosts) may open one ledger at the same moment, and two concurrent
        ``CREATE TABLE IF NOT EXISTS`` (or ``CREATE INDEX``) of one name fail in
        PostgreSQL's catalogue: a transaction-level advisory lock lets one make the schema
        while the others wait."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
            metadata.create_all(conn)
            self._add_missing_columns(conn)
            # A ledger made by an earlier version: its tables exist, so create_all leaves
            # them alone; the statistics' present indexes are made here, the old dropped.
            for index in (*findings.indexes, *history.indexes):
                index.create(conn, checkfirst=True)
            for index in SUPERSEDED_INDEXES:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")

    def _add_missing_columns(self, conn) -> None:
        """Columns added to ``ledger_findings`` after a ledger was made (``create_all`` makes
        only missing tables): added with their default, so older ledgers go on working."""
        present = {column["name"] for column in inspect(conn).get_columns(findings.name)}
        if "matches" not in present:
            conn.exec_driver_sql(f"ALTER TABLE {findings.name} ADD COLUMN matches TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.engine.dispose()

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
            with _reachable(), storage.transaction(db):
                yield db
            return
        with _reachable(), contextlib.closing(self.engine.raw_connection()) as pooled:
            with storage.transaction(pooled.driver_connection) as db:
                yield db

    @contextlib.contextmanager
    def transaction(self):
        """A connection in a transaction, committed at the end of the block; an unreachable
        (or locked) database raises LedgerUnavailable, also from inside the block."""
        with _reachable(), self.engine.begin() as conn:
            yield conn

    @staticmethod
    def _key(table):
        return and_(
            table.c.ledger == bindparam("k_ledger"),
            table.c.finding_id == bindparam("k_finding"),
            table.c.org_id == bindparam("k_org"),
        )

    def _bind(self, finding_id: str, org_id: str) -> dict:
        return {"k_ledger": self.name, "k_finding": finding_id, "k_org": org_id}

    def _where(self, table, finding_id: str, org_id: str):
        return and_(table.c.ledger == self.name, table.c.finding_id == finding_id, table.c.org_id == org_id)

    def _record(self, conn, finding_id: str, org_id: str):
        return conn.execute(self._read, self._bind(finding_id, org_id)).mappings().first()

    def _set(self, conn, finding_id: str, org_id: str, values: dict) -> None:
        conn.execute(self._update, {**values, **self._bind(finding_id, org_id)})

    def _change(self, conn, finding_id, org_id, change, now, source="scan", reference=""):
        old, new, note = change
        conn.execute(
            history.insert(),
            {
                "ledger": self.name,
                "finding_id": finding_id,
                "org_id": org_id,
                "at": now,
                "old_state": old,
                "state": new,
                "source": source,
                "note": note,
                "reference": reference,
            },
        )

    def _inserted(self, conn, table, row: dict) -> bool:
        """Insert ``row`` unless its key exists; True if it was new. (RETURNING rather than
        the row count, which drivers report differently for ``ON CONFLICT DO NOTHING``.)"""
        return conn.execute(self._new[table], row).first() is not None

    # -- the digest output ---------------------------------------------------------------

    def observe(self, observations: Iterable[Observation], now: Optional[float] = None, conn=None) -> list:
        """Record one event's findings in one transaction (``conn``'s, if given: on SQLite a
        sqlite3 connection in :meth:`sqlite_transaction`, on PostgreSQL one of
        :meth:`transaction`); return per observation the record after it (a dict with
        ``kind``: what to put into a digest now, or None)."""
        if self._sqlite is not None:
            if conn is None:
                with self.sqlite_transaction() as db:
                    return self._observe_sqlite(db, observations, now)
            with _reachable():
                return self._observe_sqlite(conn, observations, now)
        if conn is None:
            with self.transaction() as conn:
                return self.observe(observations, now, conn)
        now = time.time() if now is None else now
        results = []
        for o in observations:
            # A new finding first: one statement where it is new; where it is known, the
            # conflict leaves it alone and it is read (locked) and changed.
            step = first(o, now)
            row = {"ledger": self.name, "finding_id": o.finding_id, "org_id": o.org_id, **step.values}
            if self._inserted(conn, findings, row):
                self._change(conn, o.finding_id, o.org_id, step.change, now)
                results.append({**row, "kind": step.kind})
                continue
            record = self._record(conn, o.finding_id, o.org_id)
            step = again(record, o, now, self.reminder_after, self.report_fixed)
            if step.values:
                self._set(conn, o.finding_id, o.org_id, step.values)
            if step.change:
                self._change(conn, o.finding_id, o.org_id, step.change, now)
            results.append({**record, **step.values, "kind": step.kind})
        return results

    def _observe_sqlite(self, db: sqlite3.Connection, observations, now: Optional[float]) -> list:
        """:meth:`observe`'s steps with the statements of :class:`_SQLiteStatements`."""
        sql = self._sqlite
        now = time.time() if now is None else now
        results = []
        for o in observations:
            key = {"k_ledger": self.name, "k_finding": o.finding_id, "k_org": o.org_id}
            step = first(o, now)
            row = {"ledger": self.name, "finding_id": o.finding_id, "org_id": o.org_id, **step.values}
            if db.execute(sql.new(row), row).fetchone() is not None:
                self._change_sqlite(db, o, step.change, now)
                results.append({**row, "kind": step.kind})
                continue
            record = dict(zip(sql.columns, db.execute(sql.read, key).fetchone()))
            step = again(record, o, now, self.reminder_after, self.report_fixed)
            if step.values:
                db.execute(sql.update(step.values), {**step.values, **key})
            if step.change:
                self._change_sqlite(db, o, step.change, now)
            results.append({**record, **step.values, "kind": step.kind})
        return results

    def _change_sqlite(self, db, o, change, now) -> None:
        old, new, note = change
        db.execute(
            self._sqlite.change,
            {
                "ledger": self.name,
                "finding_id": o.finding_id,
                "org_id": o.org_id,
                "at": now,
                "old_state": old,
                "state": new,
                "source": "scan",
                "note": note,
                "reference": "",
            },
        )

    def record_delivery(self, digest_id: str, entries: Iterable[tuple], now: Optional[float] = None) -> int:
        """The digest ``digest_id`` holding ``(finding id, org id, kind)`` entries was delivered.
        Idempotent: a digest recorded before changes nothing. Returns how many entries were new."""
        now = time.time() if now is None else now
        count = 0
        with _reachable(), self.engine.begin() as conn:
            for finding_id, org_id, kind in entries:
                record = self._record(conn, finding_id, org_id)
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
                if not self._inserted(conn, notifications, row):
                    continue
                count += 1
                step = delivered(record, kind, digest_id, now)
                if step.values:
                    self._set(conn, finding_id, org_id, step.values)
                if step.change:
                    self._change(conn, finding_id, org_id, step.change, now, reference=digest_id)
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
        """An owner's or operator's answer about a finding: ``fixed-reported``, ``disputed``,
        ``accepted-risk``, ``false-positive``, or ``open`` (an operator reopening it). A later
        rescan still decides (fixed-reported, then seen vulnerable: reopened). Returns the
        previous state, or None when the ledger has no such finding for that organisation."""
        if state not in ANSWERS:
            raise ValueError(f"An answer sets one of {', '.join(ANSWERS)}, not {state!r}.")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}.")
        now = time.time() if now is None else now
        with _reachable(), self.engine.begin() as conn:
            record = self._record(conn, finding_id, org_id)
            if record is None:
                return None
            self._set(conn, finding_id, org_id, {"state": state})
            self._change(conn, finding_id, org_id, (record["state"], state, note), now, source, reference)
            return record["state"]

    # -- reading -------------------------------------------------------------------------

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
        query = select(findings).where(findings.c.ledger == self.name)
        if state:
            query = query.where(findings.c.state == state)
        if org_id:
            query = query.where(findings.c.org_id == org_id)
        if case_id:
            query = query.where(findings.c.case_id == case_id)
        if older_than is not None:
            now = time.time() if now is None else now
            query = query.where(findings.c.first_seen <= now - older_than)
        query = query.order_by(findings.c.first_seen, findings.c.finding_id, findings.c.org_id)
        if limit:
            query = query.limit(limit)
        with _reachable(), self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def history_of(self, finding_id: str) -> list:
        """Every organisation's record of ``finding_id`` with its history and digests."""
        with _reachable(), self.engine.connect() as conn:
            result = []
            where = and_(findings.c.ledger == self.name, findings.c.finding_id == finding_id)
            for record in conn.execute(select(findings).where(where).order_by(findings.c.org_id)).mappings():
                record = dict(record)
                match = self._where(history, finding_id, record["org_id"])
                record["history"] = [
                    {k: r[k] for k in ("at", "old_state", "state", "source", "note", "reference")}
                    for r in conn.execute(select(history).where(match).order_by(history.c.id)).mappings()
                ]
                match = self._where(notifications, finding_id, record["org_id"])
                record["digests"] = [
                    {k: r[k] for k in ("digest_id", "kind", "delivered_at")}
                    for r in conn.execute(
                        select(notifications).where(match).order_by(notifications.c.delivered_at)
                    ).mappings()
                ]
                result.append(record)
            return result

    def names(self) -> list:
        """The ledger names this database holds."""
        with _reachable(), self.engine.connect() as conn:
            return list(conn.execute(select(findings.c.ledger).distinct().order_by(findings.c.ledger)).scalars())

    def count(self) -> int:
        with _reachable(), self.engine.connect() as conn:
            query = select(func.count()).select_from(findings).where(findings.c.ledger == self.name)
            return conn.execute(query).scalar_one()
