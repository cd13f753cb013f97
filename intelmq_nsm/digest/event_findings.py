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


def _feed(event: dict) -> str:
    """Who saw it: ``feed.provider``, ``feed.name`` (one when they are the same)."""
    parts = [str(p) for p in (_get(event, "feed.provider"), _get(event, "feed.name")) if p]
    return " / ".join(dict.fromkeys(parts))


def _destination(event: dict) -> str:
    """What the host connected to: address (else host name), and port."""
    host = _get(event, "destination.ip") or _get(event, "destination.fqdn") or ""
    port = _get(event, "destination.port")
    if host and port not in (None, ""):
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(host or (f"port {port}" if port not in (None, "") else ""))


def finding_row(event: dict, default_tlp: str = traffic_light.DEFAULT, kind: Optional[str] = None) -> dict:
    """The columns of :data:`COLUMNS` for one event; absent values are empty strings.
    ``kind``: its kind of abuse, if known (else from its classification)."""
    cves = _get(event, "product.vulnerabilities") or ""
    classification = "/".join(
        str(v) for v in (_get(event, "classification.type"), _get(event, "classification.identifier")) if v
    )
    kind = kind or kind_of_abuse(event)
    port = _get(event, "source.port")
    service = fid.service_port(_fields(event, SERVICE_FIELDS), kind, port)
    row = {
        "kind_of_abuse": kind,
        "finding_id": _get(event, ec.FINDING_ID),
        "time": _get(event, "time.source") or _get(event, "time.observation"),
        "ip": _get(event, "source.ip"),
        "port": service,
        "fqdn": _get(event, "source.fqdn"),
        "url": _get(event, "source.url"),
        "cves": ";".join(c.strip().upper() for c in str(cves).split(";") if c.strip()),
        "severity": _get(event, "severity"),
        "product": _product(event),
        "malware": _get(event, "malware.name"),
        "client_port": port if service is None else None,
        "destination": _destination(event),
        "case_id": _get(event, ec.CASE_ID),
        "case_title": _get(event, ec.CASE_TITLE),
        # Its own information link: the event's, else its feed's documentation (what the
        # report it came from is about).
        "case_url": _get(event, "event_description.url") or _get(event, "feed.documentation"),
        "recommendation": _get(event, ec.RECOMMENDATION),
        "classification": classification,
        "description": _get(event, "event_description.text"),
        "feed": _feed(event),
        "role": None,  # per organisation: see findings_of()
        "tlp": tlp_of(event, default_tlp),
    }
    row.update(dict.fromkeys(LEDGER_COLUMNS))
    return {k: "" if v is None else v for k, v in row.items()}


#: The fields that decide whether a port is a service port (see intelmq_nsm.finding_id).
SERVICE_FIELDS = ("classification.type", "destination.ip", "destination.fqdn", "destination.port", "destination.url")
#: The fields a finding id is computed from (see intelmq_nsm.finding_id).
ID_FIELDS = (
    ec.FINDING_ID,
    ec.CASE_ID,
    "product.vulnerabilities",
    "classification.identifier",
    "classification.type",
    "malware.name",
    "source.ip",
    "source.fqdn",
    "source.url",
    "source.port",
    "protocol.transport",
    *SERVICE_FIELDS[1:],
)
#: The fields a kind of abuse is decided from (see intelmq_nsm.abuse_kinds).
KIND_FIELDS = tuple(dict.fromkeys((*abuse_kinds.FIELDS, *abuse_kinds.IMPLANT_FIELDS, *abuse_kinds.RULE_FIELDS)))
#: The fields that name the report an event came from (see report_of).
REPORT_FIELDS = (ec.SUBMISSION_ID, "feed.provider", "feed.name", "feed.url", "time.observation")


def _fields(event: dict, keys) -> dict:
    return {k: v for k in keys if (v := _get(event, k)) not in (None, "")}


def kind_of_abuse(event: dict, rules=None) -> str:
    """The event's kind of abuse (see intelmq_nsm.abuse_kinds); raises FindingError for an
    ``extra.nsm.kind`` that names none. ``rules``: the output's ``kinds_of_abuse``, checked."""
    try:
        return abuse_kinds.kind_of(_fields(event, KIND_FIELDS), rules)
    except abuse_kinds.UnknownKind as exc:
        raise FindingError(exc.field, exc.value, str(exc)) from None


def identify(event: dict, kind: Optional[str] = None) -> str:
    """The event's finding id: its own ``extra.nsm.finding_id``, else computed by the rule
    of its kind of abuse (see intelmq_nsm.finding_id); raises FindingError naming what is
    missing and which fields could say it."""
    return _identity(event, kind or kind_of_abuse(event))[0]


def _identity(event: dict, kind: str) -> tuple:
    """``(finding id, where)``: the id (the event's own, else computed) and the host (with
    its service port) the finding is about, as the ledger keeps it."""
    fields = _fields(event, ID_FIELDS)
    given = fields.get(ec.FINDING_ID)
    try:
        if given:
            try:
                host, port = fid.target_of(fields)
            except fid.MissingField:
                return given, ""  # an event that brought its own finding id
            port = fid.service_port(fields, kind, port)
            return given, host if port is None else f"{host}:{port}"
        finding, host, port = fid.identity(fields, kind)
    except fid.MissingField as exc:
        raise FindingError(exc.field, fields.get(exc.field), exc.reason) from None
    return finding, host if port is None else f"{host}:{port}"


def report_of(event: dict) -> str:
    """The report an event came from: the intake's submission, else the feed and the time
    its collector made the report (IntelMQ copies ``time.observation`` from the report to
    each of its events). Events of one report are one observation of a finding; "" when
    nothing names the report (each event is then an observation of its own)."""
    fields = _fields(event, REPORT_FIELDS)
    if ec.SUBMISSION_ID in fields:
        return f"submission:{fields[ec.SUBMISSION_ID]}"
    if "time.observation" not in fields:
        return ""
    canonical = json.dumps([fields.get(k) for k in REPORT_FIELDS[1:]], default=str)
    return "report:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def vulnerable(event: dict) -> bool:
    """False when the scan said the system is not (any more) vulnerable."""
    value = _get(event, ec.RESULT)
    if value in (None, "", "vulnerable"):
        return True
    if value == NOT_VULNERABLE:
        return False
    raise FindingError(ec.RESULT, value, "must be vulnerable or not-vulnerable")


def _organisations(event: dict) -> list:
    organisations = _get(event, ec.ORGANISATIONS)
    if isinstance(organisations, str):
        try:
            organisations = json.loads(organisations)
        except json.JSONDecodeError:
            raise FindingError(ec.ORGANISATIONS, organisations, "is not a JSON list") from None
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
    value = _get(event, "constituency")
    if not value:
        raise FindingError("constituency", value, "is missing, so the event was not routed to this output")
    if constituency and value != constituency:
        raise FindingError("constituency", value, f"differs from this output's constituency {constituency!r}")
    organisations = _organisations(event)
    kind = kind_of_abuse(event, kinds)
    finding, where = _identity(event, kind)
    is_vulnerable = vulnerable(event)
    digest = event_hash(event)
    row = finding_row(event, tlp, kind)
    row["finding_id"] = finding
    report = report_of(event)
    case_id = str(row["case_id"] or "")
    matches = _matches(event)
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
                kind,
                report,
            )
        )
    return result


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
