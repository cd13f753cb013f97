"""The pipeline harness of the end-to-end tests.

The mechanism is the package's own private pipeline (also used by ``intelmq-nsm demo``);
tests/conftest.py wraps it in fixtures that always stop what they started.
"""

from intelmq_nsm.private_pipeline import (  # noqa: F401  (re-exported for the tests)
    LOOPBACK,
    HarnessError,
    Pipeline,
    RedisServer,
    free_port,
    redis_server_binary,
    wait_for,
)
