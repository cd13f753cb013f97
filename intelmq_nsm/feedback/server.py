"""The feedback service on the shared web stack: its routes in one function, and the server.

:func:`service_routes` is the one place the service's endpoints are listed: each area
adds its routes to the same :class:`~intelmq_nsm.web.app.Routes` from a
:class:`~intelmq_nsm.feedback.context.ServiceContext`, which holds what they share.
"""

from typing import Optional

from intelmq_nsm.feedback.api import FeedbackAPI
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.feedback.outcomes import OutcomesAPI
from intelmq_nsm.feedback.overview import OperatorsOverview
from intelmq_nsm.feedback.pages import OwnersPage
from intelmq_nsm.web.app import Routes
from intelmq_nsm.web.server import WebServer


def service_routes(context: ServiceContext) -> Routes:
    """Every route of the service. A new area adds its routes here."""
    routes = Routes()
    OwnersPage(context).add_to(routes)
    FeedbackAPI(context).add_to(routes)
    OutcomesAPI(context).add_to(routes)
    OperatorsOverview(context).add_to(routes)
    return routes


class FeedbackServer:
    """The service's routes on a :class:`~intelmq_nsm.web.server.WebServer` of their own."""

    def __init__(self, context: ServiceContext, host: Optional[str] = None, port: Optional[int] = None):
        config = context.config
        self.context = context
        self.web = WebServer(
            service_routes(context),
            host or config.host,
            config.port if port is None else port,
            config.limits,
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
