"""Credentials the services share: token files of salted scrypt hashes and their verifier.

Plain Python, no HTTP: the intake's researchers, the feedback service's ticket system and
its operators each have a token file in this format; ``intelmq-nsm tokens`` manages them.
How a token arrives in a request (the ``Authorization`` header, a form) and how a failure
is answered is the web stack's (:mod:`intelmq_nsm.web.bearer`).
"""
