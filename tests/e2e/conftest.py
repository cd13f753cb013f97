"""Fixtures of the end-to-end tests on RabbitMQ: one private server per test session.

Every module on RabbitMQ carries the ``rabbitmq`` mark: the test command runs those in
one process after the parallel rest, since intelmqctl reads queue counts from port
15672 only and one private node per machine can have it.
"""

import os
import re

import pytest

from intelmq_nsm.testbed.rabbitmq import RabbitMQServer, rabbitmq_available


@pytest.fixture(scope="session")
def rabbitmq_server():
    """A private RabbitMQ (own node, ports and folder, loopback only) for the whole session.

    Starting one takes about 5 s and stopping it 7 s, so the tests share it; each test
    gets a virtual host of its own (``amqp_broker``). Where RabbitMQ is not installed the
    tests are skipped, except under scripts/test as root and in CI, which install it.
    """
    if not rabbitmq_available():
        if os.environ.get("NSM_REQUIRE_RABBITMQ") or os.environ.get("CI"):
            pytest.fail("RabbitMQ is required here but /usr/lib/rabbitmq/bin/rabbitmq-server is missing.")
        pytest.skip("Debian's rabbitmq-server is not installed (scripts/test as root installs it).")
    server = RabbitMQServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def amqp_broker(rabbitmq_server, request):
    """A fresh RabbitMQ virtual host for one test's pipeline(s), deleted afterwards."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:80]
    broker = rabbitmq_server.vhost(name)
    try:
        yield broker
    finally:
        rabbitmq_server.delete_vhost(name)
