"""Digest delivery: a durable spool of findings per organisation, rendering and channels.

No IntelMQ needed here: ``intelmq_nsm.bots.outputs.digest.output`` adapts IntelMQ
messages to :mod:`.spool`, and ``intelmq-nsm spool`` inspects the same file.
"""
