"""The example NSM→IBD pipeline end to end (``intelmq-nsm demo``), beside the library.

``example``: which example runs and what it must hold; ``rounds``: round one (the sample
reports) and round two (the researchers' rescan a week later); ``feedback_round``: the
owners' answers through the feedback service and the researcher's view of each case;
``summary``: who got what; ``mails``: the mails kept as ``.eml`` with the signing key's
public half, their labels and languages, one checked with gpg; ``run``: the demo itself. It runs on the test bed
(``intelmq_nsm.testbed``), which never imports it; nothing in the bots or the mechanism
imports this package.
"""

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.run import Demo
from intelmq_nsm.demo.summary import Summary, finding_address

__all__ = ["Demo", "DemoError", "Summary", "finding_address"]
