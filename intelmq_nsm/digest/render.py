"""A digest as JSON (for REST), CSV (the e-mail attachment) and text a person reads.

The text is laid out by kind of abuse (compromised, misbehaving, vulnerable, exposed: see
:mod:`intelmq_nsm.abuse_kinds`), each with what it means and what to do, then by kind of
notice (new, reopened, reminder, fixed, not seen), then by case (or by the feed that saw
the findings). A group's context (information link, advice, description, feed) stands
above its findings only when every finding of the group has the same; otherwise each
finding shows its own: no finding is ever shown another's link or advice.
"""

import csv
import datetime
import io
import json
import re

import jinja2

from intelmq_nsm import abuse_kinds
from intelmq_nsm import tlp as traffic_light
from intelmq_nsm.digest.event_findings import COLUMNS

LANGUAGES = ("nl", "en")
#: A spreadsheet takes a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: 2: every finding carries its kind (new, reminder, reopened, fixed), finding id, first
#: and last seen and times seen; ``findings`` holds verified fixes too (kind ``fixed``),
#: so ``count`` is no longer the number of vulnerable systems: ``counts`` per kind is.
#: 3: the digest's TLP 2.0 label (``tlp``, the strictest of its findings') and each
#: finding's (``findings[].tlp``, also a CSV column).
#: 4: each finding's kind of abuse (``kind_of_abuse``), ``malware``, ``client_port``,
#: ``destination`` and ``feed``; ``port`` is a service port only; the kind ``not-seen``;
#: ``counts_by_kind_of_abuse`` (findings to act on, per kind of abuse).
FORMAT_VERSION = "nsm-digest/4"
#: The column of a finding's feedback link, after COLUMNS in digests that carry links.
LINK_COLUMN = "feedback_url"
#: The kinds in the order a digest shows them; a finding spooled without one is new.
KINDS = ("new", "reopened", "reminder", "fixed", "not-seen")
#: Kinds that are news of an end, not a system to act on.
ENDED = ("fixed", "not-seen")
#: The kinds of abuse in the order a digest shows them.
KINDS_OF_ABUSE = abuse_kinds.KINDS
#: A finding's context: shown above its group when every finding of the group has the same.
CONTEXT = ("case_url", "recommendation", "description", "feed")
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


def kind_of(finding: dict) -> str:
    return finding.get("kind") or "new"


def abuse_of(finding: dict) -> str:
    """The finding's kind of abuse; a finding spooled before kinds existed was vulnerable."""
    return finding.get("kind_of_abuse") or abuse_kinds.DEFAULT


def counts(digest) -> dict:
    """Findings per kind; ``vulnerable``: those to act on (not verified fixes, not findings
    no longer seen), whatever their kind of abuse (as before kinds of abuse existed)."""
    result = dict.fromkeys(KINDS, 0)
    for finding in digest.findings:
        result[kind_of(finding)] += 1
    result["vulnerable"] = len(digest.findings) - sum(result[kind] for kind in ENDED)
    return result


def counts_by_kind_of_abuse(digest) -> dict:
    """Findings to act on per kind of abuse (those it has), in the order of KINDS_OF_ABUSE."""
    result = dict.fromkeys(KINDS_OF_ABUSE, 0)
    for finding in digest.findings:
        if kind_of(finding) not in ENDED:
            result[abuse_of(finding)] += 1
    return {kind: n for kind, n in result.items() if n}


def _columns(digest) -> tuple:
    """The columns of this digest's findings: with ``feedback_url`` when it carries links."""
    return (*COLUMNS, LINK_COLUMN) if getattr(digest, "feedback_url", "") else COLUMNS


def tlp(digest) -> str:
    """The digest's TLP 2.0 label: the strictest of its findings' (a finding spooled before
    findings carried one counts as the default, AMBER)."""
    return traffic_light.strictest(f.get("tlp") or traffic_light.DEFAULT for f in digest.findings)


def as_document(digest) -> dict:
    """The digest as the JSON document a REST endpoint receives."""
    document = {
        "counts": counts(digest),
        "counts_by_kind_of_abuse": counts_by_kind_of_abuse(digest),
        "format": FORMAT_VERSION,
        "tlp": tlp(digest),
        "id": digest.id,
        "created": _iso(digest.created),
        "constituency": digest.constituency,
        "organisation": {k: digest.organisation.get(k) for k in ("id", "name", "kind")},
        "count": len(digest.findings),
        "findings": [{**{c: f.get(c, "") for c in _columns(digest)}, "kind": kind_of(f)} for f in ordered(digest)],
    }
    if getattr(digest, "feedback_url", ""):
        document["feedback_url"] = digest.feedback_url
    return document


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
    columns = _columns(digest)
    writer.writerow(columns)
    for finding in ordered(digest):
        writer.writerow([neutralise(kind_of(finding) if c == "kind" else finding.get(c, "")) for c in columns])
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


def _day(value) -> str:
    """The date of an ISO time stamp."""
    return _one_line(value)[:10]


_env.filters["one_line"] = _one_line
_env.filters["day"] = _day
_env.globals.update(where=_where, details=_details)


def ordered(digest) -> list:
    """The findings by kind of abuse, then by kind (new, reopened, reminder, fixed, not
    seen), in arrival order within one."""
    return sorted(digest.findings, key=lambda f: (KINDS_OF_ABUSE.index(abuse_of(f)), KINDS.index(kind_of(f))))


def _sections(digest) -> list:
    """``{"abuse", "count", "notices": [{"kind", "cases"}]}`` for each kind of abuse the
    digest holds (in the order of KINDS_OF_ABUSE), its notices in the order of KINDS."""
    sections = []
    for abuse in KINDS_OF_ABUSE:
        mine = [f for f in digest.findings if abuse_of(f) == abuse]
        if not mine:
            continue
        notices = [
            {"kind": kind, "cases": _cases([f for f in mine if kind_of(f) == kind])}
            for kind in KINDS
            if any(kind_of(f) == kind for f in mine)
        ]
        sections.append({"abuse": abuse, "count": sum(1 for f in mine if kind_of(f) not in ENDED), "notices": notices})
    return sections


def _cases(findings) -> list:
    """The groups of these findings, in order of first appearance: by case, else by the feed
    that saw them. A group's ``context`` holds what every one of its findings has alike;
    each finding's ``own`` holds what it has that its group does not show."""
    groups = {}
    for finding in findings:
        key = ("case", finding.get("case_id")) if finding.get("case_id") else ("feed", finding.get("feed") or "")
        group = groups.setdefault(
            key,
            {"id": finding.get("case_id") or "", "title": finding.get("case_title") or "", "rows": []},
        )
        group["rows"].append(finding)
    result = []
    for (by, name), group in groups.items():
        shared = {}
        for column in CONTEXT:
            values = {str(f.get(column) or "") for f in group["rows"]}
            shared[column] = values.pop() if len(values) == 1 else None
        group["feed_group"] = name if by == "feed" else ""
        group["context"] = {column: value for column, value in shared.items() if value}
        group["findings"] = [
            {"row": f, "own": {c: f.get(c) for c in CONTEXT if shared[c] is None and f.get(c)}} for f in group["rows"]
        ]
        result.append(group)
    return result


def csv_name(digest) -> str:
    """The CSV attachment's file name: organisation, short digest id and TLP label."""
    org = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(digest.organisation.get("id") or "digest"))
    return f"{org}-{digest.id[:12]}-TLP_{tlp(digest)}.csv"


def tlp_line(digest, language: str) -> str:
    """The text's first line: the label and one sentence on what it allows."""
    label = tlp(digest)
    return f"{traffic_light.label(label)} {traffic_light.sentence(label, language)}"


def to_text(digest, language: str = "nl") -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}.")
    return _env.get_template(f"digest-{language}.txt.j2").render(
        tlp_line=tlp_line(digest, language),
        digest=digest,
        organisation=digest.organisation,
        created=_iso(digest.created),
        sections=_sections(digest),
        counts=counts(digest),
        count=counts(digest)["vulnerable"],
        by_kind=counts_by_kind_of_abuse(digest),
        roles=ROLE_TEXT[language],
        feedback_url=getattr(digest, "feedback_url", ""),
    )


#: How long a piece of the digest id the subject shows (as the CSV's name does).
SHORT_ID = 12


def subject(digest, language: str = "nl") -> str:
    """``[TLP:AMBER] [IBD] 2 kwetsbare systemen gemeld voor Amsterdam (overzicht 1a2b3c4d5e6f)``."""
    label = traffic_light.label(tlp(digest))
    return f"[{label}] {_summary(digest, language)} ({_REF[language]} {digest.id[:SHORT_ID]})"


_REF = {"nl": "overzicht", "en": "digest"}


#: Per language, the short word of each kind of abuse in a subject.
SUBJECT_WORDS = {
    "nl": {
        "compromised": "besmet of gehackt",
        "misbehaving": "misbruik",
        "vulnerable": "kwetsbaar",
        "exposed": "blootgesteld",
    },
    "en": {
        "compromised": "infected or compromised",
        "misbehaving": "abusing others",
        "vulnerable": "vulnerable",
        "exposed": "exposed",
    },
}


def _summary(digest, language: str) -> str:
    name = _one_line(digest.organisation.get("name") or digest.organisation.get("id"))
    numbers = counts(digest)
    count, fixed, gone = numbers["vulnerable"], numbers["fixed"], numbers["not-seen"]
    by_kind = counts_by_kind_of_abuse(digest)
    tag = digest.constituency.upper()
    if count == 0 and gone and not fixed:
        if language == "en":
            return f"[{tag}] {gone} {'system' if gone == 1 else 'systems'} no longer seen for {name}"
        return f"[{tag}] {gone} {'systeem' if gone == 1 else 'systemen'} niet meer gezien voor {name}"
    if count == 0:
        if language == "en":
            return f"[{tag}] {fixed} {'system' if fixed == 1 else 'systems'} verified fixed for {name}"
        return f"[{tag}] {fixed} {'systeem' if fixed == 1 else 'systemen'} als opgelost bevestigd voor {name}"
    if set(by_kind) == {abuse_kinds.VULNERABLE}:
        if language == "en":
            return f"[{tag}] {count} vulnerable {'system' if count == 1 else 'systems'} reported for {name}"
        return f"[{tag}] {count} {'kwetsbaar systeem' if count == 1 else 'kwetsbare systemen'} gemeld voor {name}"
    words = SUBJECT_WORDS[language]
    parts = ", ".join(f"{n} {words[kind]}" for kind, n in by_kind.items())
    if language == "en":
        return f"[{tag}] {count} {'system' if count == 1 else 'systems'} reported for {name}: {parts}"
    return f"[{tag}] {count} {'systeem' if count == 1 else 'systemen'} gemeld voor {name}: {parts}"
