"""A hub's ``POST /v1/outcomes``: downstream CERTs report what became of the findings the hub
forwarded to them.

The body is ``nsm-outcomes/1`` (``harmonization/nsm-outcomes.schema.json``): the CERT's
instance name and its changes, oldest first, each with its change id (``<instance>/<ledger>/
<history id>``), the hub's finding id, the new state, its time, the CERT's source, the
CERT's organisation (a name only where the CERT shares names) and a note. A Bearer token
from the service's ``cert_tokens_file`` authenticates the CERT; the token is bound to one
constituency key (``intelmq-nsm tokens add --constituency ibd``), and the changes are
applied with the source ``cert:<key>`` only to findings the hub recorded as forwarded to
that constituency (its ledger's records with org ``cert:<key>``).

The answer is ``200`` with a result per change: ``applied``, ``duplicate`` (that change id
was applied before: a batch sent twice is applied once) or ``refused`` with a reason
(``not_forwarded``, ``invalid``, ``unknown_state``), which the CERT keeps for its
operators and never sends again. What the web stack refuses (size, media type, depth,
token) and a body that is no ``nsm-outcomes/1`` at all is refused whole, changing nothing.
"""

import datetime
import json
from importlib import resources

import jsonschema

from intelmq_nsm.digest.ledger import STATES, LedgerUnavailable
from intelmq_nsm.digest.ledger.downstream import Reported
from intelmq_nsm.digest.ledger.schema import CERT_SOURCE
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.web import nesting, ratelimit
from intelmq_nsm.web.app import Endpoint, Request, Response, Routes
from intelmq_nsm.web.refusal import Refusal

FORMAT = "nsm-outcomes/1"
RESULT_FORMAT = "nsm-outcomes-result/1"
SCHEMA_NAME = "nsm-outcomes-1.schema.json"
#: Refused changes named one by one in the log at most, per batch.
LOGGED = 5


def schema() -> dict:
    return json.loads(resources.files("intelmq_nsm").joinpath("schemas", SCHEMA_NAME).read_text(encoding="utf-8"))


def json_path(path) -> str:
    """``$.changes[3].state`` from a JSON Schema error's path."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def instant(text: str) -> float:
    """Unix time of an ISO 8601 time that names its zone; ValueError otherwise."""
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("it names no time zone")
    return value.timestamp()


def source_of(constituency: str) -> str:
    """The source a CERT's changes have at the hub: ``cert:<constituency key>``."""
    return f"{CERT_SOURCE}{constituency}"


def refused(change, reason: str, message: str, problems=()) -> dict:
    result = {"change_id": change.get("change_id") if isinstance(change, dict) else None, "status": "refused"}
    result.update(reason=reason, message=message)
    if problems:
        result["problems"] = [{"path": path, "reason": why} for path, why in problems]
    return result


def read_changes(changes: list, problems: dict) -> tuple:
    """``(changes, results)``: the valid changes as :class:`Reported` with their places, and
    a result per change (None where it is to be applied). ``problems``: index → the schema's
    ``(path, reason)`` for that change."""
    valid, results = [], []
    for index, change in enumerate(changes):
        if index in problems:
            results.append(refused(change, "invalid", "The change is not valid.", problems[index]))
            continue
        if change["state"] not in STATES:
            where = [(f"$.changes[{index}].state", f"the hub knows no state {change['state']!r}")]
            results.append(refused(change, "unknown_state", "The hub knows no such state.", where))
            continue
        try:
            at = instant(change["at"])
        except ValueError as exc:
            where = [(f"$.changes[{index}].at", f"not an ISO 8601 time with a zone: {exc}")]
            results.append(refused(change, "invalid", "The change is not valid.", where))
            continue
        organisation = change["organisation"]
        reported = Reported(
            change["change_id"],
            change["finding_id"],
            change["state"],
            at,
            organisation["id"],
            organisation.get("name", ""),
            change.get("source", ""),
            change.get("note", ""),
        )
        valid.append((index, reported))
        results.append(None)
    return valid, results


class OutcomesAPI:
    """``POST /v1/outcomes`` (Bearer token of a downstream CERT, bound to its constituency)."""

    def __init__(self, context: ServiceContext):
        self.context = context
        self.validator = jsonschema.Draft202012Validator(schema())

    def screen(self, request: Request) -> None:
        if self.context.cert_tokens is not None:
            self.context.cert_tokens.screen(request)

    def check(self, request: Request) -> None:
        """Before the body: the address's rate limit, then the CERT's token and its constituency."""
        self.context.throttle.request(f"outcomes {ratelimit.address(request.remote)}")
        if self.context.cert_tokens is None:
            raise Refusal(
                503, "not_configured", "This service takes no outcomes from CERTs: it has no cert_tokens_file."
            )
        entry = self.context.cert_tokens.authenticate(request)
        if not entry.constituency:
            self.context.logger.warning(
                "Token %s (%s) is not bound to a constituency and was refused for outcomes.", entry.id, entry.researcher
            )
            raise Refusal(
                403,
                "not_a_cert_token",
                "This token is not bound to a constituency; a CERT's token is made with tokens add --constituency.",
            )
        request.context = entry

    def document(self, request: Request) -> dict:
        """The body as ``nsm-outcomes/1`` with its changes (each change is checked on its own)."""
        try:
            document = json.loads(request.text)
        except ValueError as exc:
            raise Refusal(400, "invalid_json", f"The body is not valid JSON: {exc}.", [("$", str(exc))]) from None
        limit = self.context.config.limits.max_batch_items
        if isinstance(document, dict) and isinstance(document.get("changes"), list):
            if len(document["changes"]) > limit:
                raise Refusal(
                    413,
                    "too_many_changes",
                    f"The body holds {len(document['changes'])} changes; this hub takes at most {limit} at once.",
                    [("$.changes", f"more than {limit} items")],
                )
        return document

    def problems(self, document) -> tuple:
        """``(of the body as a whole, per change index)``: the schema's ``(path, reason)``."""
        whole, per_change = [], {}
        for error in sorted(self.validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
            path = list(error.absolute_path)
            entry = (json_path(path), error.message)
            if len(path) >= 2 and path[0] == "changes" and isinstance(path[1], int):
                per_change.setdefault(path[1], []).append(entry)
            else:
                whole.append(entry)
        return whole, per_change

    def post(self, request: Request) -> Response:
        entry, document = request.context, self.document(request)
        whole, per_change = self.problems(document)
        if whole:
            raise Refusal(400, "invalid_outcomes", f"The body is not {FORMAT}.", whole)
        source, instance = source_of(entry.constituency), document["instance"]
        valid, results = read_changes(document["changes"], per_change)
        try:
            applied = self.context.store.ledger.apply_reported(source, instance, [r for _, r in valid])
        except LedgerUnavailable as exc:
            self.context.logger.warning("Outcomes of %s wait: the ledger cannot be reached: %s.", source, exc)
            raise Refusal(
                503,
                "unavailable",
                "The hub's ledger cannot be reached now; nothing was applied. Try again later.",
                headers=ratelimit.retry_after(10),
            ) from None
        for (index, reported), status in zip(valid, applied):
            if status == "not_forwarded":
                results[index] = refused(
                    {"change_id": reported.change_id},
                    "not_forwarded",
                    f"The hub forwarded no finding {reported.finding_id} to {entry.constituency}.",
                    [(f"$.changes[{index}].finding_id", "not forwarded to this CERT")],
                )
            else:
                results[index] = {"change_id": reported.change_id, "status": status}
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("applied", "duplicate", "refused")}
        self.log(source, instance, counts, results)
        body = {"format": RESULT_FORMAT, "instance": instance, **counts, "results": results}
        return Response.json(200, body)

    def log(self, source: str, instance: str, counts: dict, results: list) -> None:
        self.context.logger.info(
            "%s (%s) reported %d changes: %d applied, %d duplicates, %d refused.",
            source,
            instance,
            len(results),
            counts["applied"],
            counts["duplicate"],
            counts["refused"],
        )
        for result in [r for r in results if r["status"] == "refused"][:LOGGED]:
            self.context.logger.warning(
                "A change of %s (%s) was refused: %s (%s).",
                source,
                result["change_id"],
                result["message"],
                result["reason"],
            )

    def add_to(self, routes: Routes) -> None:
        outcomes = Endpoint(
            self.post,
            check=self.check,
            screen=self.screen,
            media_types=("application/json",),
            text=True,
            max_depth=nesting.MAX_DEPTH,
        )
        routes.add(r"/v1/outcomes", post=outcomes)


def openapi_path(refusal, max_body: int, max_items: int) -> dict:
    """``/v1/outcomes`` in the service's OpenAPI document (``refusal(text)``: an error answer)."""
    result = {
        "type": "object",
        "required": ["format", "instance", "applied", "duplicate", "refused", "results"],
        "properties": {
            "format": {"const": RESULT_FORMAT},
            "instance": {"type": "string"},
            "applied": {"type": "integer"},
            "duplicate": {"type": "integer"},
            "refused": {"type": "integer"},
            "results": {
                "type": "array",
                "description": "One per change, in the body's order.",
                "items": {
                    "type": "object",
                    "required": ["change_id", "status"],
                    "properties": {
                        "change_id": {"type": ["string", "null"]},
                        "status": {"enum": ["applied", "duplicate", "refused"]},
                        "reason": {"enum": ["not_forwarded", "invalid", "unknown_state"]},
                        "message": {"type": "string"},
                        "problems": {"type": "array"},
                    },
                },
            },
        },
    }
    return {
        "post": {
            "summary": "A downstream CERT reports the changes of the findings this hub forwarded to it.",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outcomes"}}},
            },
            "responses": {
                "200": {
                    "description": "Each change applied, a duplicate of one applied before, or refused (with why).",
                    "content": {"application/json": {"schema": result}},
                },
                "400": refusal(f"The body is not valid JSON or not {FORMAT} (``problems`` name the JSON path)."),
                "401": refusal("No valid Bearer token."),
                "403": refusal("The token is not bound to a constituency."),
                "411": refusal("No Content-Length."),
                "413": refusal(f"The body is larger than {max_body} bytes, or holds more than {max_items} changes."),
                "415": refusal("The body is not application/json."),
                "429": refusal("Too many requests or failed authentications."),
                "503": refusal("The ledger or the token file is not available, or no cert_tokens_file is set."),
            },
        }
    }


def openapi_schema() -> dict:
    """The ``nsm-outcomes/1`` JSON Schema, for the OpenAPI document's components."""
    body = schema()
    body.pop("$schema", None)
    body.pop("$id", None)
    # OpenAPI components resolve "#/..." from the document's root: the change's definition inline.
    change = body.pop("$defs")["change"]
    body["properties"]["changes"]["items"] = change
    return body
