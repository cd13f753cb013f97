"""The researcher intake: edge checks, the service, splitting, the submission spool, the
pump into the pipeline and the HTTP routes (on :mod:`intelmq_nsm.web`; researchers'
tokens are :mod:`intelmq_nsm.auth`'s).

Plain modules without IntelMQ; the intake collector bot
(:mod:`intelmq_nsm.bots.collectors.intake.collector`) is a thin adapter around them.
"""
