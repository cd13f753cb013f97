"""The ledger's backends: SQLite always, PostgreSQL on a private server of this session."""

import itertools

import pytest

from intelmq_nsm.demo.postgres import PostgresServer

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the whole session (initdb + pg_ctl in a short temp dir)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def ledger_url(request, tmp_path):
    """A fresh, empty ledger database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spool.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"ledger{next(_databases)}")
