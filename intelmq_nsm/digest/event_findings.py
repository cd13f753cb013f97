"""From an IntelMQ event (as a flat dict) to the findings a digest lists, one per organisation."""

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

from intelmq_nsm import abuse_kinds
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
#: (new, reminder, reopened, fixed, not-seen), ``first_seen``, ``last_seen`` and
#: ``times_seen`` come from the finding ledger when the output spools the finding; ``tlp``
#: is the finding's TLP 2.0 label (its case's, else the output's default).
#: ``kind_of_abuse``: vulnerable, compromised, misbehaving or exposed
#: (:mod:`intelmq_nsm.abuse_kinds`); ``port`` is a service port of the host, ``client_port``
#: the port a compromised or misbehaving host connected from (a sinkhole's, a honeypot's
#: view: ephemeral, but with the time it tells a NAT's operator who it was);
#: ``destination`` what it connected to; ``feed`` who saw it (``feed.provider``,
#: ``feed.name``); ``case_url`` is the finding's own ``event_description.url`` (else its
#: feed's ``feed.documentation``).
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
    "malware",
    "client_port",
    "destination",
    "case_id",
    "case_title",
    "case_url",
    "recommendation",
    "classification",
    "kind_of_abuse",
    "description",
    "feed",
    "first_seen",
    "last_seen",
    "times_seen",
    "role",
    "tlp",
)
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
    #: Who speaks for the finding (:func:`reporter_of`).
    reporter: str = ""
    #: A finding a hub forwarded: ``(the hub's finding id, the hub's instance)``; () if not.
    upstream: tuple = ()
    #: vulnerable, compromised, misbehaving or exposed (:mod:`intelmq_nsm.abuse_kinds`).
    kind_of_abuse: str = abuse_kinds.DEFAULT
    #: The report the event came from (:func:`report_of`): one observation per report.
    report: str = ""


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


def _feed(fields: dict) -> str:
    """Who saw it: ``feed.provider``, ``feed.name`` (one when they are the same)."""
    provider, name = fields.get("feed.provider"), fields.get("feed.name")
    if provider and name and provider != name:
        return f"{provider} / {name}"
    return str(provider or name or "")


def _destination(fields: dict) -> str:
    """What the host connected to: address (else host name), and port."""
    host = fields.get("destination.ip") or fields.get("destination.fqdn") or ""
    port = fields.get("destination.port")
    if host and port is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(host or (f"port {port}" if port is not None else ""))


#: The fields of an event the digest output reads (one pass over the event: see _fields).
ROW_FIELDS = (
    ec.FINDING_ID,
    "time.source",
    "time.observation",
    "source.ip",
    "source.port",
    "source.fqdn",
    "source.url",
    "product.vulnerabilities",
    "product.vendor",
    "product.name",
    "product.version",
    "product.full_name",
    "severity",
    "malware.name",
    "destination.ip",
    "destination.fqdn",
    "destination.port",
    "destination.url",
    ec.CASE_ID,
    ec.CASE_TITLE,
    "event_description.url",
    "event_description.text",
    "feed.documentation",
    ec.RECOMMENDATION,
    "classification.taxonomy",
    "classification.type",
    "classification.identifier",
    "feed.provider",
    "feed.name",
    "feed.code",
    "feed.url",
    "protocol.transport",
    ec.SUBMISSION_ID,
    ec.KIND,
    *abuse_kinds.IMPLANT_FIELDS,
)


def event_fields(event: dict, keys=ROW_FIELDS) -> dict:
    """The event's non-empty values of ``keys``, flat (a flat-but-nested event's ``extra``
    read too)."""
    if isinstance(event.get("extra"), dict):
        return {k: v for k in keys if (v := _get(event, k)) not in (None, "")}
    get = event.get
    return {k: v for k in keys if (v := get(k)) is not None and v != ""}


def finding_row(
    event: dict, default_tlp: str = traffic_light.DEFAULT, kind: Optional[str] = None, fields=None, service=...
) -> dict:
    """The columns of :data:`COLUMNS` for one event; absent values are empty strings.
    ``kind``: its kind of abuse, if known (else from its classification); ``fields`` and
    ``service`` (its service port): what :func:`findings_of` read of it already."""
    fields = event_fields(event) if fields is None else fields
    kind = kind or abuse_kinds.kind_of(fields)
    port = fields.get("source.port")
    if service is ...:
        service = fid.service_port(fields, kind, port)
    cves = fields.get("product.vulnerabilities")
    kind_type, identifier = fields.get("classification.type"), fields.get("classification.identifier")
    product = " ".join(str(fields[k]) for k in ("product.vendor", "product.name", "product.version") if k in fields)
    row = {
        "kind": "",
        "finding_id": fields.get(ec.FINDING_ID, ""),
        "time": fields.get("time.source") or fields.get("time.observation", ""),
        "ip": fields.get("source.ip", ""),
        "port": "" if service is None else service,
        "fqdn": fields.get("source.fqdn", ""),
        "url": fields.get("source.url", ""),
        "cves": ";".join(c.strip().upper() for c in str(cves).split(";") if c.strip()) if cves else "",
        "severity": fields.get("severity", ""),
        "product": product or fields.get("product.full_name", ""),
        "malware": fields.get("malware.name", ""),
        "client_port": "" if service is not None or port is None else port,
        "destination": _destination(fields),
        "case_id": fields.get(ec.CASE_ID, ""),
        "case_title": fields.get(ec.CASE_TITLE, ""),
        # Its own information link: the event's, else its feed's documentation (what the
        # report it came from is about).
        "case_url": fields.get("event_description.url") or fields.get("feed.documentation", ""),
        "recommendation": fields.get(ec.RECOMMENDATION, ""),
        "classification": f"{kind_type}/{identifier}" if kind_type and identifier else (kind_type or identifier or ""),
        "kind_of_abuse": kind,
        "description": fields.get("event_description.text", ""),
        "feed": _feed(fields),
        "first_seen": "",
        "last_seen": "",
        "times_seen": "",
        "role": "",  # per organisation: see findings_of()
        "tlp": tlp_of(event, default_tlp),
    }
    return row


#: The fields that name the report an event came from (see report_of).
REPORT_FIELDS = (ec.SUBMISSION_ID, "feed.provider", "feed.name", "feed.url", "time.observation")


def kind_of_abuse(event: dict, rules=None, fields=None) -> str:
    """The event's kind of abuse (see intelmq_nsm.abuse_kinds); raises FindingError for an
    ``extra.nsm.kind`` that names none. ``rules``: the output's ``kinds_of_abuse``, checked."""
    try:
        return abuse_kinds.kind_of(event_fields(event) if fields is None else fields, rules)
    except abuse_kinds.UnknownKind as exc:
        raise FindingError(exc.field, exc.value, str(exc)) from None


def identify(event: dict, kind: Optional[str] = None) -> str:
    """The event's finding id: its own ``extra.nsm.finding_id``, else computed by the rule
    of its kind of abuse (see intelmq_nsm.finding_id); raises FindingError naming what is
    missing and which fields could say it."""
    fields = event_fields(event)
    return identity_of(fields, kind or kind_of_abuse(event, fields=fields))[0]


def identity_of(fields: dict, kind: str) -> tuple:
    """``(finding id, where, service port)``: the id (the event's own, else computed), the
    host (with its service port) the finding is about as the ledger keeps it, and that port."""
    given = fields.get(ec.FINDING_ID)
    try:
        if given:
            try:
                host, port = fid.target_of(fields)
            except fid.MissingField:
                return given, "", None  # an event that brought its own finding id
            port = fid.service_port(fields, kind, port)
        else:
            given, host, port = fid.identity(fields, kind)
    except fid.MissingField as exc:
        raise FindingError(exc.field, fields.get(exc.field), exc.reason) from None
    return given, host if port is None else f"{host}:{port}", port


def report_of(event: dict, fields=None) -> str:
    """The report an event came from: the intake's submission, else the feed and the time
    its collector made the report (IntelMQ copies ``time.observation`` from the report to
    each of its events). Events of one report are one observation of a finding; "" when
    nothing names the report (each event is then an observation of its own)."""
    fields = event_fields(event) if fields is None else fields
    if ec.SUBMISSION_ID in fields:
        key = f"submission\x1f{fields[ec.SUBMISSION_ID]}"
    elif "time.observation" in fields:
        key = "\x1f".join(str(fields.get(k, "")) for k in REPORT_FIELDS[1:])
    else:
        return ""
    # Short: the ledger keeps it with every finding, and only asks whether it is the same.
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()


def reporter_of(event: dict) -> str:
    """Who speaks for the event's findings: the owner of its case as the intake knew it
    (``extra.nsm.case_owner``), else the feed's provider, else its name ("" for none)."""
    for key in (ec.CASE_OWNER, "feed.provider", "feed.name"):
        value = _get(event, key)
        if value not in (None, ""):
            return str(value)
    return ""


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


def findings_of(event: dict, constituency: Optional[str] = None, tlp: str = traffic_light.DEFAULT, kinds=None) -> list:
    """The findings of one event: one per organisation it names; ``tlp`` is the label of
    a finding whose event carries none (the output's ``tlp`` parameter); ``kinds`` the
    output's ``kinds_of_abuse`` rules (checked by :func:`intelmq_nsm.abuse_kinds.check_rules`).

    Raises :class:`FindingError` when the event has no constituency, a constituency other
    than ``constituency`` (if given: a digest bot serves one constituency, so anything else
    is a routing error), or no organisations. Such an event must not be delivered and must
    not vanish either; the bot dumps it.
    """
    value = constituency_of(event, constituency)
    organisations = _organisations(event)
    fields = event_fields(event)  # one pass over the event for what follows
    kind = kind_of_abuse(event, kinds, fields)
    finding, where, service = identity_of(fields, kind)
    is_vulnerable = vulnerable(event)
    digest = event_hash(event)
    row = finding_row(event, tlp, kind, fields, service)
    row["finding_id"] = finding
    report = report_of(event, fields)
    case_id = str(row["case_id"] or "")
    matches = _matches(event)
    reporter = reporter_of(event)
    came_from = upstream(event)
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
                reporter,
                came_from,
                kind,
                report,
            )
        )
    return result


#: The longest hub finding id and instance name the ledger keeps.
MAX_UPSTREAM = 200


def upstream(event: dict) -> tuple:
    """``(the hub's finding id, the hub's instance)`` of a finding a hub forwarded
    (``extra.nsm.upstream``), () for the CERT's own; raises FindingError for a value no hub
    sends (the forwarded-event parser lets none through)."""
    value = _decoded(event, ec.UPSTREAM, "object")
    if value in (None, "", {}):
        return ()
    if not isinstance(value, dict):
        raise FindingError(ec.UPSTREAM, value, "is not an object")
    found = []
    for key, required in (("finding_id", True), ("instance", False)):
        part = value.get(key, None if required else "")
        if not isinstance(part, str) or (required and not part.strip()) or len(part) > MAX_UPSTREAM:
            least = 1 if required else 0
            reason = f"its {key} must be a text of {least} to {MAX_UPSTREAM} characters"
            raise FindingError(f"{ec.UPSTREAM}.{key}", part, reason)
        found.append(part)
    return tuple(found)


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
