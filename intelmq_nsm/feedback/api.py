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

from intelmq_nsm.feedback import answers
from intelmq_nsm.intake import nesting
from intelmq_nsm.intake.tokens import TokenFileError, VerifierBusy
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.refusal import Refusal

MAX_BODY_BYTES = 64 * 1024
SCHEMA_NAME = "nsm-feedback-1.schema.json"


def schema() -> dict:
    return json.loads(resources.files("intelmq_nsm").joinpath("schemas", SCHEMA_NAME).read_text(encoding="utf-8"))


def openapi(base_url: str = "") -> dict:
    """The service's OpenAPI 3.1 document (the JSON Schema of a feedback inline)."""
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
            "ticket system reports answers through POST /v1/feedback.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Feedback": body, "Result": result, "Error": error},
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
                        "413": refusal(f"The body is larger than {MAX_BODY_BYTES} bytes."),
                        "415": refusal("The body is not application/json."),
                        "429": refusal("Too many requests or failed authentications."),
                        "503": refusal("The ledger or the token file is not available."),
                    },
                }
            },
            "/v1/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OK"}}}},
        },
    }
    if base_url:
        document["servers"] = [{"url": base_url.rstrip("/")}]
    return document


def add_routes(routes: Routes, context) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    store, logger = context.store, context.logger

    def authenticate(request: Request):
        wait = max(context.failures.wait(request.remote), context.limiter.take(f"api {request.remote}"))
        if wait:
            raise Refusal(
                429,
                "rate_limited",
                f"Too many requests or failed authentications; try again in {wait:.0f} s.",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        if context.verifier is None:
            raise Refusal(503, "not_configured", "This service takes no feedback from systems: it has no token file.")
        scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else None
        try:
            entry, reason = context.verifier.verify(token)
        except TokenFileError:
            logger.error(
                "Feedback from systems is refused until the token file is mended: %s", context.verifier.problem
            )
            raise Refusal(503, "server_misconfigured", "The service's token file has a problem.") from None
        except VerifierBusy:
            raise Refusal(503, "busy", "Too many token checks at once; try again shortly.") from None
        if entry is None:
            context.failures.take(request.remote)
            raise Refusal(401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="nsm-feedback"'})
        return entry

    def check(request: Request) -> None:
        request.context = authenticate(request)
        media = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            raise Refusal(415, "unsupported_media_type", "Send the feedback as application/json.")
        if request.length is None:
            raise Refusal(411, "length_required", "Send a Content-Length.")
        if request.length > MAX_BODY_BYTES:
            raise Refusal(413, "too_large", f"A feedback is at most {MAX_BODY_BYTES} bytes.")

    def post(request: Request) -> Response:
        entry = request.context
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal(400, "invalid_encoding", f"The body is not valid UTF-8 (byte {exc.start}).") from None
        if nesting.max_depth(text) > nesting.MAX_DEPTH:
            raise Refusal(400, "too_deeply_nested", f"The body nests deeper than {nesting.MAX_DEPTH} levels.")
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise Refusal(400, "invalid_json", f"The body is not valid JSON: {exc}.", [("$", str(exc))]) from None
        problems = [
            ("$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path), e.message)
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
        ]
        if problems:
            raise Refusal(400, "invalid_feedback", "The feedback is not valid.", problems)
        try:
            created, result = store.api_answer(
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
            logger.info(
                "%s reported %s for finding %s of %s (reference %s).",
                entry.researcher,
                result["state"],
                result["finding_id"],
                result["organisation"],
                result["reference"],
            )
        return Response.json(201 if created else 200, {**result, "duplicate": not created})

    def document(request: Request) -> Response:
        return Response.json(200, openapi(context.config.base_url))

    routes.add(r"/v1/feedback", post=Endpoint(post, check=check, takes_body=True))
    routes.add(r"/v1/openapi\.json", get=Endpoint(document, light=True))
