"""The intake's HTTP API on the shared web stack (:mod:`intelmq_nsm.web`).

``POST /v1/reports`` (Bearer token) checks a submission at the edge, splits it into
reports and stores them durably in the spool before answering ``202``;
``GET /v1/reports/<id>`` tells the submitter its state; ``GET /v1/cases/<case id>`` (JSON)
and ``GET /v1/cases/<case id>/chart.svg`` what became of the findings of a case the token's
researcher reported on (when the intake knows the ledgers); ``GET``/``HEAD /v1/health`` is
for monitoring. Everything that can be refused is refused before the body is read
(content type and size by Content-Length, declared by the endpoint; then token, rate
limit, feed code, case metadata), also on ``Expect: 100-continue``. Meant to listen on
loopback behind a TLS-terminating proxy.
"""

from intelmq_nsm.intake.service import IntakeService
from intelmq_nsm.intake.split import CONTENT_TYPES
from intelmq_nsm.web import nesting
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.refusal import Refusal
from intelmq_nsm.web.server import WebServer


class IntakeRoutes:
    """The intake's endpoints, each a method that hands the request to the service."""

    def __init__(self, service: IntakeService):
        self.service = service

    def screen(self, request: Request) -> None:
        self.service.tokens.screen(request)

    def check_post(self, request: Request) -> None:
        request.context = self.service.check_submission(self.service.authenticate(request), request)

    def post(self, request: Request) -> Response:
        try:
            status, body = self.service.submit(request.context, request.text, request.body)
        except Refusal:
            raise
        except Exception:
            self.service.logger.exception("A submission could not be handled.")
            raise Refusal(503, "unavailable", "The submission could not be stored; try again.") from None
        return Response.json(status, body)

    def status(self, request: Request) -> Response:
        return Response.json(*self.service.status(self.service.authenticate(request), request.args[0]))

    def case(self, request: Request) -> Response:
        return Response.json(*self.service.case(self.service.authenticate(request), request.args[0]))

    def chart(self, request: Request) -> Response:
        status, svg = self.service.case(self.service.authenticate(request), request.args[0], chart=True)
        return Response(status, svg.encode("utf-8"), "image/svg+xml; charset=utf-8")

    def health(self, request: Request) -> Response:
        return Response.json(*self.service.health())

    def routes(self) -> Routes:
        report = Endpoint(
            self.post,
            check=self.check_post,
            screen=self.screen,
            media_types=CONTENT_TYPES,
            text=True,
            max_depth=nesting.MAX_DEPTH,
        )
        return (
            Routes()
            .add(r"/v1/reports", post=report)
            .add(r"/v1/reports/(.*)", get=Endpoint(self.status, screen=self.screen))
            .add(r"/v1/cases/([^/]+)", get=Endpoint(self.case, screen=self.screen))
            .add(r"/v1/cases/([^/]+)/chart\.svg", get=Endpoint(self.chart, screen=self.screen))
            .add(r"/v1/health", get=Endpoint(self.health, light=True))
        )


class IntakeServer:
    """The intake's routes on a :class:`~intelmq_nsm.web.server.WebServer` of their own,
    with the service's limits."""

    def __init__(self, service: IntakeService, host: str, port: int):
        routes = IntakeRoutes(service).routes()
        self.web = WebServer(routes, host, port, service.limits, service.logger, name="nsm-intake")

    @property
    def port(self) -> int:
        return self.web.port

    def start(self) -> "IntakeServer":
        self.web.start()
        return self

    def stop(self) -> None:
        self.web.stop()
