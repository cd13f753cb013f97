"""The pipeline harness of the end-to-end tests.

The mechanism is the package's own private pipeline (also used by ``intelmq-nsm demo``);
tests/conftest.py wraps it in fixtures that always stop what they started.
"""

from intelmq_nsm.demo.pipeline import *  # noqa: F403  (the harness is the private pipeline)
from intelmq_nsm.demo.pipeline import HarnessError, Pipeline, RedisServer  # noqa: F401  (named for readers)
