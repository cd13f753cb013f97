"""Shared fixtures: a private redis-server and real IntelMQ pipelines (see tests/harness.py)."""

import os

import pytest

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
