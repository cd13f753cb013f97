"""The IBD's systems answer: ``POST /v1/feedback``, and the OpenAPI document of the service.

The ticket system sends ``{finding_id, organisation, state, comment, reference}`` as JSON
with a Bearer token from its own token file (the intake's format and verifier: salted
scrypt hashes at rest). ``reference`` (the ticket's number) makes the call idempotent:
the same reference with the same answer again is answered ``200`` with
``"duplicate": true`` and recorded once; with another answer it is a ``409``. Every
answer is JSON; every refusal changes nothing.
"""

import json
from importlib import resources

import jsonschema

from intelmq_nsm.feedback import answers, outcomes
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.web import nesting, ratelimit
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.refusal import Refusal

SCHEMA_NAME = "nsm-feedback-1.schema.json"
#: The largest feedback taken: one answer needs far less than the service's cap (which a
#: hub's batches of CERTs' changes need).
MAX_FEEDBACK_BYTES = 64 * 1024


def schema() -> dict:
    return json.loads(resources.files("intelmq_nsm").joinpath("schemas", SCHEMA_NAME).read_text(encoding="utf-8"))


def openapi(base_url: str, limits) -> dict:
    """The service's OpenAPI 3.1 document (the JSON Schemas of a feedback and of a CERT's
    outcomes inline), with the service's ``limits``."""
    max_body = min(MAX_FEEDBACK_BYTES, limits.max_body_size)
    body = schema()
    body.pop("$schema", None)
    body.pop("$id", None)
    error = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
        },
    }
    result = {
        "type": "object",
        "required": ["finding_id", "organisation", "state", "previous_state", "reference", "duplicate"],
        "properties": {
            "finding_id": {"type": "string"},
            "organisation": {"type": "string"},
            "state": {"type": "string", "enum": list(answers.API_STATES)},
            "previous_state": {"type": ["string", "null"]},
            "recorded_at": {"type": "number", "description": "Unix time of the recorded answer."},
            "reference": {"type": "string"},
            "duplicate": {"type": "boolean"},
        },
    }

    def refusal(text):
        return {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "intelmq-nsm feedback service",
            "version": "1",
            "description": "Owners answer findings through signed links (HTML pages at /feedback); the IBD's "
            "ticket system reports answers through POST /v1/feedback; at a hub, downstream CERTs report what "
            "became of the findings forwarded to them through POST /v1/outcomes.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Feedback": body, "Result": result, "Error": error, "Outcomes": outcomes.openapi_schema()},
        },
        "paths": {
            "/v1/feedback": {
                "post": {
                    "summary": "Record an answer about a finding from the ticket system.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feedback"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "Recorded.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}},
                        },
                        "200": {
                            "description": "This reference was recorded before with the same answer; nothing new.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}},
                        },
                        "400": refusal("The body is not valid JSON or not a valid feedback."),
                        "401": refusal("No valid Bearer token."),
                        "404": refusal("The ledger has no such finding for this organisation."),
                        "409": refusal("The reference was used before for another answer."),
                        "411": refusal("No Content-Length."),
                        "413": refusal(f"The body is larger than {max_body} bytes."),
                        "415": refusal("The body is not application/json."),
                        "429": refusal("Too many requests or failed authentications."),
                        "503": refusal("The ledger or the token file is not available."),
                    },
                }
            },
            "/v1/outcomes": outcomes.openapi_path(refusal, limits.max_body_size, limits.max_batch_items),
            "/v1/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OK"}}}},
        },
    }
    if base_url:
        document["servers"] = [{"url": base_url.rstrip("/")}]
    return document


class FeedbackAPI:
    """``POST /v1/feedback`` (Bearer token of the ticket system) and ``GET /v1/openapi.json``."""

    def __init__(self, context: ServiceContext):
        self.context = context
        self.validator = jsonschema.Draft202012Validator(schema())

    def screen(self, request: Request) -> None:
        if self.context.ticket_tokens is not None:
            self.context.ticket_tokens.screen(request)

    def check(self, request: Request) -> None:
        """Before the body: the address's rate limit, then the ticket system's token."""
        self.context.throttle.request(f"api {ratelimit.address(request.remote)}")
        if self.context.ticket_tokens is None:
            raise Refusal(503, "not_configured", "This service takes no feedback from systems: it has no token file.")
        request.context = self.context.ticket_tokens.authenticate(request)

    def feedback(self, request: Request) -> dict:
        """The body's feedback document, valid by the schema (the web stack checked its size,
        UTF-8 and depth)."""
        try:
            document = json.loads(request.text)
        except ValueError as exc:
            raise Refusal(400, "invalid_json", f"The body is not valid JSON: {exc}.", [("$", str(exc))]) from None
        problems = [
            ("$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path), e.message)
            for e in sorted(self.validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
        ]
        if problems:
            raise Refusal(400, "invalid_feedback", "The feedback is not valid.", problems)
        return document

    def post(self, request: Request) -> Response:
        entry, document = request.context, self.feedback(request)
        try:
            created, result = self.context.store.api_answer(
                entry.researcher,
                document["finding_id"],
                document["organisation"],
                document["state"],
                document.get("comment", ""),
                document["reference"],
            )
        except answers.UnknownFinding:
            raise Refusal(
                404,
                "unknown_finding",
                "The ledger has no such finding for this organisation.",
                [("$.finding_id", "unknown")],
            ) from None
        except answers.ConflictingReference:
            raise Refusal(
                409,
                "conflicting_reference",
                "This reference was recorded before with another answer.",
                [("$.reference", "used before for another answer")],
            ) from None
        if created:
            self.context.logger.info(
                "%s reported %s for finding %s of %s (reference %s).",
                entry.researcher,
                result["state"],
                result["finding_id"],
                result["organisation"],
                result["reference"],
            )
        return Response.json(201 if created else 200, {**result, "duplicate": not created})

    def document(self, request: Request) -> Response:
        config = self.context.config
        return Response.json(200, openapi(config.base_url, config.limits))

    def add_to(self, routes: Routes) -> None:
        feedback = Endpoint(
            self.post,
            check=self.check,
            screen=self.screen,
            media_types=("application/json",),
            max_body=MAX_FEEDBACK_BYTES,
            text=True,
            max_depth=nesting.MAX_DEPTH,
        )
        routes.add(r"/v1/feedback", post=feedback)
        routes.add(r"/v1/openapi\.json", get=Endpoint(self.document, light=True))
