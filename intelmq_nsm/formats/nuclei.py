"""nuclei's JSON-lines output (``nuclei -jsonl``), one ``ResultEvent`` per line.

Field names follow nuclei's ``pkg/output/output.go`` (``ResultEvent``) and
``pkg/model`` (``Info``, ``Classification``): ``template-id``, ``info.name``,
``info.severity``, ``info.classification.cve-id`` (a string or a list, nuclei's
StringSlice), ``host``, ``port`` (a string), ``scheme``, ``url``, ``matched-at``, ``ip``,
``type``, ``timestamp`` (RFC 3339 with nanoseconds), ``matcher-status``,
``extracted-results``, ``matcher-name``, ``error`` (a failed request, with ``-ms``). Request and
response dumps are not mapped.
"""

import ipaddress
import json
from collections.abc import Iterator
from typing import Optional
from urllib.parse import urlsplit

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats.case import cve_ids, require_address, truncate
from intelmq_nsm.formats.lines import iter_lines
from intelmq_nsm.formats.record import NOT_VULNERABLE, TOO_DEEP, NotAFinding, Record, RecordError

#: nuclei's severities (pkg/model/types/severity) → IntelMQ 3.5 severity.
SEVERITY = {
    "info": "info",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
    "unknown": "undefined",
}
# nuclei's protocol type of a result → transport and (without a scheme) application.
_TRANSPORT = {"http": "tcp", "network": "tcp", "tcp": "tcp", "ssl": "tcp", "websocket": "tcp", "headless": "tcp"}
_APPLICATION = {"dns": "dns", "ssl": "tls", "whois": "whois"}


def iter_records(text: str) -> Iterator:
    """Yield one :class:`Record` per non-blank line; ``data`` is the decoded object."""
    number = 0
    for line in iter_lines(text.lstrip("\ufeff")):
        stripped = line.strip()
        if not stripped:
            continue
        number += 1
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            yield Record(number, stripped, error=RecordError("line", f"is not valid JSON: {exc}"))
            continue
        except RecursionError:
            yield Record(number, stripped, error=RecordError("line", f"is {TOO_DEEP}"))
            continue
        if not isinstance(data, dict):
            yield Record(number, stripped, error=RecordError("line", "is not a JSON object"))
            continue
        yield Record(number, stripped, data)


def _text(data: dict, key: str, container: str = "") -> Optional[str]:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RecordError(container + key, f"is a {type(value).__name__}, not a string")
    return value


def _strings(value, field: str) -> list:
    """nuclei's StringSlice: a string, a list of strings, or nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise RecordError(field, "is neither a string nor a list of strings")


def _host(value: str) -> tuple:
    """nuclei's host is a name or address, in newer versions sometimes a URL or host:port."""
    if "://" in value:
        parts = urlsplit(value)
        return parts.hostname, parts.port
    try:
        return str(ipaddress.ip_address(value.strip("[]"))), None
    except ValueError:
        pass
    name, _, port = value.rpartition(":")
    if name and port.isdigit():
        return name.strip("[]"), int(port)
    return value, None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def map_record(data: dict, evidence_limit: int) -> dict:
    """One nuclei result → IntelMQ fields. A non-match (``matcher-status`` false, written
    with ``-ms``) is a not-vulnerable result; one that failed to scan (it carries an
    ``error``, e.g. a timeout) says nothing about the system and raises NotAFinding."""
    not_vulnerable = data.get("matcher-status") is False
    if not_vulnerable and data.get("error"):
        raise NotAFinding()
    template_id = _text(data, "template-id")
    if not template_id:
        raise RecordError("template-id", "is missing")
    info = data.get("info") or {}
    if not isinstance(info, dict):
        raise RecordError("info", "is not an object")
    classification = info.get("classification") or {}
    if not isinstance(classification, dict):
        raise RecordError("info.classification", "is not an object")

    fields = {ec.TEMPLATE_ID: template_id, "classification.identifier": template_id}
    name = _text(info, "name", "info.")
    if name:
        fields["event_description.text"] = name
    severity = (_text(info, "severity", "info.") or "unknown").lower()
    if severity not in SEVERITY:
        raise RecordError("info.severity", f"{severity[:40]!r} is not a nuclei severity")
    fields["severity"] = SEVERITY[severity]
    cves = cve_ids(_strings(classification.get("cve-id"), "info.classification.cve-id"))
    if cves:
        fields["product.vulnerabilities"] = ";".join(cves)
    remediation = _text(info, "remediation", "info.")
    if remediation:
        fields[ec.RECOMMENDATION] = truncate(remediation, evidence_limit)
    metadata = info.get("metadata") if isinstance(info.get("metadata"), dict) else {}
    for key, field in (("vendor", "product.vendor"), ("product", "product.name")):
        if isinstance(metadata.get(key), str) and metadata[key]:
            fields[field] = metadata[key]

    ip = _text(data, "ip")
    host = _text(data, "host")
    port = _text(data, "port")
    if ip:
        fields["source.ip"] = ip
    if host:
        hostname, host_port = _host(host)
        if hostname and _is_ip(hostname.strip("[]")):
            fields.setdefault("source.ip", hostname.strip("[]"))
        elif hostname:
            fields["source.fqdn"] = hostname
        if host_port and not port:
            port = str(host_port)
    matched = _text(data, "matched-at")
    url = _text(data, "url")
    for candidate in (matched, url):
        if candidate and "://" in candidate:
            fields["source.url"] = candidate
            break
    if port:
        if not port.isdigit():
            raise RecordError("port", f"{port[:40]!r} is not a port number")
        fields["source.port"] = int(port)
    scheme = _text(data, "scheme")
    kind = (_text(data, "type") or "").lower()
    if scheme or kind in _APPLICATION:
        fields["protocol.application"] = (scheme or _APPLICATION[kind]).lower()
    if kind in _TRANSPORT:
        fields["protocol.transport"] = _TRANSPORT[kind]
    timestamp = _text(data, "timestamp")
    if timestamp:
        fields["time.source"] = timestamp
    if not_vulnerable:
        fields[ec.RESULT] = NOT_VULNERABLE
    evidence = []
    if _text(data, "matcher-name"):
        evidence.append(f"matcher {data['matcher-name']}")
    evidence.extend(_strings(data.get("extracted-results"), "extracted-results"))
    if evidence:
        fields[ec.EVIDENCE] = truncate("; ".join(evidence), evidence_limit)
    require_address(fields)
    return fields
