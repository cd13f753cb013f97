"""The intake's HTTP API on the shared web stack (:mod:`intelmq_nsm.web`).

``POST /v1/reports`` (Bearer token) checks a submission at the edge, splits it into
reports and stores them durably in the spool before answering ``202``;
``GET /v1/reports/<id>`` tells the submitter its state; ``GET /v1/cases/<case id>`` (JSON)
and ``GET /v1/cases/<case id>/chart.svg`` what became of the findings of a case the token's
researcher reported on (when the intake knows the ledgers); ``GET``/``HEAD /v1/health`` is
for monitoring. Everything that can be refused is refused before the body is read
(token, rate limit, content type, size by Content-Length, feed code, case metadata),
also on ``Expect: 100-continue``. Meant to listen on loopback behind a TLS-terminating
proxy.
"""

from intelmq_nsm.intake.service import IntakeService
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.refusal import Refusal
from intelmq_nsm.web.server import Limits, WebServer


def intake_routes(service: IntakeService) -> Routes:
    def check_post(request: Request) -> None:
        entry = service.authenticate(request.headers.get("Authorization"), request.remote)
        context = service.check_submission(
            entry, request.headers.get("Content-Type"), request.length, request.query, request.headers
        )
        request.context = (entry, context)

    def post(request: Request) -> Response:
        entry, context = request.context
        try:
            status, body = service.submit(entry, context, request.body)
        except Refusal:
            raise
        except Exception:
            service.logger.exception("A submission could not be handled.")
            raise Refusal(503, "unavailable", "The submission could not be stored; try again.") from None
        return Response.json(status, body)

    def status(request: Request) -> Response:
        entry = service.authenticate(request.headers.get("Authorization"), request.remote)
        return Response.json(*service.status(entry, request.args[0]))

    def case(request: Request) -> Response:
        entry = service.authenticate(request.headers.get("Authorization"), request.remote)
        return Response.json(*service.case(entry, request.args[0]))

    def chart(request: Request) -> Response:
        entry = service.authenticate(request.headers.get("Authorization"), request.remote)
        status, svg = service.case(entry, request.args[0], chart=True)
        return Response(status, svg.encode("utf-8"), "image/svg+xml; charset=utf-8")

    def health(request: Request) -> Response:
        return Response.json(*service.health())

    def screen(request: Request) -> None:
        service.screen(request.headers.get("Authorization"), request.remote)

    return (
        Routes()
        .add(r"/v1/reports", post=Endpoint(post, check=check_post, screen=screen, takes_body=True))
        .add(r"/v1/reports/(.*)", get=Endpoint(status, screen=screen))
        .add(r"/v1/cases/([^/]+)", get=Endpoint(case, screen=screen))
        .add(r"/v1/cases/([^/]+)/chart\.svg", get=Endpoint(chart, screen=screen))
        .add(r"/v1/health", get=Endpoint(health, light=True))
    )


class IntakeServer:
    """The intake's routes on a :class:`~intelmq_nsm.web.server.WebServer` of their own."""

    def __init__(self, service: IntakeService, host: str, port: int, limits: Limits = None):
        limits = limits or Limits(
            body_timeout=service.config.body_timeout, max_body_bytes=service.config.max_body_bytes
        )
        self.web = WebServer(intake_routes(service), host, port, limits, service.logger, name="nsm-intake")

    @property
    def port(self) -> int:
        return self.web.port

    def start(self) -> "IntakeServer":
        self.web.start()
        return self

    def stop(self) -> None:
        self.web.stop()
