"""From an IntelMQ event (as a flat dict) to the findings a digest lists, one per organisation."""

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

from intelmq_nsm import event_contract as ec
from intelmq_nsm import finding_id as fid
from intelmq_nsm import tlp as traffic_light
from intelmq_nsm.constituency import preferences


class FindingError(ValueError):
    """The event cannot be delivered: ``field`` is missing or wrong for ``reason``."""

    def __init__(self, field: str, value, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"Field {field!r} with value {value!r}: {reason}.")


#: The columns of one finding in a digest, in the order CSV and text show them. ``kind``
#: (new, reminder, reopened, fixed), ``first_seen``, ``last_seen`` and ``times_seen`` come
#: from the finding ledger when the output spools the finding; ``tlp`` is the finding's
#: TLP 2.0 label (its case's, else the output's default).
COLUMNS = (
    "kind",
    "finding_id",
    "time",
    "ip",
    "port",
    "fqdn",
    "url",
    "cves",
    "severity",
    "product",
    "case_id",
    "case_title",
    "case_url",
    "recommendation",
    "classification",
    "description",
    "first_seen",
    "last_seen",
    "times_seen",
    "role",
    "tlp",
)
#: The ledger's columns, empty until the output fills them.
LEDGER_COLUMNS = ("kind", "first_seen", "last_seen", "times_seen")
NOT_VULNERABLE = "not-vulnerable"
#: What an organisation owns of a finding (``role`` in ``extra.nsm.organisations``).
ROLES = ("service", "network", "asn")


@dataclass(frozen=True)
class Finding:
    """One row of a digest for one organisation."""

    event_hash: str
    organisation: dict
    constituency: str
    case_id: str
    row: dict
    finding_id: str = ""
    #: False for a rescan's not-vulnerable result: never presented as a vulnerability.
    vulnerable: bool = True
    target: str = ""
    #: The registry matches that routed the event to this organisation (``extra.nsm.matches``).
    matches: tuple = ()
    #: A finding a hub forwarded: the hub's finding id and instance (``extra.nsm.upstream``).
    upstream_finding_id: str = ""
    upstream_instance: str = ""


def _get(event: dict, key: str):
    """Read ``key`` from a flat event, or from the ``extra`` dict of a flat-but-nested one."""
    if key in event:
        return event[key]
    if key.startswith("extra.") and isinstance(event.get("extra"), dict):
        return event["extra"].get(key[len("extra.") :])
    return None


def event_hash(event: dict) -> str:
    """A hash of the whole event: the same message delivered twice hashes the same."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _product(event: dict) -> str:
    parts = [_get(event, f"product.{k}") for k in ("vendor", "name", "version")]
    return " ".join(str(p) for p in parts if p) or (_get(event, "product.full_name") or "")


def tlp_of(event: dict, default: str = traffic_light.DEFAULT) -> str:
    """The event's TLP 2.0 label: ``extra.nsm.tlp``, else IntelMQ's ``tlp`` (1.0), else
    ``default``; raises FindingError naming a field that holds no TLP label."""
    for key in (ec.TLP, "tlp"):
        value = _get(event, key)
        if value not in (None, ""):
            try:
                return traffic_light.normalise(value)
            except ValueError as exc:
                raise FindingError(key, value, str(exc)) from None
    return traffic_light.normalise(default)


def finding_row(event: dict, default_tlp: str = traffic_light.DEFAULT) -> dict:
    """The columns of :data:`COLUMNS` for one event; absent values are empty strings."""
    cves = _get(event, "product.vulnerabilities") or ""
    classification = "/".join(
        str(v) for v in (_get(event, "classification.type"), _get(event, "classification.identifier")) if v
    )
    row = {
        "finding_id": _get(event, ec.FINDING_ID),
        "time": _get(event, "time.source") or _get(event, "time.observation"),
        "ip": _get(event, "source.ip"),
        "port": _get(event, "source.port"),
        "fqdn": _get(event, "source.fqdn"),
        "url": _get(event, "source.url"),
        "cves": ";".join(c.strip().upper() for c in str(cves).split(";") if c.strip()),
        "severity": _get(event, "severity"),
        "product": _product(event),
        "case_id": _get(event, ec.CASE_ID),
        "case_title": _get(event, ec.CASE_TITLE),
        "case_url": _get(event, "event_description.url"),
        "recommendation": _get(event, ec.RECOMMENDATION),
        "classification": classification,
        "description": _get(event, "event_description.text"),
        "role": None,  # per organisation: see findings_of()
        "tlp": tlp_of(event, default_tlp),
    }
    row.update(dict.fromkeys(LEDGER_COLUMNS))
    return {k: "" if v is None else v for k, v in row.items()}


#: The fields a finding id is computed from (see intelmq_nsm.finding_id).
ID_FIELDS = (
    ec.FINDING_ID,
    ec.CASE_ID,
    "product.vulnerabilities",
    "classification.identifier",
    "source.ip",
    "source.fqdn",
    "source.url",
    "source.port",
    "protocol.transport",
)


def identify(event: dict) -> str:
    """The event's finding id: its own ``extra.nsm.finding_id``, else computed from the same
    fields by the same rule as the parser's; raises FindingError naming what is missing."""
    fields = {k: v for k in ID_FIELDS if (v := _get(event, k)) not in (None, "")}
    try:
        return fid.existing_or_computed(fields)[0]
    except fid.MissingField as exc:
        raise FindingError(exc.field, fields.get(exc.field), exc.reason) from None


def target(event: dict) -> str:
    """Where the finding is, as the ledger shows it: ``host`` or ``host:port``; "" for an
    event without an address (one that brought its own finding id)."""
    try:
        host, port = fid.target_of(
            {k: _get(event, k) for k in ("source.ip", "source.fqdn", "source.url", "source.port")}
        )
    except fid.MissingField:
        return ""
    return host if port is None else f"{host}:{port}"


def case_id_of(event: dict) -> str:
    """The event's case id (``extra.nsm.case_id``), "" without one."""
    return str(_get(event, ec.CASE_ID) or "")


def constituency_of(event: dict, constituency: Optional[str] = None) -> str:
    """The event's ``constituency``; raises FindingError when it has none or, with
    ``constituency`` given (an output serves one), another one: a routing error."""
    value = _get(event, "constituency")
    if not value:
        raise FindingError("constituency", value, "is missing, so the event was not routed to this output")
    if constituency and value != constituency:
        raise FindingError("constituency", value, f"differs from this output's constituency {constituency!r}")
    return value


def vulnerable(event: dict) -> bool:
    """False when the scan said the system is not (any more) vulnerable."""
    value = _get(event, ec.RESULT)
    if value in (None, "", "vulnerable"):
        return True
    if value == NOT_VULNERABLE:
        return False
    raise FindingError(ec.RESULT, value, "must be vulnerable or not-vulnerable")


def _decoded(event: dict, key: str, what: str):
    """The value of ``key``, decoded when it came as JSON text (an event whose ``extra`` an
    output kept as a string); raises FindingError when that text is not JSON."""
    value = _get(event, key)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise FindingError(key, value, f"is not a JSON {what}") from None


def _organisations(event: dict) -> list:
    organisations = _decoded(event, ec.ORGANISATIONS, "list")
    if not organisations:
        raise FindingError(
            ec.ORGANISATIONS, organisations, "is missing or empty, so no organisation can receive this finding"
        )
    if not isinstance(organisations, list):
        raise FindingError(ec.ORGANISATIONS, organisations, "is not a list of organisations")
    for org in organisations:
        if not isinstance(org, dict) or not isinstance(org.get("id"), str) or not org["id"].strip():
            raise FindingError(ec.ORGANISATIONS, org, "an organisation has no 'id'")
    return organisations


def findings_of(event: dict, constituency: Optional[str] = None, tlp: str = traffic_light.DEFAULT) -> list:
    """The findings of one event: one per organisation it names; ``tlp`` is the label of
    a finding whose event carries none (the output's ``tlp`` parameter).

    Raises :class:`FindingError` when the event has no constituency, a constituency other
    than ``constituency`` (if given: a digest bot serves one constituency, so anything else
    is a routing error), or no organisations. Such an event must not be delivered and must
    not vanish either; the bot dumps it.
    """
    value = constituency_of(event, constituency)
    organisations = _organisations(event)
    finding = identify(event)
    is_vulnerable = vulnerable(event)
    digest = event_hash(event)
    row = finding_row(event, tlp)
    row["finding_id"] = finding
    where = target(event)
    case_id = str(row["case_id"] or "")
    matches = _matches(event)
    upstream_id, upstream_instance = upstream_of(event)
    seen = set()
    result = []
    for org in organisations:
        if org["id"] in seen:
            continue
        seen.add(org["id"])
        organisation = {
            "id": org["id"],
            "name": org.get("name") or org["id"],
            "kind": org.get("kind") or "other",
            "contacts": [c for c in org.get("contacts") or [] if isinstance(c, str)],
            **_preferences(org),
        }
        mine = tuple(m for m in matches if m.get("organisation") == org["id"])
        role = org.get("role") if org.get("role") in ROLES else ""
        result.append(
            Finding(
                digest,
                organisation,
                value,
                case_id,
                dict(row, role=role),
                finding,
                is_vulnerable,
                where,
                mine,
                upstream_id,
                upstream_instance,
            )
        )
    return result


def upstream_of(event: dict) -> tuple:
    """``(the hub's finding id, the hub's instance)`` of a finding a hub forwarded
    (``extra.nsm.upstream``, as the CERT's forwarded-event parser wrote it), else ``("", "")``."""
    upstream = _decoded(event, ec.UPSTREAM, "object")
    if not upstream:
        return "", ""
    if not isinstance(upstream, dict):
        raise FindingError(ec.UPSTREAM, upstream, "is not an object")
    values = []
    for key, limit in (("finding_id", 64), ("instance", 200)):
        value = upstream.get(key) or ""
        if not isinstance(value, str) or len(value) > limit:
            raise FindingError(ec.UPSTREAM, upstream, f"its {key} is not a string of at most {limit} characters")
        values.append(value)
    return tuple(values)


def _preferences(org: dict) -> dict:
    """The organisation's language, channel, pace and OpenPGP key as the registry gave them;
    a value the registry would have refused is an error naming it."""
    try:
        return preferences.parse(org, check_files=False)
    except preferences.PreferenceError as exc:
        reason = f"organisation {org['id']!r}: {exc}"
        raise FindingError(ec.ORGANISATIONS, org.get(exc.field.split(".")[0]), reason) from None


def _matches(event: dict) -> list:
    """``extra.nsm.matches`` as a list of objects; anything else counts as no matches (they
    only inform a later dispute, they never decide delivery)."""
    matches = _get(event, ec.MATCHES)
    if isinstance(matches, str):
        try:
            matches = json.loads(matches)
        except json.JSONDecodeError:
            return []
    return [m for m in matches if isinstance(m, dict)] if isinstance(matches, list) else []
