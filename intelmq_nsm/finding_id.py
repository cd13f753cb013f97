"""The finding id: a stable name for *the thing reported*, independent of when it was seen.

``extra.nsm.finding_id`` is written by the report parser and, for events from other
parsers, computed by the digest output from the same fields. Two rescans of one system in
one case get the same id; another case, host, port or transport gets another. The
definitions (with examples) are in ``harmonization/finding-id.md``. The first rule, for
vulnerable systems, is the one researchers' findings have always had:

    finding_id = "nf1-" + sha256("nsm-finding/1" NUL scope NUL target NUL port NUL transport)[:32]

- scope: the case id (``extra.nsm.case_id``); without one, the sorted CVE ids of
  ``product.vulnerabilities``; without those, ``classification.identifier``.
- target: ``source.ip`` in its normal form; without it ``source.fqdn``; without it the host
  of ``source.url`` (lower case, without a trailing dot).
- port: ``source.port``; without it the port of ``source.url`` (explicit, else the
  scheme's default); else empty.
- transport: ``protocol.transport`` in lower case, ``tcp`` when unset (every scanner of
  web services the formats know reports TCP; a rescan that leaves it out must still match).

The second rule (:func:`identity`) names a finding by its kind of abuse
(:mod:`intelmq_nsm.abuse_kinds`); ``nf1-`` ids keep their meaning, so no ledger breaks:

- vulnerable or exposed with an ``nf1-`` scope: the first rule, as above;
- compromised or misbehaving: *what* (the case; else ``malware.name``; else
  ``classification.identifier``; else the type) and *which host*, never a port: feeds of
  sinkholes and botnets put the infected client's ephemeral port in ``source.port``, and
  one infected host is one finding whatever connection it made;
- vulnerable or exposed without a scope: the type as *what*, host, service port, transport.

    finding_id = "nf2-" + sha256("nsm-finding/2" NUL kind NUL what NUL target NUL port NUL transport)[:32]

Plain Python: no IntelMQ needed, so the output and the CLI can use it on any mapping.
"""

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Optional
from urllib.parse import urlsplit

from intelmq_nsm import abuse_kinds
from intelmq_nsm import event_contract as ec

PREFIX = "nf1-"
VERSION_TAG = b"nsm-finding/1"
#: The second rule: a finding named by its kind of abuse (see :func:`identity`).
KIND_PREFIX = "nf2-"
KIND_VERSION_TAG = b"nsm-finding/2"
#: The fields an operator can set (a parser's mapping, IntelMQ's modify expert) that say
#: *what* a finding is, and *where*.
WHAT_FIELDS = (
    "classification.type",
    "classification.identifier",
    "malware.name",
    "product.vulnerabilities",
    ec.CASE_ID,
)
WHERE_FIELDS = ("source.ip", "source.fqdn", "source.url")
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ssh": 22, "ldap": 389, "ldaps": 636, "smtp": 25, "imap": 143}


class MissingField(ValueError):
    """The event lacks what a finding id needs; ``field`` names the field (for the dump)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def scope_of(event: Mapping) -> str:
    case_id = event.get(ec.CASE_ID)
    if case_id:
        return f"case:{case_id}"
    vulnerabilities = event.get("product.vulnerabilities")
    if vulnerabilities:
        ids = sorted({v.strip().lower() for v in str(vulnerabilities).split(";") if v.strip()})
        if ids:
            return "cve:" + ",".join(ids)
    identifier = event.get("classification.identifier")
    if identifier:
        return f"id:{identifier}"
    raise MissingField(
        ec.CASE_ID, "a finding id needs a case id, product.vulnerabilities or classification.identifier; none is set"
    )


def target_of(event: Mapping, harmonised: bool = False) -> tuple:
    """``(target, port)`` of the event: the normalised address or host name, and its port.
    With ``harmonised`` the event's ``source.ip`` is taken as it is: IntelMQ's
    harmonization already stores it as ``str(ipaddress.ip_address(...))``, and parsing an
    address again was the larger part of the id's cost."""
    url = event.get("source.url")
    parts = urlsplit(str(url)) if url else None
    port = event.get("source.port")
    if port is None and parts is not None:
        try:
            port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        except ValueError:
            port = None
    ip = event.get("source.ip")
    if ip and harmonised:
        return str(ip), port
    if ip:
        try:
            return ipaddress.ip_address(str(ip)).compressed, port
        except ValueError:
            raise MissingField("source.ip", f"{ip!r} is not an IP address") from None
    fqdn = event.get("source.fqdn") or (parts.hostname if parts is not None else None)
    if fqdn:
        return str(fqdn).lower().rstrip("."), port
    raise MissingField(
        "source.ip",
        "a finding needs the host it is about: " + ", ".join(WHERE_FIELDS[:-1]) + " or source.url; none is set",
    )


def finding_id(event: Mapping, harmonised: bool = False) -> str:
    """The finding id of an event (any mapping of IntelMQ's flat keys); raises MissingField.
    ``harmonised``: the values were checked by IntelMQ's harmonization (see ``target_of``)."""
    scope = scope_of(event)
    target, port = target_of(event, harmonised)
    transport = str(event.get("protocol.transport") or "tcp").lower()
    return _digest(PREFIX, VERSION_TAG, (scope, target, "" if port is None else str(int(port)), transport))


def existing_or_computed(event: Mapping) -> tuple:
    """``(finding id, computed)``: the event's own ``extra.nsm.finding_id`` when it has one."""
    given: Optional[str] = event.get(ec.FINDING_ID)
    if given:
        return given, False
    return finding_id(event), True


def _digest(prefix: str, tag: bytes, pieces) -> str:
    digest = hashlib.sha256(tag)
    for piece in pieces:
        digest.update(b"\0" + piece.encode("utf-8"))
    return prefix + digest.hexdigest()[:32]


def what_of(event: Mapping, kind: str) -> str:
    """What the finding is, for the second rule: the case, else (compromised or misbehaving)
    the malware or identifier, else the type; raises MissingField naming what can be set."""
    case_id = event.get(ec.CASE_ID)
    if case_id:
        return f"case:{case_id}"
    if kind in abuse_kinds.SEEN_BY_FEEDS:
        # The same family from two feeds (one as malware.name, one as the identifier) is one thing.
        for key in ("malware.name", "classification.identifier"):
            value = event.get(key)
            if value:
                return str(value).strip().lower()
    kind_type = event.get("classification.type")
    if kind_type:
        return f"type:{kind_type}"
    identifier = event.get("classification.identifier")
    if identifier:
        return f"id:{identifier}"
    raise MissingField(
        "classification.type",
        "a finding needs to say what it is: " + ", ".join(WHAT_FIELDS) + "; none is set",
    )


def service_port(event: Mapping, kind: str, port) -> Optional[int]:
    """``port`` (the event's, see :func:`target_of`) when it is a service port of the host:
    always for vulnerable and exposed systems; for compromised and misbehaving ones only
    when the host was found serving on it (``abuse_kinds.SERVING_TYPES``, and no destination: an
    event with a destination is a connection the host made)."""
    if port is None or kind not in abuse_kinds.SEEN_BY_FEEDS:
        return port
    if event.get("classification.type") in abuse_kinds.SERVING_TYPES and not any(
        event.get(k) for k in ("destination.ip", "destination.fqdn", "destination.port", "destination.url")
    ):
        return port
    return None


def identity(event: Mapping, kind: str, harmonised: bool = False) -> tuple:
    """``(finding id, target, service port)`` of an event of ``kind``; raises MissingField.

    Vulnerable and exposed findings that the first rule names keep its ``nf1-`` id;
    everything else is named by the second rule (see the module's doc)."""
    target, port = target_of(event, harmonised)
    port = service_port(event, kind, port)
    if kind not in abuse_kinds.SEEN_BY_FEEDS:
        try:
            scope = scope_of(event)
        except MissingField:
            scope = None
        if scope is not None:
            transport = str(event.get("protocol.transport") or "tcp").lower()
            pieces = (scope, target, "" if port is None else str(int(port)), transport)
            return _digest(PREFIX, VERSION_TAG, pieces), target, port
        transport = str(event.get("protocol.transport") or "tcp").lower()
        pieces = (kind, what_of(event, kind), target, "" if port is None else str(int(port)), transport)
        return _digest(KIND_PREFIX, KIND_VERSION_TAG, pieces), target, port
    pieces = (kind, what_of(event, kind), target, "", "")
    return _digest(KIND_PREFIX, KIND_VERSION_TAG, pieces), target, port
