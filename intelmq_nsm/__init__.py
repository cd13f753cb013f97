"""intelmq-nsm: IntelMQ bots that route researchers' findings to the owner's sectoral CERT."""

__version__ = "0.1.0"
