"""Between installations: a hub (the Meldpunt) and the sectoral CERTs' own instances.

The forward leg runs on IntelMQ's own AMQP output and collector; this package holds what
intelmq-nsm adds to them, in plain Python (no IntelMQ):

- :mod:`.forwarded` (at a CERT): what a hub sent, read as untrusted input: checked against
  the forwarded-event schema (``harmonization/forwarded-event.schema.json``), the hub's
  routing decision and feed dropped, its provenance kept as ``extra.nsm.upstream``;
- :mod:`.record` (at the hub): the hub's ledger record of each finding it forwarded to a
  CERT (state ``forwarded``, organisation ``cert:<constituency key>``).

See ``harmonization/federation.md``.
"""
