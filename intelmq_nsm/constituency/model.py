"""The constituency registry's data model: plain dataclasses, no IntelMQ needed."""

import re
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date
from typing import Optional

from intelmq_nsm.cert_ids import CERT_PREFIX

from .fields import addresses, boolean, day, identifiers, one_of, record_field, text
from .preferences import KEYS as PREFERENCE_KEYS
from .preferences import parse as parse_preferences

#: Organisation kinds, in the order a decision lists them (municipality before its shared service).
KINDS = ("municipality", "shared-service", "other")
#: The source of an asset typed by hand; any other source is the name of an import.
MANUAL = "manual"
#: The source of an asset read from a sectoral CERT's claims file is this and the claiming
#: constituency's key (``claims:ibd``): imported, so a hub's own manual asset beats it
#: (harmonization/claims.md).
CLAIMS_SOURCE = "claims:"
#: The organisation that stands for a whole constituency in its claims: ``cert:ibd`` owns
#: every asset a CERT claims without naming an organisation of its own.
CERT_ORGANISATION = CERT_PREFIX
#: The constituency the shipped municipality list belongs to.
DEFAULT_CONSTITUENCY = "ibd"
#: A constituency's key: also the name of the expert's path for it.
CONSTITUENCY_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")
#: An organisation's role for a finding, by the kind of value that matched it: it runs the
#: service (the domain), the system lies in its network, or in its autonomous system.
ROLES = {"domain": "service", "network": "network", "asn": "asn"}
#: The role an organisation matched in several ways is given: the first of these it has.
ROLE_ORDER = ("service", "network", "asn")


def claims_source(key: str) -> str:
    """The source of the assets of constituency ``key``'s claims: ``claims:ibd``."""
    return CLAIMS_SOURCE + key


def claimed_by(source: str) -> Optional[str]:
    """The constituency whose claims an asset of ``source`` came from, or None."""
    return source[len(CLAIMS_SOURCE) :] if source.startswith(CLAIMS_SOURCE) else None


@dataclass(frozen=True)
class Issue:
    """One validation finding: where it is (file, line or record, field) and why."""

    level: str  # "error" or "warning"
    file: str
    location: str  # "line 12", "row 7" or a JSON path such as "assets[3]"
    field: str
    reason: str

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.file, self.location, self.field and f"field {self.field!r}") if part)
        return f"{self.level}: {where}: {self.reason}"


class RegistryError(ValueError):
    """A registry that failed validation; ``issues`` lists every finding (errors and warnings)."""

    def __init__(self, issues):
        self.issues = list(issues)
        errors = [i for i in self.issues if i.level == "error"]
        shown = "; ".join(str(i) for i in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"The constituency registry is invalid: {shown}{more}.")


class Issues(list):
    """The issues found while reading a registry, in the order found."""

    def add(self, level: str, file, location: str, field: str, reason: str) -> None:
        self.append(Issue(level, str(file), location, field, reason))

    @property
    def errors(self) -> list:
        return [issue for issue in self if issue.level == "error"]


# Each field declared with ``record_field`` is read from the registry record's key of the
# same name, by the reader it names (see fields.py and records.py): a new field of an
# organisation or constituency is one line here, its reader, its default.


@dataclass
class Constituency:
    key: str
    name: str = record_field(text)  # the key if the record gives none
    contacts: tuple = record_field(addresses, (), keys=("contacts", "contact"))
    #: Whether researchers may see the names of this constituency's organisations in what
    #: became of their findings (otherwise only counts).
    share_names: bool = record_field(boolean, False)


@dataclass
class Organisation:
    id: str
    name: str = record_field(text)  # required, unless the id is a built-in municipality's
    kind: str = record_field(one_of(*KINDS), "other")
    constituency: str = record_field(text, DEFAULT_CONSTITUENCY)
    contacts: tuple = record_field(addresses, (), keys=("contacts", "contact"))
    valid_from: Optional[date] = record_field(day, None)
    valid_until: Optional[date] = record_field(day, None)
    #: The organisation that answers for this one after ``valid_until`` (a merger).
    successor: Optional[str] = record_field(text, None)
    #: A shared-service organisation's: the organisations it works for.
    members: tuple = record_field(identifiers, ())
    origin: tuple = ("", "")  # (file, location) it was declared at, or ("built-in", "")
    #: What it asks of its digests (language, channel, pace, openpgp), only what its entry
    #: sets: the digest output reads them by the same rules (preferences.py).
    preferences: dict = record_field(parse_preferences, factory=dict, keys=PREFERENCE_KEYS, whole_record=True)

    def as_event_dict(self, role: str) -> dict:
        """The organisation as ``extra.nsm.organisations`` carries it, with its ``role`` and
        its delivery preferences (the digest output follows them)."""
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "contacts": list(self.contacts), "role": role,
            **self.preferences,
        }  # fmt: skip


class Asset:
    """One network, domain or ASN of an organisation.

    A plain class with slots, not a dataclass: a registry holds over a million of them.
    A single asset also serves as its own index entry (``assets``, ``matched``,
    ``specificity``), so that only networks claimed twice need an ``Entry`` of their own.
    """

    __slots__ = ("exact", "file", "kind", "line", "note", "organisation", "source", "value")

    def __init__(self, kind, value, organisation, source=MANUAL, note="", exact=False, file="", line=""):
        self.kind = kind  # "network", "domain" or "asn"
        self.value = value  # normalised: "192.0.2.0/24", "gemeente.example", "64496"
        self.organisation = organisation
        self.source = source or MANUAL
        self.note = note or ""
        self.exact = exact  # domains only: do not cover subdomains
        self.file = file
        self.line = line  # a line number, or a location such as "assets[3]"

    @property
    def origin(self) -> tuple:
        return self.file, f"line {self.line}" if isinstance(self.line, int) else self.line

    @property
    def manual(self) -> bool:
        return self.source == MANUAL

    @property
    def assets(self) -> tuple:
        return (self,)

    @property
    def matched(self) -> str:
        return self.value

    @property
    def specificity(self) -> int:
        if self.kind == "network":
            return int(self.value.rpartition("/")[2])
        if self.kind == "domain":
            return self.value.count(".") + 1
        return 0

    def __repr__(self) -> str:
        return f"Asset({self.kind}={self.value!r}, organisation={self.organisation!r}, source={self.source!r})"


class NetworkAssets:
    """The network assets of a registry, column by column; row ``i`` of each list is one asset.

    A registry can hold a million networks: as Asset objects they took about 230 MB and a
    third of the load time. A row here is a few list slots whose strings are shared (one
    object per distinct organisation, source and note); ``asset(row)`` makes the Asset of
    a row when a lookup needs it, and keeps it, as the same networks tend to match again.
    """

    def __init__(self):
        self.values = []  # normalised: "192.0.2.0/24"
        self.organisations = []
        self.sources = []
        self.notes = []
        self.lines = array("l")  # CSV line or YAML line; -1: see ``locations``
        self.locations = {}  # row → a location that is no line number, such as "assets[3]"
        self.file_starts, self.file_names = [], []  # the first row of each file, and the file
        self.made = []  # row → its Asset once made, else None (see ``reserve``)

    def extend(self, file: str, values: list, organisations: list, sources: list, notes: list, lines) -> int:
        """Append rows of one file, column by column: the one way networks are added.

        ``values`` are networks in normal form, ``sources`` and ``notes`` as stored (an
        empty source is ``MANUAL``), ``lines`` line numbers or locations such as
        ``"assets[3]"``. Returns the first new row. A bulk file hands its rows over in
        blocks: a call per row would cost a tenth of the load of a million networks.
        """
        if not self.file_names or self.file_names[-1] != file:
            self.file_starts.append(len(self.values))
            self.file_names.append(file)
        first = len(self.values)
        try:
            numbers = array("l", lines)
        except TypeError:  # locations among them: -1 in the column, the location aside
            numbers = array("l", (line if isinstance(line, int) else -1 for line in lines))
            self.locations.update((first + i, line) for i, line in enumerate(lines) if not isinstance(line, int))
        self.values += values
        self.organisations += organisations
        self.sources += sources
        self.notes += notes
        self.lines += numbers
        return first

    def reserve(self) -> None:
        """Give every row its slot in ``made`` (rows added since stay without one)."""
        self.made.extend([None] * (len(self.values) - len(self.made)))

    def asset(self, row: int) -> "Asset":
        """The Asset of ``row``, made once and kept."""
        made = self.made
        if row >= len(made):
            self.reserve()
        asset = made[row]
        if asset is None:
            asset = made[row] = self._make(row)
        return asset

    def _make(self, row: int) -> "Asset":
        line = self.lines[row]
        return Asset(
            "network", self.values[row], self.organisations[row], self.sources[row], self.notes[row], False,
            self.file_names[bisect_right(self.file_starts, row) - 1], line if line >= 0 else self.locations[row],
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        """Every network as an Asset (made for the iteration, not kept)."""
        return map(self._make, range(len(self.values)))


@dataclass
class Match:
    """A looked-up event value and the registry entry that matched it."""

    field: str
    value: str
    kind: str
    matched: str
    asset: Asset
    organisation: Organisation

    def as_event_dict(self) -> dict:
        return {
            "field": self.field,
            "value": self.value,
            "kind": self.kind,
            "matched": self.matched,
            "organisation": self.organisation.id,
            "source": self.asset.source,
            "note": self.asset.note,
        }


@dataclass
class Route:
    """The decision for one constituency: its organisations, why, and any unresolved tie."""

    constituency: str
    organisations: list = field(default_factory=list)
    matches: list = field(default_factory=list)
    tie: list = field(default_factory=list)

    def role_of(self, organisation_id: str) -> str:
        """``service``, ``network`` or ``asn``: what the organisation's matches say it owns
        (the first of ``ROLE_ORDER`` when it matched in several ways)."""
        matches = self.matches
        if len(matches) == 1:  # the common case, without the general search
            return ROLES[matches[0].kind]
        roles = {ROLES[m.kind] for m in matches if m.organisation.id == organisation_id}
        return next(role for role in ROLE_ORDER if role in roles)

    def organisation_dicts(self) -> list:
        """The organisations as ``extra.nsm.organisations`` carries them, each with its role."""
        return [o.as_event_dict(self.role_of(o.id)) for o in self.organisations]
