"""Reading and validating a constituency registry from YAML, JSON and CSV files.

A registry may be split over several files; they are read in the order given and form
one registry. ``load_registry`` either returns a complete, valid ``Registry`` or raises
``RegistryError`` listing every problem with its file, line (or row, or JSON path),
field and reason, so that a broken file can never replace a good registry in memory.
"""

import contextlib
import csv
import gc
import hashlib
import io
import itertools
import json
import re
from collections import Counter
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Optional

import yaml

from .index import Index, add_entry
from .model import (
    DEFAULT_CONSTITUENCY,
    KINDS,
    MANUAL,
    Asset,
    Constituency,
    Issue,
    NetworkAssets,
    Organisation,
    RegistryError,
)
from .preferences import PreferenceError
from .preferences import parse as parse_preferences
from .values import format_network, normalise_domain, parse_asn, parse_network, parse_normal_network, utc_today

SUFFIXES = (".yaml", ".yml", ".json", ".csv")
CSV_COLUMNS = ("type", "value", "organisation", "source", "note", "exact")
ASSET_KINDS = ("network", "domain", "asn")
_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")
_DOC_KEYS = {"version", "constituencies", "organisations", "assets", "exclusions"}
_LINE = "__line__"
# A domain already in normal form (lowercase ASCII labels, no trailing dot) needs no IDNA.
_NORMAL_DOMAIN = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that records the line of every mapping, for error messages."""


def _construct_mapping(loader, node, deep=False):
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# Dates stay strings until validated: PyYAML raises a bare ValueError for 2025-13-01.
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def builtin_municipalities():
    """The 342 municipalities shipped with the package: ``[(cbs_code, name), ...]``."""
    text = resources.files(__package__).joinpath("data/gemeenten.csv").read_text(encoding="utf-8")
    return [(row["cbs_code"], row["name"]) for row in csv.DictReader(io.StringIO(text))]


class Registry:
    """A validated registry: constituencies, organisations, assets, exclusions, and its index."""

    def __init__(self):
        self.constituencies = {}
        self.organisations = {}
        self.networks = NetworkAssets()
        self.assets = []  # domains and ASNs
        self.exclusions = []  # (kind, normalised value, note, origin)
        self.files = []
        self.versions = []
        self.digest = hashlib.sha256()
        self._version = None  # computed once all files are read
        self.issues = []  # warnings of a registry that loaded
        self.index = None

    @property
    def version(self) -> str:
        """The documents' declared versions, else ``sha256:`` and the first 12 hex digits of the content."""
        if self._version is None:
            content = f"sha256:{self.digest.hexdigest()[:12]}"
            self._version = f"{'+'.join(self.versions)} ({content})" if self.versions else content
        return self._version

    @property
    def asset_count(self) -> int:
        return len(self.networks) + len(self.assets)

    def all_assets(self):
        """Every asset: the networks (made for the iteration), then domains and ASNs."""
        yield from self.networks
        yield from self.assets

    def stats(self) -> dict:
        counts = Counter(asset.kind for asset in self.assets)
        counts["network"] = len(self.networks)
        owners = {asset.organisation for asset in self.assets}.union(self.networks.organisations)
        return {
            "version": self.version,
            "files": list(self.files),
            "constituencies": len(self.constituencies),
            "organisations": len(self.organisations),
            "organisations_with_assets": len(owners),
            "networks": counts["network"],
            "domains": counts["domain"],
            "asns": counts["asn"],
            "exclusions": len(self.exclusions),
        }


class _Reader:
    """Collects one registry from several documents, noting every issue."""

    def __init__(self, include_builtin: bool, today: date):
        self.registry = Registry()
        self.issues = []
        self.today = today
        self.builtin = set()
        self.declared = {}  # organisation id → where it was declared (not built-in)
        self.strings = {}  # one object per distinct organisation id, source and note
        self.networks = {4: {}, 6: {}}  # the index's network tables, filled while reading
        self.shared = []  # index entries claimed by more than one asset
        if include_builtin:
            self.registry.constituencies[DEFAULT_CONSTITUENCY] = Constituency(
                DEFAULT_CONSTITUENCY, "IBD (Informatiebeveiligingsdienst voor gemeenten)"
            )
            for code, name in builtin_municipalities():
                self.registry.organisations[code] = Organisation(
                    code, name, "municipality", DEFAULT_CONSTITUENCY, origin=("built-in", "")
                )
                self.builtin.add(code)

    def issue(self, level, file, location, field, reason):
        self.issues.append(Issue(level, str(file), location, field, reason))

    # -- documents ---------------------------------------------------------------------

    def read(self, path: Path) -> None:
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                # Streamed: a bulk export is large, and its text need not sit in memory twice.
                quoted = False
                with open(path, "rb") as stream:
                    for chunk in iter(lambda: stream.read(1 << 20), b""):
                        self.registry.digest.update(chunk)
                        quoted = quoted or b'"' in chunk
                self.registry.files.append(str(path))
                # Without a quote character a CSV row is its line split at commas: read so,
                # in half the time of the csv module (which reads any other file).
                with open(path, encoding="utf-8-sig", newline="" if quoted else None) as stream:
                    self.read_csv(path, csv.reader(stream) if quoted else _split_at_commas(stream))
                return
            data = path.read_bytes()
        except OSError as exc:
            self.issue("error", path, "", "", f"cannot be read: {exc.strerror or exc}")
            return
        except UnicodeDecodeError as exc:
            self.issue("error", path, "", "", f"is not UTF-8 (byte {exc.start} of a block)")
            return
        self.registry.files.append(str(path))
        self.registry.digest.update(data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.issue("error", path, f"byte {exc.start}", "", "is not UTF-8")
            return
        del data
        try:
            document = json.loads(text) if suffix == ".json" else yaml.load(text, Loader=_LineLoader)  # noqa: S506
        except json.JSONDecodeError as exc:
            self.issue("error", path, f"line {exc.lineno}", "", f"is not valid JSON: {exc.msg}")
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else ""
            self.issue("error", path, where, "", f"is not valid YAML: {getattr(exc, 'problem', exc)}")
            return
        self.read_document(path, document)

    def read_document(self, path, document) -> None:
        if document is None:
            return
        if not isinstance(document, dict):
            self.issue("error", path, "line 1", "", "the document must be a mapping with registry sections")
            return
        for key in sorted(set(document) - _DOC_KEYS - {_LINE}):
            self.issue("error", path, self.where(document, key), key, f"unknown section {key!r}")
        if document.get("version") is not None:
            self.registry.versions.append(str(document["version"]))
        for section, method in (
            ("constituencies", self.constituency),
            ("organisations", self.organisation),
            ("assets", self.asset_record),
            ("exclusions", self.exclusion_record),
        ):
            records = document.get(section) or []
            if not isinstance(records, list):
                self.issue("error", path, self.where(document, section), section, "must be a list")
                continue
            for number, record in enumerate(records):
                location = self.where(record, f"{section}[{number}]")
                if not isinstance(record, dict):
                    self.issue("error", path, location, section, "each entry must be a mapping")
                    continue
                method(path, location, record)

    @staticmethod
    def where(record, fallback: str) -> str:
        if isinstance(record, dict) and _LINE in record:
            return f"line {record[_LINE]}"
        return fallback

    def read_csv(self, path, rows) -> None:
        """Read the rows (lists of fields, the header first) of one CSV file."""
        header = next(rows, None)
        if header is None:
            return
        header = [column.strip().lower() for column in header]
        missing = [c for c in ("type", "value", "organisation") if c not in header]
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if missing or unknown:
            reason = f"the header must name the columns {', '.join(CSV_COLUMNS)} (at least type, value, organisation)"
            self.issue("error", path, "line 1", ", ".join(missing + unknown), reason)
            return
        columns = {name: header.index(name) for name in header}
        width = len(header)
        file = str(path)
        # Bulk exports run to a million rows. A network or domain already in normal form
        # takes a short path here, without a dict or an object per row; every other row,
        # and any row with a problem, takes the general one, which names the problem.
        type_column, value_column, organisation_column = columns["type"], columns["value"], columns["organisation"]
        source_column, note_column = columns.get("source"), columns.get("note")
        exact_column = columns.get("exact")
        normal_network, normal_domain = parse_normal_network, _NORMAL_DOMAIN.fullmatch
        shared_string = self.strings.setdefault
        networks = self.registry.networks
        networks.begin_file(file)
        add_value, add_organisation = networks.values.append, networks.organisations.append
        add_source, add_note, add_line = networks.sources.append, networks.notes.append, networks.lines.append
        tables = self.networks
        source, note = MANUAL, ""  # the last seen; an export repeats the same few on every row
        shared_source, shared_note = source, note
        assets = self.registry.assets
        for line, row in enumerate(rows, start=2):
            if len(row) != width:
                if row and (len(row) > 1 or row[0].strip()):
                    self.issue("error", path, f"line {line}", "", f"has {len(row)} columns, the header {width}")
                continue
            kind, value, organisation = row[type_column], row[value_column], row[organisation_column]
            if organisation and (exact_column is None or not row[exact_column]):
                if kind == "network":
                    network = normal_network(value)
                    if network is not None:
                        # NetworkAssets.add, written out: a call per row costs a tenth of the load.
                        number = len(networks.values)
                        add_value(value)
                        add_organisation(shared_string(organisation, organisation))
                        if source_column is not None and row[source_column] != source:
                            source = row[source_column]
                            shared_source = shared_string(source, source)
                        add_source(shared_source)
                        if note_column is not None and row[note_column] != note:
                            note = row[note_column]
                            shared_note = shared_string(note, note)
                        add_note(shared_note)
                        add_line(line)
                        version, start, prefixlen = network
                        table, key = tables[version], start << 8 | prefixlen
                        if table.setdefault(key, number) is not number:
                            add_entry(table, key, number, self.shared, networks.asset)
                        continue
                elif kind == "domain" and len(value) <= 253 and normal_domain(value):
                    domain_source = row[source_column] if source_column is not None else MANUAL
                    domain_note = row[note_column] if note_column is not None else ""
                    assets.append(
                        Asset(
                            "domain", value, shared_string(organisation, organisation),
                            shared_string(domain_source, domain_source), shared_string(domain_note, domain_note),
                            False, file, line,
                        )
                    )  # fmt: skip
                    continue
            record = {name: row[i] for name, i in columns.items()}
            kind = kind.strip().lower()
            if kind == "exclusion":
                value = record["value"].strip()
                kind = "network" if _looks_like_network(value) else "domain"
                self.exclusion(path, f"line {line}", kind, value, record)
            elif kind in ASSET_KINDS:
                self.asset(path, line, kind, record["value"], record)
            else:
                reason = f"{kind!r} is not one of network, domain, asn, exclusion"
                self.issue("error", path, f"line {line}", "type", reason)

    # -- records -----------------------------------------------------------------------

    def constituency(self, path, location, record) -> None:
        key = record.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            self.issue("error", path, location, "key", "must be a lowercase name such as 'ibd'")
            return
        known = self.registry.constituencies.get(key)
        if known is not None and key != DEFAULT_CONSTITUENCY:
            self.issue("error", path, location, "key", f"constituency {key!r} is declared twice")
            return
        share = record.get("share_names", False)
        if not isinstance(share, bool):
            self.issue("error", path, location, "share_names", "must be true or false")
            share = False
        self.registry.constituencies[key] = Constituency(
            key, str(record.get("name") or key), self.contacts(path, location, record), share
        )

    def contacts(self, path, location, record) -> tuple:
        value = record.get("contacts", record.get("contact"))
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.issue("error", path, location, "contacts", "must be a list of addresses")
            return ()
        return tuple(v.strip() for v in value)

    def day(self, path, location, record, field) -> Optional[date]:
        value = record.get(field)
        if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.issue("error", path, location, field, f"{value!r} is not a date (YYYY-MM-DD)")
            return None

    def organisation(self, path, location, record) -> None:
        ident = record.get("id")
        if not isinstance(ident, str) or not ident.strip():
            self.issue("error", path, location, "id", "every organisation needs an id (a CBS code such as GM0363)")
            return
        ident = ident.strip()
        if ident in self.declared:
            first = ", ".join(self.declared[ident])
            self.issue("error", path, location, "id", f"organisation {ident!r} is already declared at {first}")
            return
        self.declared[ident] = (str(path), location)
        builtin = self.registry.organisations.get(ident) if ident in self.builtin else None
        name = record.get("name") or (builtin.name if builtin else None)
        if not isinstance(name, str) or not name.strip():
            self.issue("error", path, location, "name", f"organisation {ident!r} needs a name")
            return
        kind = record.get("kind") or (builtin.kind if builtin else "other")
        if kind not in KINDS:
            self.issue("error", path, location, "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
            return
        constituency = record.get("constituency") or (builtin.constituency if builtin else DEFAULT_CONSTITUENCY)
        members = record.get("members") or []
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            self.issue("error", path, location, "members", "must be a list of organisation ids")
            members = []
        if members and kind != "shared-service":
            self.issue("error", path, location, "members", "only a shared-service organisation has members")
        try:  # language, channel, pace, openpgp: what it asks of its digests
            preferences = parse_preferences(record, Path(path).parent)
        except PreferenceError as exc:
            self.issue("error", path, location, exc.field, exc.reason)
            preferences = {}
        organisation = Organisation(
            id=ident,
            name=name.strip(),
            kind=kind,
            constituency=str(constituency),
            contacts=self.contacts(path, location, record),
            valid_from=self.day(path, location, record, "valid_from"),
            valid_until=self.day(path, location, record, "valid_until"),
            successor=record.get("successor") or None,
            members=tuple(members),
            origin=(str(path), location),
            preferences=preferences,
        )
        if organisation.valid_from and organisation.valid_until and organisation.valid_from > organisation.valid_until:
            self.issue("error", path, location, "valid_until", "lies before valid_from")
        self.registry.organisations[ident] = organisation

    def asset_record(self, path, location, record) -> None:
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
        key = None
        try:
            if kind == "network":
                key = parse_network(str(value))
                normalised = format_network(*key)
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
        source, note = str(record.get("source") or MANUAL).strip(), str(record.get("note") or "").strip()
        if key is not None:
            networks = self.registry.networks
            row = networks.add(normalised, organisation.strip(), source, note, str(path), line)
            add_entry(self.networks[key[0]], key[1] << 8 | key[2], row, self.shared, networks.asset)
            return
        self.registry.assets.append(
            Asset(kind, normalised, organisation.strip(), source, note, bool(exact), str(path), line)
        )

    def exclusion_record(self, path, location, record) -> None:
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
        self.registry.exclusions.append((kind, normalised, note, (str(path), location)))

    # -- the registry as a whole -------------------------------------------------------

    def check_references(self) -> None:
        registry = self.registry
        organisations = registry.organisations
        for organisation in organisations.values():
            path, location = organisation.origin
            if organisation.constituency not in registry.constituencies:
                reason = f"unknown constituency {organisation.constituency!r}"
                self.issue("error", path, location, "constituency", reason)
            for member in organisation.members:
                if member not in organisations:
                    self.issue("error", path, location, "members", f"unknown organisation {member!r}")
            if organisation.successor is not None:
                if organisation.successor not in organisations:
                    self.issue("error", path, location, "successor", f"unknown organisation {organisation.successor!r}")
                elif self.successor_cycle(organisation):
                    self.issue("error", path, location, "successor", "the successors form a cycle")
        owners = Counter(registry.networks.organisations)
        owners.update(asset.organisation for asset in registry.assets)
        unknown = {ident for ident in owners if ident not in organisations}
        for asset in registry.all_assets() if unknown else ():
            if asset.organisation in unknown:
                path, location = asset.origin
                self.issue("error", path, location, "organisation", f"unknown organisation {asset.organisation!r}")
        for ident, count in sorted(owners.items()):
            if ident in unknown:
                continue
            organisation = organisations[ident]
            path, location = organisation.origin
            if organisation.valid_until is not None and organisation.valid_until < self.today:
                if organisation.successor:
                    self.issue(
                        "warning", path, location, "valid_until",
                        f"{ident} ended on {organisation.valid_until} and still has {count} assets; "
                        f"they are routed to its successor {organisation.successor}",
                    )  # fmt: skip
                else:
                    self.issue(
                        "error", path, location, "valid_until",
                        f"{ident} ended on {organisation.valid_until} without a successor and still has {count} assets",
                    )  # fmt: skip
            elif organisation.valid_from is not None and organisation.valid_from > self.today:
                self.issue(
                    "warning", path, location, "valid_from",
                    f"{ident} starts on {organisation.valid_from} but already has {count} assets, routed to it now",
                )  # fmt: skip

    def successor_cycle(self, organisation) -> bool:
        seen = set()
        current = organisation
        while current is not None and current.successor:
            if current.id in seen:
                return True
            seen.add(current.id)
            current = self.registry.organisations.get(current.successor)
        return False

    def check_shared(self, index: Index) -> None:
        """An asset claimed by two organisations needs a note on each claim saying why.

        Only the claims that decide count: an imported claim that a manual one of another
        organisation overrides is no tie, and needs no note from the manual one.
        """
        for entry in index.shared:
            if len({asset.organisation for asset in entry.assets}) == 1:
                path, location = entry.assets[0].origin
                self.issue("warning", path, location, entry.assets[0].kind, f"{entry.matched} is listed more than once")
                continue
            deciding = [asset for asset in entry.assets if asset.manual] or entry.assets
            owners = {asset.organisation for asset in deciding}
            for asset in deciding if len(owners) > 1 else ():
                if not asset.note:
                    path, location = asset.origin
                    others = ", ".join(sorted(owners - {asset.organisation}))
                    self.issue(
                        "error", path, location, "note",
                        f"{entry.matched} is also claimed by {others}; a shared asset needs a note saying why",
                    )  # fmt: skip


def _split_at_commas(stream):
    """The rows of a CSV text stream that holds no quote character, read in large blocks."""
    rest = ""
    for block in iter(lambda: stream.read(1 << 22), ""):
        lines = (rest + block).split("\n")
        rest = lines.pop()
        yield from map(str.split, lines, itertools.repeat(","))
    if rest:
        yield rest.split(",")


def _looks_like_network(value: str) -> bool:
    return ":" in value or value.replace(".", "").replace("/", "").isdigit()


def database_paths(database) -> list:
    """The registry's paths as a list of Paths: ``database`` is one file or directory (a str
    or Path, as the bot's ``database`` parameter gives it) or a list of them."""
    if isinstance(database, (str, Path)):
        return [Path(database)]
    return [Path(p) for p in database or ()]


def registry_files(paths) -> list:
    """The files ``paths`` names (see :func:`database_paths`): files as given, directories
    expanded to their registry files."""
    files = []
    for path in database_paths(paths):
        if path.is_dir():
            # Hidden files are skipped: a download in progress is written under a hidden name.
            files += sorted(
                p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        else:
            files.append(path)
    return files


def load_registry(paths, include_builtin: bool = True, today: Optional[date] = None) -> Registry:
    """Read, validate and index the registry in ``paths`` (files or directories).

    ``include_builtin`` adds the 342 municipalities to the ``ibd`` constituency. Returns
    the Registry (its ``issues`` holds the warnings); raises RegistryError on any error.
    """
    with _collector_paused():
        return _load(paths, include_builtin, today or utc_today())


@contextlib.contextmanager
def _collector_paused():
    """Loading makes millions of objects that live on and no reference cycles; with the
    garbage collector on, its full collections would walk the growing registry over and
    over (a quarter of the load time of a million networks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(paths, include_builtin: bool, today: date) -> Registry:
    reader = _Reader(include_builtin, today)
    files = registry_files(paths)
    if not files:
        reader.issue("error", "", "", "", "no registry files were given")
    for path in files:
        reader.read(path)
    reader.check_references()
    registry = reader.registry
    # Indexed even when there are errors already: the index finds the assets claimed twice,
    # and the operator gets every problem of the files at once.
    registry.index = Index(registry, reader.networks, reader.shared)
    reader.networks = None  # the range tables hold what is needed; free the dictionaries
    reader.check_shared(registry.index)
    if any(i.level == "error" for i in reader.issues):
        raise RegistryError(reader.issues)
    registry.issues = reader.issues
    return registry
