"""The finding id: a stable name for *the vulnerable thing*, independent of when it was scanned.

``extra.nsm.finding_id`` is written by the report parser and, for events from other
parsers, computed by the digest output from the same fields. Two rescans of one system in
one case get the same id; another case, host, port or transport gets another. The
definition (with examples) is in ``harmonization/finding-id.md``:

    finding_id = "nf1-" + sha256("nsm-finding/1" NUL scope NUL target NUL port NUL transport)[:32]

- scope: the case id (``extra.nsm.case_id``); without one, the sorted CVE ids of
  ``product.vulnerabilities``; without those, ``classification.identifier``.
- target: ``source.ip`` in its normal form; without it ``source.fqdn``; without it the host
  of ``source.url`` (lower case, without a trailing dot).
- port: ``source.port``; without it the port of ``source.url`` (explicit, else the
  scheme's default); else empty.
- transport: ``protocol.transport`` in lower case, ``tcp`` when unset (every scanner of
  web services the formats know reports TCP; a rescan that leaves it out must still match).

Plain Python: no IntelMQ needed, so the output and the CLI can use it on any mapping.
"""

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Optional
from urllib.parse import urlsplit

from intelmq_nsm import event_contract as ec

PREFIX = "nf1-"
VERSION_TAG = b"nsm-finding/1"
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
    raise MissingField("source.ip", "a finding id needs source.ip, source.fqdn or source.url; none is set")


def finding_id(event: Mapping, harmonised: bool = False) -> str:
    """The finding id of an event (any mapping of IntelMQ's flat keys); raises MissingField.
    ``harmonised``: the values were checked by IntelMQ's harmonization (see ``target_of``)."""
    scope = scope_of(event)
    target, port = target_of(event, harmonised)
    transport = str(event.get("protocol.transport") or "tcp").lower()
    digest = hashlib.sha256(VERSION_TAG)
    for piece in (scope, target, "" if port is None else str(int(port)), transport):
        digest.update(b"\0" + piece.encode("utf-8"))
    return PREFIX + digest.hexdigest()[:32]


def existing_or_computed(event: Mapping) -> tuple:
    """``(finding id, computed)``: the event's own ``extra.nsm.finding_id`` when it has one."""
    given: Optional[str] = event.get(ec.FINDING_ID)
    if given:
        return given, False
    return finding_id(event), True
