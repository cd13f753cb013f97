"""The feedback service put together from its configuration: the ledger's store, the link
signer, the ticket system's, operators' and (at a hub) CERTs' token verifiers, the server
(not started).

``intelmq-nsm serve`` runs it; the demo starts one beside its pipeline.
"""

import logging


def build(config, logger=None):
    """The service's server from a :class:`~intelmq_nsm.feedback.config.ServiceConfig` (not started)."""
    from intelmq_nsm.auth.tokens import TokenVerifier
    from intelmq_nsm.feedback.answers import FeedbackConfig, FeedbackStore
    from intelmq_nsm.feedback.context import ServiceContext
    from intelmq_nsm.feedback.links import LinkSigner
    from intelmq_nsm.feedback.server import FeedbackServer

    logger = logger or logging.getLogger("intelmq-nsm.feedback")
    store = FeedbackStore(FeedbackConfig(config.ledger_url, config.ledger_name, config.spool_file))
    context = ServiceContext(
        config,
        store,
        LinkSigner.from_file(config.secret_file),
        logger,
        tickets=TokenVerifier(config.tokens_file) if config.tokens_file else None,
        operators=TokenVerifier(config.operator_tokens_file) if config.operator_tokens_file else None,
        certs=TokenVerifier(config.cert_tokens_file) if config.cert_tokens_file else None,
    )
    return FeedbackServer(context)
