"""One record of a registry file at a time: checked, normalised and added to the registry.

A record is a mapping, as a YAML or JSON document gives it or as ``csv_file.py`` makes
it of a CSV row that needs more than its short path. Each problem becomes an issue naming
the file, the location (``line 12``, or a JSON path such as ``assets[3]``), the field and
the reason; the rest of the record, and of the file, is still read, so that an operator
sees every problem at once. Checks across records (references, shared assets) follow in
``references.py`` once every file is read.

The records of a claims file (a CERT's claims, ``claims.py``) are read by the same readers
under the rules of their ``ClaimsScope``: what a claims file may not carry is refused here,
record by record, with its field.
"""

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Optional

from intelmq_nsm.cert_ids import cert_organisation

from .claims import HEADER, ClaimsPolicy, ClaimsScope
from .model import (
    CONSTITUENCY_KEY,
    DEFAULT_CONSTITUENCY,
    MANUAL,
    Asset,
    Constituency,
    Issues,
    Organisation,
    claims_source,
)
from .registry import NetworkRows, Registry
from .values import format_network, normalise_domain, parse_asn, parse_network, parse_normal_network

#: The keys of an asset record that name its value; exactly one per asset.
ASSET_KINDS = ("network", "domain", "asn")
#: The key under which a YAML record carries the line it starts on (``documents.py``).
LINE = "__line__"


def read_fields(
    cls, record: dict, fallback: dict, report, missing=lambda field: "is required", folder=None
) -> Optional[dict]:
    """The values of ``cls``'s fields declared with ``fields.record_field``, from ``record``
    (of a file in ``folder``), or None if a required one has none.

    A value the record leaves out (or gives as null or blank) comes from ``fallback``,
    else from the field's default; a value its reader rejects is reported (``report(field,
    reason)``) and replaced the same way. A required field left without a value is
    reported (its reason ``missing(field)``), and the result is None: no record without it.
    """
    values, complete = {}, True
    for field in fields(cls):
        reader = field.metadata.get("reader")
        if reader is None:
            continue
        raw = None
        if field.metadata["whole_record"]:
            try:
                values[field.name] = reader(record, folder)
                continue
            except ValueError as exc:
                report(getattr(exc, "field", field.name), getattr(exc, "reason", str(exc)))
        else:
            keys = field.metadata["keys"] or (field.name,)
            raw = next((record[key] for key in keys if not _absent(record.get(key))), None)
            if raw is not None:
                try:
                    values[field.name] = reader(raw)
                    continue
                except ValueError as exc:
                    report(field.name, str(exc))
            if field.name in fallback:
                values[field.name] = fallback[field.name]
                continue
        if field.default is not MISSING:
            values[field.name] = field.default
        elif field.default_factory is not MISSING:
            values[field.name] = field.default_factory()
        elif raw is None:
            report(field.name, missing(field.name))
            complete = False
        else:
            complete = False  # rejected, no fallback: reported above
    return values if complete else None


def _absent(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class RecordReader:
    """Adds the records of one registry's files to ``registry``, noting issues in ``issues``."""

    def __init__(self, registry: Registry, issues: Issues, claims: Optional[ClaimsPolicy] = None):
        self.registry = registry
        self.issues = issues
        self.declared = {}  # organisation id → where a file declared it
        self.strings = {}  # one object per distinct organisation id, source and note
        self.policy = claims  # the hub's claims sources, or None
        self.scope = None  # the rules of the claims document being read, if one is
        # A document's networks, handed to the registry at its end (a call per network
        # would cost a third of the load of a CERT's claims).
        self.pending = None
        # Built-in organisations (there before any file is read) → their constituency.
        self.builtin = {ident: o.constituency for ident, o in registry.organisations.items()}

    def issue(self, level, file, location, field, reason) -> None:
        self.issues.add(level, file, location, field, reason)

    def claims_source(self, path):
        """The hub's claims source whose file ``path`` is, or None."""
        return self.policy.source_of(path) if self.policy is not None else None

    def begin_document(self, path, location, header, counts: dict, version=None) -> bool:
        """Start reading a document: a claims file's ``header`` (its ``claims`` section,
        ``counts`` its sections' lengths) is checked and its rules hold for the records
        until :meth:`end_document`. False: the document must not be read further."""
        source = self.claims_source(path)
        if header is None:
            if source is None:
                self.pending = NetworkRows(str(path))
                return True
            reason = f"the claims file of {source.key!r} is a claims document: it needs its claims header"
            self.issue("error", path, location, HEADER, reason)
            return False
        scope, problems = ClaimsScope.open(header, counts, source, self.policy)
        for field, reason in problems:
            self.issue("error", path, location, field, reason)
        if scope is None:
            return False
        if scope.key in self.registry.claims:
            first = self.registry.claims[scope.key]["file"]
            reason = f"the claims of {scope.key!r} are in {first} already"
            self.issue("error", path, location, f"{HEADER}.constituency", reason)
            return False
        self.registry.claims[scope.key] = {"file": str(path), **scope.header, "version": version}
        self.scope = scope
        self.pending = NetworkRows(str(path))
        return True

    def end_document(self, path, location) -> None:
        pending, self.pending = self.pending, None
        if pending:
            self.registry.add_networks(pending)
        scope, self.scope = self.scope, None
        if scope is not None and not scope.constituency_declared:
            reason = f"a claims file names its constituency {scope.key!r} (key, name, share_names)"
            self.issue("error", path, location, "constituencies", reason)

    def _claims_record(self, section: str, path, location, record: dict) -> dict:
        """A claims file's record without what a claims file may not carry, each refused."""
        record, refused = self.scope.strip(section, record, ignore=(LINE,))
        for field, reason in refused:
            self.issue("error", path, location, field, reason)
        return record

    def constituency(self, path, location, record) -> None:
        scope = self.scope
        if scope is not None:
            record = self._claims_record("constituencies", path, location, record)
        key = record.get("key")
        if not isinstance(key, str) or not CONSTITUENCY_KEY.match(key):
            self.issue("error", path, location, "key", "must be a lowercase name such as 'ibd'")
            return
        problem = scope.constituency_problem(key) if scope is not None else None
        if problem:
            self.issue("error", path, location, "key", problem)
            return
        if key in self.registry.constituencies and key != DEFAULT_CONSTITUENCY:  # the built-in one may be completed
            self.issue("error", path, location, "key", f"constituency {key!r} is declared twice")
            return

        def report(field, reason):
            self.issue("error", path, location, field, reason)

        values = read_fields(Constituency, record, {"name": key}, report)
        if values is not None:
            constituency = self.registry.constituencies[key] = Constituency(key, **values)
            if scope is not None:
                scope.constituency_declared = True
                self._cert_organisation(path, location, constituency)

    def _cert_organisation(self, path, location, constituency: Constituency) -> None:
        """The organisation that owns what a constituency's claims name no organisation for."""
        ident = cert_organisation(constituency.key)
        if ident in self.declared:
            first = ", ".join(self.declared[ident])
            self.issue("error", path, location, "key", f"organisation {ident!r} is already declared at {first}")
            return
        self.declared[ident] = (str(path), location)
        self.registry.organisations[ident] = Organisation(
            ident, constituency.name, "other", constituency.key, origin=(str(path), location)
        )

    def organisation(self, path, location, record) -> None:
        scope = self.scope
        if scope is not None:
            record = self._claims_record("organisations", path, location, record)
        ident = record.get("id")
        if not isinstance(ident, str) or not ident.strip():
            self.issue("error", path, location, "id", "every organisation needs an id (a CBS code such as GM0363)")
            return
        ident = ident.strip()
        if scope is not None:
            problem = scope.organisation_problem(ident, self.builtin.get(ident), declaring=True)
            if problem is None and record.get("constituency") not in (None, scope.key):
                problem = f"the claims of {scope.key!r} declare organisations of {scope.key!r} only"
                self.issue("error", path, location, "constituency", problem)
                return
            if problem:
                self.issue("error", path, location, "id", problem)
                return
        if ident in self.declared:
            first = ", ".join(self.declared[ident])
            self.issue("error", path, location, "id", f"organisation {ident!r} is already declared at {first}")
            return
        self.declared[ident] = (str(path), location)
        # An organisation already there and not declared by a file is built in: the record completes it.
        builtin = self.registry.organisations.get(ident)
        fallback = {f.name: getattr(builtin, f.name) for f in fields(Organisation)} if builtin else {}
        if scope is not None and not builtin:  # a claims file's own: of its constituency, named by its id
            fallback = {"constituency": scope.key, "name": ident}

        def report(field, reason):
            self.issue("error", path, location, field, reason)

        needs = lambda field: f"organisation {ident!r} needs a {field}"  # noqa: E731
        values = read_fields(Organisation, record, fallback, report, needs, Path(path).parent)
        if values is None:
            return  # reported: an organisation without a name (or another required field) is left out
        values["id"], values["origin"] = ident, (str(path), location)
        organisation = Organisation(**values)
        if organisation.members and organisation.kind != "shared-service":
            self.issue("error", path, location, "members", "only a shared-service organisation has members")
        if organisation.valid_from and organisation.valid_until and organisation.valid_from > organisation.valid_until:
            self.issue("error", path, location, "valid_until", "lies before valid_from")
        self.registry.organisations[ident] = organisation

    def asset_record(self, path, location, record) -> None:
        scope = self.scope
        if scope is not None:
            record = self._claims_record("assets", path, location, record)
            owner = record.get("organisation")
            owner = owner.strip() if isinstance(owner, str) and owner.strip() else scope.cert
            problem = scope.organisation_problem(owner, self.builtin.get(owner), declaring=False)
            if problem:
                self.issue("error", path, location, "organisation", problem)
                return
            record = {**record, "organisation": owner, "source": claims_source(scope.key)}
        kinds = [k for k in ASSET_KINDS if k in record]
        if len(kinds) != 1:
            self.issue("error", path, location, "", "an asset names exactly one of network, domain, asn")
            return
        self.asset(path, location, kinds[0], record[kinds[0]], record)

    def asset(self, path, line, kind, value, record) -> None:
        """One asset; ``line`` is a CSV line number or a location such as ``"line 12"``."""
        location = f"line {line}" if isinstance(line, int) else line
        organisation = record.get("organisation")
        if not isinstance(organisation, str) or not organisation.strip():
            self.issue("error", path, location, "organisation", "every asset needs the id of its organisation")
            return
        network = None
        try:
            if kind == "network":
                normalised = value if type(value) is str else str(value)
                network = parse_normal_network(normalised)  # the short path of what is in normal form
                if network is None:
                    network = parse_network(normalised)
                    normalised = format_network(*network)
            elif kind == "domain":
                normalised = normalise_domain(str(value))
            else:
                normalised = str(parse_asn(value))
        except ValueError as exc:
            self.issue("error", path, location, kind, str(exc))
            return
        exact = record.get("exact") or False
        if isinstance(exact, str):
            exact = exact.strip().lower() in ("true", "yes", "1", "exact")
        if exact and kind != "domain":
            self.issue("error", path, location, "exact", "only a domain can be exact")
        source, note = str(record.get("source") or MANUAL).strip() or MANUAL, str(record.get("note") or "").strip()
        if network is not None:
            shared = self.strings.setdefault
            rows = self.pending if self.pending is not None else NetworkRows(str(path))
            rows.values.append(normalised)
            rows.organisations.append(shared(organisation.strip(), organisation.strip()))
            rows.sources.append(shared(source, source))
            rows.notes.append(shared(note, note))
            rows.lines.append(line)
            rows.parsed.append(network)
            if rows is not self.pending:
                self.registry.add_networks(rows)
            return
        self.registry.assets.append(
            Asset(kind, normalised, organisation.strip(), source, note, bool(exact), str(path), line)
        )

    def exclusion_record(self, path, location, record) -> None:
        if self.scope is not None:
            kept = self._claims_record("exclusions", path, location, record)
            if "domain" not in kept:
                if "network" not in record:  # else refused above
                    self.issue("error", path, location, "domain", "an exclusion of a claims file names a domain")
                return
            record = kept
        kinds = [k for k in ("network", "domain") if k in record]
        if len(kinds) != 1:
            self.issue("error", path, location, "", "an exclusion names exactly one of network, domain")
            return
        self.exclusion(path, location, kinds[0], str(record[kinds[0]]), record)

    def exclusion(self, path, location, kind, value, record) -> None:
        try:
            if kind == "network":
                normalised = format_network(*parse_network(value))
            else:
                normalised = normalise_domain(value)
        except ValueError as exc:
            self.issue("error", path, location, kind, str(exc))
            return
        note = str(record.get("note") or "").strip()
        if self.scope is not None:  # it leaves the name out of this constituency's claims alone
            self.registry.claim_exclusions.append((self.scope.key, normalised, note, (str(path), location)))
            return
        self.registry.exclusions.append((kind, normalised, note, (str(path), location)))
