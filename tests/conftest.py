"""Shared fixtures: a private redis-server and real IntelMQ pipelines (see tests/harness.py), and
the finding ledger's backends (SQLite, and PostgreSQL on a private server of this session)."""

import itertools
import os

import pytest

from intelmq_nsm.testbed.postgres import PostgresServer
from tests.harness import HarnessPipeline, RedisServer


@pytest.fixture(autouse=True, scope="session")
def _refuse_root():
    if os.geteuid() == 0:
        pytest.exit("IntelMQ refuses to run as root: run the tests through scripts/test.", returncode=2)


@pytest.fixture
def redis_server(tmp_path, request):
    """A redis-server of its own on 127.0.0.1 and a free port, stopped after the test.

    Only for tests marked e2e: ``-m "not e2e"`` is the run without server processes.
    """
    if request.node.get_closest_marker("e2e") is None:
        pytest.fail(f"{request.node.nodeid} starts a redis-server: mark it @pytest.mark.e2e.", pytrace=False)
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def intelmq_pipeline(tmp_path, redis_server):
    """Factory: ``intelmq_pipeline(runtime_dict)`` lays out an IntelMQ root and returns a HarnessPipeline.

    Every bot it started is stopped (or killed) after the test, whether the test passed or not.
    """
    pipelines = []

    def make(runtime: dict, name: str = "intelmq") -> HarnessPipeline:
        pipeline = HarnessPipeline(tmp_path / name, redis_server, runtime)
        pipelines.append(pipeline)
        return pipeline.setup()

    try:
        yield make
    finally:
        for pipeline in pipelines:
            pipeline.close()


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
