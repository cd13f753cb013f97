"""What the feedback service's endpoints share, typed: configuration, ledger, link signer,
the token checks of the ticket system, of the operators and (at a hub) of the downstream
CERTs, and the rate limits."""

import logging
from dataclasses import dataclass, field
from typing import Optional

from intelmq_nsm.auth.tokens import TokenVerifier
from intelmq_nsm.feedback.answers import FeedbackStore
from intelmq_nsm.feedback.config import ServiceConfig
from intelmq_nsm.feedback.links import LinkSigner
from intelmq_nsm.web.bearer import TokenCheck
from intelmq_nsm.web.ratelimit import Throttle


@dataclass
class ServiceContext:
    """What the service's endpoints share."""

    config: ServiceConfig
    store: FeedbackStore
    signer: LinkSigner
    logger: logging.Logger
    #: Tokens of the IBD's systems (``POST /v1/feedback``); None: the API is off.
    tickets: Optional[TokenVerifier] = None
    #: Tokens of the IBD's operators (the overview at ``/operators``); None: it is off.
    operators: Optional[TokenVerifier] = None
    #: At a hub: tokens of the downstream CERTs (``POST /v1/outcomes``); None: it is off.
    certs: Optional[TokenVerifier] = None
    #: Requests per client address (pages and API alike) and failed link checks and
    #: authentications, by the configuration's limits.
    throttle: Throttle = field(init=False)
    #: The checks of the tokens above (None where there are none).
    ticket_tokens: Optional[TokenCheck] = field(init=False)
    operator_tokens: Optional[TokenCheck] = field(init=False)
    cert_tokens: Optional[TokenCheck] = field(init=False)

    def __post_init__(self):
        self.throttle = Throttle(self.config.limits)
        self.ticket_tokens = self._check(self.tickets, "nsm-feedback")
        self.operator_tokens = self._check(self.operators, "nsm-operators")
        self.cert_tokens = self._check(self.certs, "nsm-outcomes")

    def _check(self, verifier: Optional[TokenVerifier], realm: str) -> Optional[TokenCheck]:
        return None if verifier is None else TokenCheck(verifier, self.throttle, self.logger, realm)
