"""A digest as JSON (for REST), CSV (the e-mail attachment) and text a person reads."""

import csv
import datetime
import io
import json
import re

import jinja2

from intelmq_nsm.digest.findings import COLUMNS

LANGUAGES = ("nl", "en")
#: A spreadsheet takes a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMAT_VERSION = "nsm-digest/1"
#: Per language, what a finding's ``role`` says about the organisation's part in it.
ROLE_TEXT = {
    "nl": {"service": "uw dienst", "network": "uw netwerk", "asn": "uw AS"},
    "en": {"service": "your service", "network": "a system in your network", "asn": "a system in your AS"},
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("intelmq_nsm", "templates"),
    # Plain text mail bodies: nothing to escape, and the templates are ours.
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "xml")),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def as_document(digest) -> dict:
    """The digest as the JSON document a REST endpoint receives."""
    return {
        "format": FORMAT_VERSION,
        "id": digest.id,
        "created": _iso(digest.created),
        "constituency": digest.constituency,
        "organisation": {k: digest.organisation.get(k) for k in ("id", "name", "kind")},
        "count": len(digest.findings),
        "findings": [{c: f.get(c, "") for c in COLUMNS} for f in digest.findings],
    }


def to_json(digest) -> bytes:
    """Canonical JSON bytes: the exact body that is signed and sent."""
    return json.dumps(as_document(digest), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def neutralise(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(digest) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for finding in digest.findings:
        writer.writerow([neutralise(finding.get(c, "")) for c in COLUMNS])
    return out.getvalue()


def _one_line(value) -> str:
    """Event values inside a line of text or a header: no line breaks, no control characters."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", "" if value is None else str(value)).strip()


def _where(finding: dict) -> str:
    """Address, port, host name and URL of a finding on one line."""
    address = _one_line(finding.get("ip"))
    if finding.get("port"):
        address += f":{finding['port']}"
    parts = [address, _one_line(finding.get("fqdn")), _one_line(finding.get("url"))]
    return "  ".join(p for p in parts if p)


def _details(finding: dict, labels: dict) -> str:
    """``label: value`` for the finding's non-empty columns among ``labels``."""
    return "  ".join(f"{label}: {_one_line(finding[c])}" for c, label in labels.items() if finding.get(c))


_env.filters["one_line"] = _one_line
_env.globals.update(where=_where, details=_details)


def _cases(digest) -> list:
    """The cases in the digest with their context, in order of first appearance."""
    cases = {}
    for finding in digest.findings:
        key = finding.get("case_id") or ""
        case = cases.setdefault(
            key,
            {
                "id": key,
                "title": finding.get("case_title") or "",
                "url": finding.get("case_url") or "",
                "recommendation": finding.get("recommendation") or "",
                "findings": [],
            },
        )
        case["findings"].append(finding)
    return list(cases.values())


def to_text(digest, language: str = "nl") -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}.")
    return _env.get_template(f"digest-{language}.txt.j2").render(
        digest=digest,
        organisation=digest.organisation,
        created=_iso(digest.created),
        cases=_cases(digest),
        count=len(digest.findings),
        roles=ROLE_TEXT[language],
    )


def subject(digest, language: str = "nl") -> str:
    name = _one_line(digest.organisation.get("name") or digest.organisation.get("id"))
    count = len(digest.findings)
    tag = digest.constituency.upper()
    if language == "en":
        return f"[{tag}] {count} vulnerable {'system' if count == 1 else 'systems'} reported for {name}"
    return f"[{tag}] {count} {'kwetsbaar systeem' if count == 1 else 'kwetsbare systemen'} gemeld voor {name}"
