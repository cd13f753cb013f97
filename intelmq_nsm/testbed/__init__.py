"""The test and benchmark bed: what the demo, the benchmarks and the end-to-end tests run the
product on, apart from the product and from the demo.

``pipeline``: a private Redis and IntelMQ root driven by intelmqctl; ``rabbitmq``: a
private RabbitMQ for IntelMQ's AMQP pipeline; ``postgres``: a private PostgreSQL for the
ledger; ``smtp_sink`` and ``http_receiver``: local SMTP and HTTP servers that keep what they
receive (the sink also as ``.eml`` files); ``layout`` and ``chain``: an example configuration
laid out in a private folder, started, fed over HTTP and waited for until nothing waits;
``signing``: a fresh key in each GnuPG home of a laid-out example that signs; ``client``: the researcher's
client of the intake and the owner's of the feedback service; ``spools``: a digest bot's
spool read from outside; ``scaling``: runtime layouts past one process per bot;
``synthetic`` and ``sample_events``: load. Nothing in the bots or the mechanism imports
this package, and it imports nothing of the demo.
"""
