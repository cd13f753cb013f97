"""The researcher intake: tokens, edge validation, splitting, the durable spool and the HTTP server.

Plain modules without IntelMQ; the intake collector bot
(:mod:`intelmq_nsm.bots.collectors.intake.collector`) is a thin adapter around them.
"""
