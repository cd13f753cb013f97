"""Proposing registry assets from the RIPE database's split dumps, each with its evidence.

Two passes over the dumps, both streaming: first the ``organisation`` objects, whose
``org-name`` is matched against the registry's organisations (the built-in municipalities
and the operator's own); then the number resources (``inetnum``, ``inet6num``,
``aut-num``), which are proposed for an organisation when their ``org:`` refers to a
matched organisation object, or, as weaker evidence, when their ``netname``/``as-name``,
``descr`` or ``remarks`` name it. Only the objects that could match are parsed in full:
a quick look for an ``org:`` reference and for the words a match needs ("gemeente",
"municipality", the operator's organisation names) passes over the rest.

Confidence, from strongest to weakest (``LEVELS``):

- ``org``: the resource's ``org:`` is an organisation whose ``org-name`` is wholly the
  organisation's name ("Gemeente Ede");
- ``org-name``: the resource's ``org:`` is an organisation whose ``org-name`` names it
  among other words ("ICT-samenwerking Gemeente Ede en Wageningen");
- ``netname``: the ``netname``/``as-name`` or a ``descr`` line is wholly its name
  (``GEMEENTE-EDE``);
- ``mention``: a ``descr`` or ``remarks`` line names it among other words.
"""

import csv
import io
import ipaddress
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Optional

from .names import NameMatcher, words
from .rpsl import RpslError, inet6num_network, inetnum_networks, object_texts, open_dump, parse_object, strip_comment

LEVELS = ("mention", "netname", "org-name", "org")  # weakest first; the index is the confidence
RESOURCE_CLASSES = ("inetnum", "inet6num", "aut-num")
DUMP_NAMES = ("organisation", *RESOURCE_CLASSES)
_TEXT_ATTRIBUTES = {"netname": "netname", "as-name": "netname", "descr": "descr", "remarks": "remarks"}
_COMMENT = (b"#", b"%")
_GEM, _GEM_BYTES = re.compile(r"\bgem").search, re.compile(rb"\bgem").search  # gemeente, gem., GEMEENTE-X


def confidence(level: str) -> int:
    return LEVELS.index(level) + 1


@dataclass
class Evidence:
    key: str  # the RPSL object, e.g. "inetnum 192.0.2.0 - 192.0.2.255" or "organisation ORG-GE1-TEST"
    attribute: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}: {self.attribute}: {self.value}"


@dataclass
class Proposal:
    """One asset the dumps suggest for one organisation."""

    kind: str  # "network" or "asn"
    value: str  # "192.0.2.0/25", "2001:db8::/48", "64496"
    organisation: str
    level: str
    resource: str  # the resource object's key
    country: str
    evidence: list = field(default_factory=list)
    status: str = ""  # filled in by review(): imported, below threshold, already in the registry, ...

    @property
    def confidence(self) -> int:
        return confidence(self.level)


@dataclass
class ImportResult:
    proposals: list
    problems: list  # RpslError of objects that could not be read (each skipped, the rest read on)
    objects: int = 0  # resource objects read
    organisations: int = 0  # organisation objects read
    dropped_country: int = 0
    asn_country_checked: bool = False


def dump_files(paths) -> list:
    """The dump files named by ``paths``; a directory gives its ``ripe.db.<class>[.gz]`` files."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            for name in DUMP_NAMES:
                files += [p for p in (path / f"ripe.db.{name}.gz", path / f"ripe.db.{name}") if p.is_file()][:1]
        else:
            files.append(path)
    return files


def dump_date(files) -> date:
    """The day of the newest dump file (UTC), as the dumps carry no date of their own."""
    newest = max(Path(f).stat().st_mtime for f in files)
    return datetime.fromtimestamp(newest, timezone.utc).date()


def read_delegated(path) -> tuple:
    """``(starts, ends, countries)`` of the ASN blocks in an RIR's delegated statistics file."""
    blocks = []
    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            fields = line.strip().split("|")
            if len(fields) >= 5 and fields[2] == "asn" and fields[3].isdigit() and fields[4].isdigit():
                start = int(fields[3])
                blocks.append((start, start + int(fields[4]) - 1, fields[1].upper()))
    blocks.sort()
    return [b[0] for b in blocks], [b[1] for b in blocks], [b[2] for b in blocks]


def _asn_country(delegated, asn: int) -> str:
    starts, ends, countries = delegated
    i = bisect_right(starts, asn) - 1
    return countries[i] if i >= 0 and asn <= ends[i] else ""


class Importer:
    """Matches the dumps' objects to ``municipalities`` and ``others`` (``[(id, name)]``)."""

    def __init__(self, municipalities, others=(), country: Optional[str] = None, delegated=None):
        self.names = NameMatcher(municipalities, others)
        self.country = country.upper() if country else None
        self.delegated = delegated
        self.matched_orgs = {}  # organisation handle → [(organisation id, level, Evidence)]
        self.matched_raw = set()  # the same handles, as bytes
        self.problems = []
        self.proposals = {}  # (kind, value, organisation) → Proposal
        self.objects = self.organisations = self.dropped = 0
        # The words a name match needs: a municipal marker, or the longest word of one of
        # the operator's organisations' names (folded, and as written, in both encodings).
        triggers = {"municipal", "city of"}
        for _ident, name in others:
            key = words(name)
            if key in self.names.named:
                triggers.add(max(key, key=len))
                triggers.update(word for word in name.lower().split() if not word.isascii())
        self._triggers = tuple(sorted(triggers))
        self._raw_triggers = tuple(sorted({t.encode(c) for t in triggers for c in ("utf-8", "latin-1")}))

    def _may_name(self, raw: bytes) -> bool:
        """Whether an object's raw text holds a word that a name match needs: a quick look
        (C substring searches), so that the objects that cannot match are never parsed."""
        low = raw.lower()
        if b"gem" in low and _GEM_BYTES(low):
            return True
        for trigger in self._raw_triggers:
            if trigger in low:
                return True
        return False

    def _may_name_text(self, text: str) -> bool:
        low = text.lower()
        if "gem" in low and _GEM(low):
            return True
        for trigger in self._triggers:
            if trigger in low:
                return True
        return False

    # -- organisation objects -----------------------------------------------------------

    def read_organisations(self, stream) -> None:
        may_name = self._may_name
        for raw in object_texts(stream):
            if b"organisation:" in raw:
                self.organisations += 1
                if may_name(raw):
                    self.organisation_object(parse_object(raw))

    def organisation_object(self, attributes) -> None:
        if not attributes or attributes[0][0] != "organisation":
            return
        handle = strip_comment(attributes[0][1]).upper()
        for name, value in attributes:
            if name == "org-name":
                for found in self.names.find(value):
                    level = "org" if found.whole else "org-name"
                    evidence = Evidence(f"organisation {handle}", "org-name", value)
                    self.matched_orgs.setdefault(handle, []).append((found.organisation, level, evidence))
                    self.matched_raw.add(handle.encode())

    # -- number resources ---------------------------------------------------------------

    def read_resources(self, stream) -> None:
        may_name, matched = self._may_name, self.matched_raw
        for raw in object_texts(stream):
            if raw.lstrip()[:1] in _COMMENT:
                continue  # the dump's header, or another block of comments only
            self.objects += 1
            at = raw.find(b"\norg:")
            while at >= 0:
                end = raw.find(b"\n", at + 5)
                if raw[at + 5 : end if end >= 0 else None].partition(b"#")[0].strip().upper() in matched:
                    break
                at = raw.find(b"\norg:", at + 5)
            if at < 0 and not may_name(raw):
                continue
            self.resource_object(parse_object(raw))

    def resource_object(self, attributes) -> None:
        if not attributes or attributes[0][0] not in RESOURCE_CLASSES:
            return
        cls, key_value = attributes[0]
        key = f"{cls} {strip_comment(key_value)}"
        countries, claims = [], {}  # organisation id → [(level, Evidence)]
        for name, value in attributes[1:]:
            if name == "country":
                countries.append(strip_comment(value).upper())
            elif name == "org":
                handle = strip_comment(value).upper()
                for ident, level, org_evidence in self.matched_orgs.get(handle, ()):
                    claims.setdefault(ident, []).extend(((level, Evidence(key, "org", handle)), (level, org_evidence)))
            elif name in _TEXT_ATTRIBUTES and self._may_name_text(value):
                kind = _TEXT_ATTRIBUTES[name]
                for found in self.names.find(value):
                    level = "netname" if found.whole and kind != "remarks" else "mention"
                    claims.setdefault(found.organisation, []).append((level, Evidence(key, name, value)))
        if not claims:
            return
        try:
            if cls == "inetnum":
                kind, values = "network", [str(n) for n in inetnum_networks(key, key_value)]
            elif cls == "inet6num":
                kind, values = "network", [str(inet6num_network(key, key_value))]
            else:
                kind, values = "asn", [str(_aut_num(key, key_value))]
        except RpslError as exc:
            self.problems.append(exc)
            return
        country = ",".join(countries)
        if kind == "asn" and self.delegated is not None:
            country = _asn_country(self.delegated, int(values[0]))
        if self.country and (kind != "asn" or self.delegated is not None) and self.country not in country.split(","):
            self.dropped += 1
            return
        for ident, found in claims.items():
            found.sort(key=lambda pair: -confidence(pair[0]))  # the strongest evidence first
            level, evidence = found[0][0], [e for _, e in found]
            for value in values:
                slot = (kind, value, ident)
                known = self.proposals.get(slot)
                if known is None or known.confidence < confidence(level):
                    self.proposals[slot] = Proposal(kind, value, ident, level, key, country, evidence)

    def result(self) -> ImportResult:
        proposals = sorted(self.proposals.values(), key=_order)
        return ImportResult(
            proposals, self.problems, self.objects, self.organisations, self.dropped,
            asn_country_checked=self.delegated is not None,
        )  # fmt: skip


def _aut_num(key: str, value: str) -> int:
    text = strip_comment(value).upper()
    if not text.startswith("AS") or not text[2:].isdigit():
        raise RpslError(key, "aut-num", f"{text!r} is not an AS number")
    return int(text[2:])


def _order(proposal: Proposal):
    if proposal.kind == "network":
        network = ipaddress.ip_network(proposal.value)
        return (0, network.version, int(network.network_address), network.prefixlen, proposal.organisation)
    return (1, 0, int(proposal.value), 0, proposal.organisation)


def import_dumps(files, municipalities, others=(), country=None, delegated=None) -> ImportResult:
    """Read the dump ``files`` (organisation files first, then the resources) and propose assets."""
    importer = Importer(municipalities, others, country, delegated)
    organisation_files = [f for f in files if "organisation" in Path(f).name]
    # Without a file named for organisations, every file is searched for them first.
    for path in organisation_files or files:
        with open_dump(path) as stream:
            importer.read_organisations(stream)
    for path in files:
        if path not in organisation_files:
            with open_dump(path) as stream:
                importer.read_resources(stream)
    return importer.result()


# -- review against the operator's registry and output ------------------------------------


def review(proposals, min_level: str, registry=None) -> None:
    """Set each proposal's ``status``: what the import does with it, and why.

    With the operator's ``registry``, a proposal the registry already holds by hand is
    not imported again, and one a manual asset of another organisation contradicts is
    flagged (an equal manual network keeps precedence; a more specific import would win).
    """
    threshold = confidence(min_level)
    for proposal in proposals:
        manual = _manual_owner(registry, proposal) if registry is not None else None
        if manual is not None and manual[1] == proposal.organisation and manual[0] == proposal.value:
            proposal.status = "already in the registry by hand"
            continue
        if proposal.confidence < threshold:
            proposal.status = f"not imported: below {min_level}"
            continue
        proposal.status = "imported"
        if manual is not None and manual[1] != proposal.organisation:
            if manual[0] == proposal.value:
                proposal.status += f"; the manual entry for {manual[1]} keeps precedence"
            else:
                proposal.status += f"; inside manual {manual[0]} of {manual[1]}, and more specific: check"


def _manual_owner(registry, proposal):
    """``(matched value, organisation)`` of the manual asset that covers the proposal, if any."""
    index = registry.index
    if proposal.kind == "asn":
        entry = index.asns.get(int(proposal.value))
    else:
        network = ipaddress.ip_network(proposal.value)
        entry = index.network_entry(network.version, int(network.network_address))
        if entry is not None and int(entry.matched.rpartition("/")[2]) > network.prefixlen:
            entry = None  # a smaller network at its start: it does not cover the proposal
    if entry is None:
        return None
    manual = [asset for asset in entry.assets if asset.manual]
    return (entry.matched, manual[0].organisation) if manual else None


def note(proposal: Proposal) -> str:
    """The asset's note in the imported registry: where the RIPE database says so."""
    first = proposal.evidence[0]
    said = f"{first.attribute} {first.value}"
    if first.attribute == "org" and len(proposal.evidence) > 1:  # the organisation object's name comes next
        said += f", org-name {proposal.evidence[1].value}"
    return f"RIPE {proposal.resource}: {said} (confidence {proposal.level})"


def registry_csv(proposals, source: str) -> str:
    """The imported registry file: the proposals marked ``imported``, one CSV row each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("type", "value", "organisation", "source", "note"))
    for proposal in proposals:
        if proposal.status.startswith("imported"):
            writer.writerow((proposal.kind, proposal.value, proposal.organisation, source, note(proposal)))
    return out.getvalue()


REPORT_COLUMNS = ("status", "confidence", "level", "kind", "value", "organisation", "name", "country", "resource")


def report_csv(proposals, organisation_names: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*REPORT_COLUMNS, "evidence"))
    for p in proposals:
        writer.writerow(
            (
                p.status, p.confidence, p.level, p.kind, p.value, p.organisation,
                organisation_names.get(p.organisation, ""), p.country, p.resource,
                " | ".join(map(str, p.evidence)),
            )
        )  # fmt: skip
    return out.getvalue()


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(result: ImportResult, organisation_names: dict, source: str, min_level: str, files) -> str:
    proposals = result.proposals
    imported = sum(p.status.startswith("imported") for p in proposals)
    lines = [
        f"# RIPE database import {source}: proposals for review",
        "",
        f"Dumps: {', '.join(f'`{Path(f).name}`' for f in files)}. "
        f"{result.organisations} organisation objects and {result.objects} resource objects read.",
        f"{len(proposals)} proposals; {imported} imported (confidence {min_level} or stronger), "
        f"{len(proposals) - imported} listed for review only.",
    ]
    if result.dropped_country:
        lines.append(f"{result.dropped_country} matching resources dropped for their country.")
    if not result.asn_country_checked:
        lines.append("AS numbers were not filtered by country (no delegated statistics file was given).")
    lines += [
        "",
        "Confidence: 4 `org` (org: reference, org-name is the name), 3 `org-name` (org: reference, org-name "
        "names it among other words), 2 `netname` (netname, as-name or descr is the name), "
        "1 `mention` (named in descr or remarks).",
        "",
        "| Status | Conf. | Asset | Organisation | Country | Evidence |",
        "|---|---|---|---|---|---|",
    ]
    for p in proposals:
        who = f"{p.organisation} {organisation_names.get(p.organisation, '')}".strip()
        evidence = "<br>".join(_cell(e) for e in p.evidence)
        lines.append(
            f"| {_cell(p.status)} | {p.confidence} {p.level} | {p.kind} {p.value} | {_cell(who)} "
            f"| {p.country} | {evidence} |"
        )
    if result.problems:
        lines += ["", "## Objects that could not be read", ""]
        lines += [f"- {_cell(problem)}" for problem in result.problems]
    return "\n".join(lines) + "\n"
