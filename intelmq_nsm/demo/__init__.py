"""The example NSM→IBD pipeline end to end (``intelmq-nsm demo``), beside the library.

``pipeline``: a private Redis and IntelMQ root driven by intelmqctl (also the tests'
harness); ``smtp_sink``: a local SMTP server that keeps what it receives; ``summary``: who
got what; ``run``: the demo itself. Nothing in the bots imports this package.
"""

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.run import Demo, finding_address, install_example_files, localise_runtime, spool_digests
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
