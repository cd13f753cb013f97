"""Claims: what a sectoral CERT's constituency owns, published for the hub that routes to it.

A claims file is a registry document (YAML or JSON) with a ``claims`` header
(``harmonization/claims.md``). ``intelmq-nsm constituency export --claims KEY`` writes one
from the CERT's full registry (``export.py``); the hub's constituency expert downloads each
of its CERTs' files (``update.update_claims``) and reads them, with its own files, as one
registry through the same loader. This module holds what reading a claims document checks
(a ``ClaimsScope`` per document), which file the hub takes from which CERT and what each
may do (``ClaimsSource``, ``ClaimsPolicy``), and the status file beside each claims file
that says whether its last download was taken.

What a claims file may not do, each refused with its file, record and field:

- speak for another constituency than the one it declares, or than the one the hub's
  configuration lets that file speak for (its header, its constituency record, an
  organisation's constituency, an asset's organisation);
- name contacts, delivery preferences, OpenPGP keys, validity dates or anything else about
  its organisations: only ``id``, ``name``, ``kind`` and ``members``;
- declare organisations outside its own name space (``<key>:…``; the organisation
  ``cert:<key>``, which owns every asset that names no organisation, is made from its
  constituency record), or name a built-in municipality unless the hub allows it;
- exclude networks (at the hub an exclusion would take them from every constituency; the
  export leaves excluded addresses out of the networks instead); its domain exclusions
  leave out its own claims only;
- give its assets a source (they are ``claims:<key>``, so the hub's own manual assets win);
- be larger than the hub's cap, or hold other counts of records than its header states
  (a truncated or altered file).
"""

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from intelmq_nsm.cert_ids import cert_organisation
from intelmq_nsm.storage import atomic_write

from .model import CERT_ORGANISATION, CONSTITUENCY_KEY, DEFAULT_CONSTITUENCY
from .paths import database_paths

#: The document section that makes a registry document a claims file, and its keys.
HEADER = "claims"
HEADER_KEYS = ("constituency", "exported_at", "assets", "exclusions")
#: What each kind of record of a claims file may carry: what routing needs, nothing more.
ALLOWED = {
    "constituencies": ("key", "name", "share_names"),
    "organisations": ("id", "name", "kind", "constituency", "members"),
    "assets": ("network", "domain", "asn", "organisation", "exact", "note"),
    "exclusions": ("domain", "note"),
}
#: The largest claims file a hub takes unless its configuration says otherwise (bytes).
MAX_SIZE = 32 * 1024 * 1024
#: The suffixes a claims file may have; a URL naming another is stored as ``.json``.
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")


def _refusal(field: str, section: str) -> str:
    if field in ("contacts", "contact"):
        return "a claims file names no contacts: a CERT keeps its constituents' contacts to itself"
    if field == "source":
        return "the assets of a claims file take their source from it (claims:<constituency>)"
    if section == "exclusions" and field == "network":
        return (
            "a claims file leaves what is excluded out of its networks: at the hub, an excluded network "
            "would be taken from every constituency"
        )
    return f"a claims file's {section} carry only {', '.join(ALLOWED[section])}"


@dataclass(frozen=True)
class ClaimsSource:
    """A CERT whose claims a hub takes: the constituency key its file may speak for, where
    the file comes from, where the hub keeps it, and what it may do."""

    key: str
    url: Optional[str]
    path: Path
    builtin_municipalities: bool = False  # may it name the built-in municipalities (constituency ibd)?
    max_size: int = MAX_SIZE


def claims_file(directory, key: str, url: Optional[str] = None) -> Path:
    """Where a hub keeps constituency ``key``'s claims: ``claims-<key>.json`` in its
    registry directory (``.yaml`` when the URL names a YAML file)."""
    suffix = Path((url or "").split("?", 1)[0]).suffix.lower()
    return Path(directory) / f"claims-{key}{suffix if suffix in DOCUMENT_SUFFIXES else '.json'}"


def claims_policy(claims, database, max_size: int = MAX_SIZE) -> Optional["ClaimsPolicy"]:
    """The policy the constituency expert's parameters set, or None without ``claims``.

    ``claims`` maps each constituency key to the URL of its claims, or to ``{url,
    builtin_municipalities}``; the claims are kept in the registry directory ``database``
    (the expert's parameter, which must then name one directory). Raises ValueError,
    naming the key and the problem, on parameters not of that shape."""
    if not claims:
        return None
    if not isinstance(claims, dict):
        raise ValueError("claims must map each constituency key to the URL of its claims file")
    paths = database_paths(database)
    if len(paths) != 1 or not paths[0].is_dir():
        raise ValueError("claims need the parameter database to be one directory, where the claims are kept")
    directory = paths[0]
    if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
        raise ValueError(f"claims_max_size must be a positive number of bytes, not {max_size!r}")
    sources = []
    for key, value in claims.items():
        if not isinstance(key, str) or not CONSTITUENCY_KEY.match(key):
            raise ValueError(f"claims names {key!r}, which is not a constituency key such as 'ibd'")
        settings = {"url": value} if isinstance(value, str) else value
        if not isinstance(settings, dict) or set(settings) - {"url", "builtin_municipalities"}:
            raise ValueError(f"claims.{key} must be a URL or a mapping of url and builtin_municipalities")
        url, builtin = settings.get("url"), settings.get("builtin_municipalities", False)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError(f"claims.{key}.url must be an http(s) URL, not {url!r}")
        if not isinstance(builtin, bool):
            raise ValueError(f"claims.{key}.builtin_municipalities must be true or false")
        sources.append(ClaimsSource(key, url, claims_file(directory, key, url), builtin, max_size))
    return ClaimsPolicy(sources)


class ClaimsPolicy:
    """Which files of a hub's registry are whose claims: a claims document is read only
    from the file of a source, and speaks only for that source's constituency."""

    def __init__(self, sources):
        self.sources = tuple(sources)
        self._by_path = {_key_of(source.path): source for source in self.sources}

    def source_of(self, path) -> Optional[ClaimsSource]:
        return self._by_path.get(_key_of(path))

    def reading(self, source: ClaimsSource, path) -> "ClaimsPolicy":
        """The same policy with ``source``'s claims read from ``path`` (a download being checked)."""
        moved = ClaimsSource(**{**vars(source), "path": Path(path)})
        return ClaimsPolicy([moved if s == source else s for s in self.sources])


def _key_of(path) -> Path:
    return Path(path).absolute()


class ClaimsScope:
    """The rules of one claims document while its records are read."""

    def __init__(self, key: str, builtin_allowed: bool, header: dict):
        self.key = key
        self.builtin_allowed = builtin_allowed
        self.header = header  # constituency, exported_at (normalised), assets, exclusions
        self.cert = cert_organisation(key)
        self.prefix = f"{key}:"
        self.constituency_declared = False

    @classmethod
    def open(cls, header, counts: dict, source: Optional[ClaimsSource], policy: Optional[ClaimsPolicy]):
        """``(scope or None, [(field, reason), ...])`` for a document's ``claims`` header.

        ``counts``: how many records the document's sections hold. ``source``: the hub's
        source this file is read as (None when the file is no source's); ``policy``: the
        hub's, or None where no hub's configuration applies (the CERT checking its export,
        ``intelmq-nsm constituency validate``): then a claims file speaks for the
        constituency it declares, and may name built-in municipalities if that is ibd."""
        problems = []
        if not isinstance(header, dict):
            return None, [(HEADER, f"must be a mapping of {', '.join(HEADER_KEYS)}")]
        unknown = sorted(set(header) - set(HEADER_KEYS))
        problems += [(f"{HEADER}.{key}", "is not a key of a claims header") for key in unknown]
        key = header.get("constituency")
        if not isinstance(key, str) or not CONSTITUENCY_KEY.match(key):
            problems.append((f"{HEADER}.constituency", "must be the key of the claiming constituency, such as 'ibd'"))
            key = None
        if policy is not None and source is None:
            problems.append((HEADER, "a claims file is read only as the claims of a source the configuration names"))
        elif source is not None and key is not None and key != source.key:
            problems.append((
                f"{HEADER}.constituency",
                f"the claims file of {source.key!r} speaks for {key!r}: it may speak only for {source.key!r}",
            ))  # fmt: skip
        exported_at = _moment(header.get("exported_at"))
        if exported_at is None:
            problems.append((f"{HEADER}.exported_at", "must be the time of export, ISO 8601 with a time zone"))
        for section in ("assets", "exclusions"):
            stated = header.get(section)
            if not isinstance(stated, int) or isinstance(stated, bool) or stated < 0:
                problems.append((f"{HEADER}.{section}", f"must count the file's {section}"))
            elif stated != counts.get(section, 0):
                problems.append((
                    f"{HEADER}.{section}",
                    f"the header counts {stated} {section}, the file holds {counts.get(section, 0)}: "
                    "it was cut short or altered",
                ))  # fmt: skip
        if problems:
            return None, problems
        builtin = source.builtin_municipalities if source is not None else key == DEFAULT_CONSTITUENCY
        normal = {**header, "exported_at": exported_at.isoformat()}
        return cls(key, builtin, normal), []

    def strip(self, section: str, record: dict, ignore=()) -> tuple:
        """``(record with only what a claims file may carry, [(field, reason), ...])``."""
        allowed = ALLOWED[section]
        refused = [k for k in record if k not in allowed and k not in ignore]
        if not refused:
            return record, []
        kept = {k: v for k, v in record.items() if k not in refused}
        return kept, [(k, _refusal(k, section)) for k in refused]

    def constituency_problem(self, key) -> Optional[str]:
        if key != self.key:
            return f"the claims of {self.key!r} declare their own constituency only, not {key!r}"
        if self.constituency_declared:
            return f"the claims of {self.key!r} declare their constituency once"
        return None

    def organisation_problem(self, ident: str, builtin_constituency: Optional[str], declaring: bool) -> Optional[str]:
        """Why a claims file may not declare (``declaring``) or name as an asset's owner the
        organisation ``ident``, or None. ``builtin_constituency``: the constituency of the
        built-in municipality of that id, if it is one."""
        if ident == self.cert:
            return f"{ident} is made from the constituency record, not declared" if declaring else None
        if ident.startswith(self.prefix):
            return None
        if ident.startswith(CERT_ORGANISATION):
            return f"{ident} stands for another constituency; the claims of {self.key!r} may not name it"
        if builtin_constituency is not None:
            if not self.builtin_allowed:
                return f"{ident} is a built-in municipality, which the claims of {self.key!r} may not name here"
            if builtin_constituency != self.key:
                return f"{ident} is a built-in municipality of constituency {builtin_constituency!r}, not {self.key!r}"
            return None
        return f"the claims of {self.key!r} name organisations {self.prefix}… (or {self.cert}), not {ident!r}"


def _moment(value) -> Optional[datetime]:
    """An aware datetime from ISO 8601 text (``Z`` allowed), or None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else None


# -- the status of a source's last download --------------------------------------------------


def status_file(path) -> Path:
    """The status beside a claims file: ``claims-ibd.status`` (no registry suffix: the
    loader's directory scan passes it by)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.status")


def read_status(path) -> Optional[dict]:
    """The status of the claims file ``path``, or None if none was written."""
    try:
        text = status_file(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"taken": False, "reason": f"its status file cannot be read: {exc.strerror or exc}"}
    try:
        status = json.loads(text)
    except ValueError:
        return {"taken": False, "reason": "its status file is not JSON"}
    return status if isinstance(status, dict) else {"taken": False, "reason": "its status file is not a mapping"}


def write_status(source: ClaimsSource, taken: bool, reason: str = "", in_use: Optional[dict] = None, now=None) -> dict:
    """Record the outcome of a download of ``source``'s claims. ``in_use``: what the
    taken file says of itself (``exported_at``, ``version``); after a failure, what the
    last status said is in use stays."""
    checked = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    previous = (read_status(source.path) or {}).get("in_use")
    if taken:
        in_use = {**(in_use or {}), "taken_at": checked}
    elif source.path.exists():  # what is in use stays; a file put there by hand has no status yet
        in_use = previous if previous is not None else {}
    else:
        in_use = None
    status = {
        "constituency": source.key, "url": source.url, "checked_at": checked, "taken": taken,
        "reason": reason, "in_use": in_use,
    }  # fmt: skip
    atomic_write(status_file(source.path), json.dumps(status, indent=2, ensure_ascii=False) + "\n")
    return status


def stale(status: Optional[dict], key: str = "") -> Optional[str]:
    """The sentence an operator reads when the last download of a CERT's claims was not
    taken (the bot's log, its ``check()``, ``intelmq-nsm constituency validate``), or None."""
    if not status or status.get("taken", True):
        return None
    key = status.get("constituency") or key
    url = f" from {status['url']}" if status.get("url") else ""
    when = f" at {status['checked_at']}" if status.get("checked_at") else ""
    in_use = status.get("in_use")
    if in_use and in_use.get("exported_at"):
        kept = f"the claims exported at {in_use['exported_at']} stay in use"
    elif in_use is not None:
        kept = "the claims the hub has stay in use"
    else:
        kept = f"the hub has no claims of {key!r}: nothing is routed to it by claims"
    reason = str(status.get("reason") or "no reason recorded").rstrip(".")
    return f"The claims of constituency {key!r}{url} were not taken{when}: {reason}; {kept}."


def source_problems(policy: Optional[ClaimsPolicy]) -> list:
    """What an operator must hear of a hub's claims sources, as ``[(level, sentence)]``:
    an error for each whose last download was not taken, a warning for each not taken yet."""
    found = []
    for source in policy.sources if policy is not None else ():
        message = stale(read_status(source.path), source.key)
        if message:
            found.append(("error", message))
        elif not source.path.exists():
            found.append((
                "warning",
                f"No claims of constituency {source.key!r} have been taken from {source.url} yet: nothing is "
                "routed to it by claims until --update-database takes them.",
            ))  # fmt: skip
    return found
