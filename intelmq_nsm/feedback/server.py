"""The feedback service on the shared web stack: its routes in one function, and the server.

:func:`service_routes` is the one place the service's endpoints are listed: each area
adds its routes to the same :class:`~intelmq_nsm.web.app.Routes` from a context that
holds what they share (configuration, ledger, link signer, token verifier, limits).
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

from intelmq_nsm.feedback import api, overview, pages
from intelmq_nsm.feedback.answers import FeedbackStore
from intelmq_nsm.feedback.config import ServiceConfig
from intelmq_nsm.feedback.links import LinkSigner
from intelmq_nsm.intake.service import RateLimiter
from intelmq_nsm.intake.tokens import TokenVerifier
from intelmq_nsm.web.app import Routes
from intelmq_nsm.web.server import Limits, WebServer


@dataclass
class ServiceContext:
    """What the service's endpoints share."""

    config: ServiceConfig
    store: FeedbackStore
    signer: LinkSigner
    logger: logging.Logger
    #: Bearer tokens of the IBD's systems (``POST /v1/feedback``); None: the API is off.
    verifier: Optional[TokenVerifier] = None
    #: Requests per client address (pages and API alike).
    limiter: RateLimiter = None
    #: Failed link checks and failed authentications per client address.
    failures: RateLimiter = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.limiter is None:
            self.limiter = RateLimiter(self.config.requests_per_minute, self.config.burst)
        if self.failures is None:
            self.failures = RateLimiter(self.config.failures_per_minute, self.config.failures_burst)


def service_routes(context: ServiceContext) -> Routes:
    """Every route of the service. A new area adds its ``add_routes(routes, context)`` here."""
    routes = Routes()
    pages.add_routes(routes, context)
    api.add_routes(routes, context)
    overview.add_routes(routes, context)
    return routes


class FeedbackServer:
    """The service's routes on a :class:`~intelmq_nsm.web.server.WebServer` of their own."""

    def __init__(self, context: ServiceContext, host: Optional[str] = None, port: Optional[int] = None):
        config = context.config
        limits = Limits(
            max_connections=config.max_connections,
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            max_body_bytes=api.MAX_BODY_BYTES,
            max_bytes_in_flight=4 * 1024 * 1024,
            workers=config.workers,
            trust_forwarded_for=config.trust_forwarded_for,
        )
        self.context = context
        self.web = WebServer(
            service_routes(context),
            host or config.host,
            config.port if port is None else port,
            limits,
            context.logger,
            name="nsm-feedback",
        )

    @property
    def port(self) -> int:
        return self.web.port

    def start(self) -> "FeedbackServer":
        self.web.start()
        return self

    def stop(self) -> None:
        self.web.stop()
