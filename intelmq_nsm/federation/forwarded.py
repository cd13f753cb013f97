"""What a hub forwarded, as a sectoral CERT's instance reads it: untrusted input.

IntelMQ's AMQP collector at the CERT (``expect_intelmq_message: false``) makes a report of
each message whose raw is the hub's event as IntelMQ's AMQP output exported it (one JSON
object, flat keys). The forwarded-event parser hands that body here:

1. :func:`read`: at most ``max_bytes``, UTF-8, one JSON object without repeated keys, valid
   against the forwarded-event schema (``intelmq_nsm/schemas/forwarded-event-1.schema.json``,
   linked from ``harmonization/forwarded-event.schema.json``); else
   :class:`ForwardedEventError` naming the field and the reason;
2. :func:`kept_fields`: the observation: every field but the hub's routing decision
   (:data:`ROUTING`), its feed (``feed.*``: the CERT's event has the connection's feed, as
   the collector set it) and what the CERT writes itself (:data:`REPLACED`);
3. :func:`upstream`: the hub's provenance for ``extra.nsm.upstream``.

The parser then checks each kept value with IntelMQ's harmonization and computes the
CERT's own finding id. See ``harmonization/federation.md``.
"""

import copy
import json
import re
from functools import cache, lru_cache
from typing import Optional

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats.schema import package_schema

SCHEMA_RESOURCE = "forwarded-event-1.schema.json"
#: The largest body the parser reads by default (its ``max_event_size``): an event is a
#: few KB; a hub's raw record with long evidence a few hundred.
MAX_BYTES = 1_048_576
#: The hub's routing decision: the CERT routes by its own registry (it may disagree).
ROUTING = ("constituency", ec.ORGANISATIONS, ec.MATCHES, ec.TIE, ec.REGISTRY_VERSION)
#: What the CERT writes itself: its own finding id, the hub's provenance (a hub's own
#: upstream is not the CERT's concern), the message type of IntelMQ's export, and ``raw``
#: (the parser's event has the whole message as its raw, as any parser's has its input).
REPLACED = (ec.FINDING_ID, ec.UPSTREAM, "__type", "raw")
#: The hub's feed fields kept under ``extra.nsm.upstream.reporter``.
REPORTER = {
    "feed_name": "feed.name",
    "feed_provider": "feed.provider",
    "feed_code": "feed.code",
    "feed_accuracy": "feed.accuracy",
}
# Reasons quote the offending value; a long field must not become a long log line.
_SHOWN = 80
#: The document itself, where no field is to blame (not an object, too many fields).
WHOLE = "event"
NOT_A_NAME = "is not a field name IntelMQ allows"


class ForwardedEventError(ValueError):
    """A forwarded event the CERT does not take: ``field`` is wrong for ``reason``."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"field {field!r} {reason}")


def shown(value) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def read(body: bytes, max_bytes: int = MAX_BYTES) -> dict:
    """The hub's event from a message body; raises ForwardedEventError."""
    if len(body) > max_bytes:
        raise ForwardedEventError("raw", f"is {len(body)} bytes, more than the {max_bytes} a forwarded event may have")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ForwardedEventError("raw", f"is not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _Repeated as exc:
        raise ForwardedEventError(exc.args[0], "appears more than once") from None
    except ValueError as exc:
        raise ForwardedEventError("raw", f"is not JSON: {str(exc)[:200]}") from None
    found = problems(document)
    if found:
        raise ForwardedEventError(*found[0])
    return document


class _Repeated(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise _Repeated(key)
        result[key] = value
    return result


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def load_schema() -> dict:
    """The forwarded-event JSON Schema (a fresh copy)."""
    return copy.deepcopy(_schema())


def _schema() -> dict:
    return package_schema(SCHEMA_RESOURCE)


def _checked_schema() -> dict:
    """The schema without ``propertyNames`` (see :func:`_names`) and with its local
    references put in place: resolving a "$ref" for each field was a third of jsonschema's
    cost per event."""
    schema = _schema()
    checked = {key: value for key, value in schema.items() if key != "propertyNames"}
    return _in_place(checked, schema.get("$defs", {}))


@cache
def _validator():
    # jsonschema is imported here: only a CERT's parser needs it.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_checked_schema())


@cache
def _accepts():
    """The schema compiled to Python code by fastjsonschema: the check every forwarded event
    passes, about 20 times faster than jsonschema's (8 against 165 µs per event), which
    was a third of the parser's own work per finding. It only says yes or no,
    and tells the first error only; jsonschema, the reference, explains a refusal (every
    error, by field) and decides where the two would disagree (:func:`problems`)."""
    import fastjsonschema

    check = fastjsonschema.compile(_checked_schema())

    def accepts(document: dict) -> bool:
        try:
            check(document)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return accepts


@cache
def _names():
    """The schema's own rule for field names (``propertyNames``: a pattern and a length),
    compiled once: jsonschema's descent into every name of every event was half of the
    validation's cost. The names are checked here first, the rest by jsonschema."""
    rule = _schema()["propertyNames"]
    return re.compile(rule["pattern"]), rule["maxLength"]


@lru_cache(maxsize=4096)
def _good_name(name: str) -> bool:
    # Remembered: every event repeats the same few dozen names; bounded, since a hostile
    # hub may send a new name in every event.
    pattern, longest = _names()
    return len(name) <= longest and pattern.search(name) is not None


def _in_place(node, definitions: dict):
    """``node`` with every ``{"$ref": "#/$defs/NAME"}`` replaced by that definition."""
    if isinstance(node, dict):
        if set(node) == {"$ref"} and node["$ref"].startswith("#/$defs/"):
            return _in_place(definitions[node["$ref"][len("#/$defs/") :]], definitions)
        return {key: _in_place(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_in_place(value, definitions) for value in node]
    return node


def problems(document) -> list:
    """``(field, reason)`` of everything the schema refuses in ``document``, field by field
    in order; empty when it is a forwarded event."""
    if not isinstance(document, dict):
        return [(WHOLE, f"is not a JSON object but {type(document).__name__}")]
    found = [(name[:_SHOWN], NOT_A_NAME) for name in document if not _good_name(name)]
    if found:
        return found
    if _accepts()(document):
        return []
    # Refused: jsonschema says why, field by field (and finds nothing where the two differ,
    # e.g. 443.0 as an integer: then the event is taken, as jsonschema alone would).
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [_problem(error, document) for error in errors]


def _problem(error, document: dict) -> tuple:
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in document]
        return missing[0], "is missing"
    if error.validator == "anyOf" and not error.absolute_path:
        return "source.ip", "is missing: a forwarded event needs source.ip, source.fqdn or source.url"
    if error.validator in ("maxProperties", "minProperties") and not error.absolute_path:
        return WHOLE, f"has {len(document)} fields; a forwarded event has 1 to {_schema()['maxProperties']}"
    field = str(error.absolute_path[0]) if error.absolute_path else WHOLE
    value = document.get(field, error.instance)
    if error.validator in ("pattern", "enum", "const"):
        return field, f"{shown(value)} is not an accepted value"
    if error.validator in ("maxLength", "maxItems", "maxProperties"):
        return field, f"is larger than the schema allows ({error.validator} {error.validator_value})"
    return field, f"{shown(value)} is not accepted: {error.message[:200]}"


def kept_fields(hub_event: dict) -> dict:
    """The fields of the hub's event the CERT keeps, by name: the observation."""
    dropped = set(ROUTING) | set(REPLACED)
    return {
        key: value
        for key, value in sorted(hub_event.items())
        if key not in dropped and not key.startswith("feed.") and value is not None
    }


def upstream(hub_event: dict, instance: Optional[str], forwarded_at: Optional[str], finding_id: str) -> dict:
    """``extra.nsm.upstream`` of an event from ``hub_event``: the hub's instance name (the
    connection's, as the CERT configured it), its finding id (``finding_id`` when the hub
    sent none: the same rule on the same fields gives the hub's), case id and reporter
    (the hub's ``feed.*``), and when it came over the connection. Keys absent when unknown."""
    reporter = {key: hub_event[field] for key, field in REPORTER.items() if hub_event.get(field) is not None}
    result = {
        "instance": instance,
        "finding_id": hub_event.get(ec.FINDING_ID) or finding_id,
        "case_id": hub_event.get(ec.CASE_ID),
        "reporter": reporter or None,
        "forwarded_at": forwarded_at,
    }
    return {key: value for key, value in result.items() if value}
