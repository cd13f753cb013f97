"""The example NSM→IBD pipeline end to end (``intelmq-nsm demo``), beside the library.

``pipeline``: a private Redis and IntelMQ root driven by intelmqctl (also under the
benchmarks and the tests' harness); ``smtp_sink`` and ``http_receiver``: local SMTP and
HTTP servers that keep what they receive; ``spools``: a digest bot's spool read from
outside; ``summary``: who got what; ``run``: the demo itself. ``synthetic`` and
``sample_events`` make load for the benchmarks and tests. Nothing in the bots or the
mechanism imports this package.
"""

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.run import Demo, finding_address, install_example_files, localise_runtime
from intelmq_nsm.testbed.spools import spool_digests
from intelmq_nsm.demo.summary import Summary

__all__ = [
    "Demo",
    "DemoError",
    "Summary",
    "finding_address",
    "install_example_files",
    "localise_runtime",
    "spool_digests",
]
