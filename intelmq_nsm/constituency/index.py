"""The in-memory index: longest-prefix match for networks, suffix match for domains, ASNs.

Networks are kept as a *range table*: the prefixes are flattened once, at load time, into
sorted, disjoint address ranges, each pointing to the most specific prefix that covers it;
a lookup is then one C-level ``bisect`` over a contiguous array. py-radix, the C radix tree
first planned, used 553 MB for the benchmark's 1.2 million networks alone, and pytricia
inserted a million in 2.1 s and looked them up slower than the range table
(``benchmarks/RESULTS.md``). The table points to rows of the registry's ``NetworkAssets``;
the Asset of a row is made when a decision needs it.
"""

import itertools
import socket
from array import array
from bisect import bisect_right
from collections import defaultdict
from datetime import date
from typing import Optional, Union

import numpy as np

from .model import KINDS, Asset, Match, Route, claimed_by
from .values import (
    format_network,
    normalise_domain,
    parents,
    parse_asn,
    parse_ip,
    parse_network,
    url_host,
    utc_today,
)

_inet_pton, _AF_INET, _from_bytes = socket.inet_pton, socket.AF_INET, int.from_bytes
#: Which kind of value an event field holds, by the field name's last part.
FIELD_KINDS = {"fqdn": "domain", "url": "url", "ip": "ip", "asn": "asn"}
#: Precedence under ``owners="most-specific"``: a domain decides before a network, a network before an ASN.
PRECEDENCE = ("domain", "network", "asn")
#: Who a decision tags: the owners of the service and of the network (``all``), or the
#: owner of the most specific kind of match alone (``most-specific``).
OWNERS = ("all", "most-specific")


class RangeTable:
    """Longest-prefix match for one address family, over a flattened prefix list."""

    __slots__ = ("objects", "slots", "starts")

    def __init__(self, bits: int, entries: dict):
        """``entries`` maps ``start << 8 | prefixlen`` to the value of that prefix."""
        self.objects = [*entries.values(), None]  # the last slot: no prefix covers the range
        starts, slots = _flatten(bits, entries)
        # Contiguous arrays, not lists of int objects: bisect then reads neighbouring memory
        # instead of chasing a pointer per step, two to three times faster on a million
        # ranges, in a fifth of the memory. IPv6 addresses do not fit 64 bits: a list.
        self.starts = array("Q", starts.tobytes()) if bits == 32 else starts
        self.slots = array("q", slots.tobytes())

    def lookup(self, address: int):
        index = bisect_right(self.starts, address) - 1
        return self.objects[self.slots[index]] if index >= 0 else None

    def __len__(self):
        return len(self.starts)


def _flatten(bits: int, entries: dict):
    """The prefixes as sorted, disjoint ranges ``(starts, slots)``: from ``starts[i]`` on, the
    most specific prefix is the ``slots[i]``-th of ``entries`` (``len(entries)``: none).

    A sweep over the events "a prefix opens at its first address" and "closes after its
    last one", sorted by address. Prefixes nest, so the nesting depth after each event is
    a running sum; after an open its prefix covers what follows, after a close the most
    recent open at the depth left over does. In numpy: the same sweep as a Python loop
    took 1.7 s for a million networks, these array operations about half a second.
    """
    count = len(entries)
    if not count:
        return (np.zeros(0, np.uint64) if bits == 32 else []), np.zeros(0, np.int64)
    if bits == 32:
        keys = np.fromiter(entries, dtype=np.uint64, count=count)
        lengths = keys & np.uint64(0xFF)
        first = keys >> np.uint64(8)
        after = first + (np.uint64(1) << (np.uint64(32) - lengths))
        closes = after < np.uint64(1 << 32)  # a prefix reaching the end never closes
        after = after[closes]
        # One sort key: the address, then closes before opens, then outer opens first.
        order = np.argsort(np.concatenate([after << np.uint64(7), first << np.uint64(7) | np.uint64(64) | lengths]))
        position = np.concatenate([after, first])[order]
        boundary = position[1:] != position[:-1]
    else:  # 128-bit addresses, as two 64-bit halves
        first = [key >> 8 for key in entries]
        lengths = [key & 0xFF for key in entries]
        after = [start + (1 << (bits - length)) for start, length in zip(first, lengths)]
        closes = np.array([end < 1 << bits for end in after], dtype=bool)
        position = [end for end, closing in zip(after, closes.tolist()) if closing] + first
        high = np.array([p >> 64 for p in position], dtype=np.uint64)
        low = np.array([p & 0xFFFFFFFFFFFFFFFF for p in position], dtype=np.uint64)
        ties = np.concatenate([np.zeros(int(closes.sum()), np.int64), 64 + np.array(lengths, dtype=np.int64)])
        order = np.lexsort((ties, low, high))
        position = [position[i] for i in order.tolist()]
        high, low = high[order], low[order]
        boundary = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    closing_count = int(closes.sum())
    slot = np.concatenate([np.arange(count)[closes], np.arange(count)])[order]
    opens = (np.arange(closing_count + count) >= closing_count)[order]
    depth = np.cumsum(np.where(opens, 1, -1))
    last = np.append(boundary, True)  # the state after an address's last event is what counts
    value = np.where(opens, slot, count)
    closing = last & ~opens
    events = np.arange(len(slot))
    for level in np.unique(depth[closing]):
        if level > 0:
            here = closing & (depth == level)
            recent = np.maximum.accumulate(np.where(opens & (depth == level), events, -1))
            value[here] = slot[recent[here]]
    value = value[last]
    changed = np.append(True, value[1:] != value[:-1])  # neighbours with one prefix merge
    if bits == 32:
        return position[last][changed], value[changed]
    return list(itertools.compress(itertools.compress(position, last.tolist()), changed.tolist())), value[changed]


class Entry:
    """The assets registered under one network, domain or ASN when several claim it.

    A network or domain with a single asset is indexed by that ``Asset`` itself, which
    offers the same three attributes.
    """

    __slots__ = ("assets", "matched", "specificity")

    def __init__(self, first, second):
        self.matched = first.matched
        self.specificity = first.specificity
        self.assets = [first, second]

    @staticmethod
    def of(assets: list):
        """The entry of ``assets`` (one asset is its own entry), or None if there is none."""
        if len(assets) < 2:
            return assets[0] if assets else None
        entry = Entry(assets[0], assets[1])
        entry.assets += assets[2:]
        return entry


def _same(value):
    return value


def add_entry(table: dict, key, value, shared: list, asset_of=_same) -> None:
    """Index ``value`` under ``key``; a second claim turns the slot into an Entry (noted in
    ``shared``). ``asset_of`` turns a stored value into its Asset (for networks, a row of
    ``NetworkAssets`` into the Asset made from it)."""
    present = table.get(key)
    if present is None:
        table[key] = value
    elif type(present) is Entry:
        present.assets.append(asset_of(value))
    else:
        table[key] = entry = Entry(asset_of(present), asset_of(value))
        shared.append(entry)


class NetworkTables:
    """A registry's networks as they are read, keyed for the range tables that ``Index``
    builds: per IP version, ``start << 8 | prefixlen`` → the network's row in the
    registry's ``NetworkAssets``, or an Entry once several rows claim that network."""

    def __init__(self, asset_of):
        self.tables = {4: {}, 6: {}}
        self.shared = []  # the entries claimed more than once
        self._asset_of = asset_of  # a row → its Asset, for an Entry

    def add(self, first: int, networks: list) -> None:
        """Index the rows from ``first`` on: ``networks[i]`` is row ``first + i`` parsed,
        ``(version, start, prefixlen)`` as ``values.parse_network`` gives it."""
        tables, shared, asset_of = self.tables, self.shared, self._asset_of
        for (version, start, prefixlen), row in zip(networks, itertools.count(first)):
            table, key = tables[version], start << 8 | prefixlen
            if table.setdefault(key, row) is not row:  # claimed before: the row joins an Entry
                add_entry(table, key, row, shared, asset_of)


def _preferred(assets) -> list:
    """Manual assets beat imported ones: the manual ones if there are any, else all."""
    manual = [asset for asset in assets if asset.manual]
    return manual or list(assets)


def _merged(first, second):
    """One constituency's route from two kinds of match: both kinds' organisations and matches;
    a tie within either kind stays a tie (the owners of two kinds are no tie)."""
    organisations = list(first.organisations)
    organisations += [o for o in second.organisations if o not in organisations]
    organisations.sort(key=lambda o: (KINDS.index(o.kind), o.id))
    tie = sorted({*first.tie, *second.tie})
    return Route(first.constituency, organisations, first.matches + second.matches, tie)


class Index:
    """Every asset and exclusion of a registry, ready for lookups."""

    def __init__(self, registry, networks: NetworkTables):
        """``networks`` holds the registry's networks as they were read (its tables are
        emptied here, one at a time)."""
        self.registry = registry
        self.shared = networks.shared
        self._network = registry.networks.asset  # a row of the range tables → its Asset
        self.domains = {}  # name → the asset(s) registered for exactly that name
        self.subdomains = {}  # name → the asset(s) that also cover its subdomains
        self.asns = {}
        subdomain_claims = []  # a name claimed twice is already noted through self.domains
        for asset in registry.assets:
            if asset.kind == "domain":
                add_entry(self.domains, asset.value, asset, self.shared)
                if not asset.exact:
                    add_entry(self.subdomains, asset.value, asset, subdomain_claims)
            elif asset.kind == "asn":
                add_entry(self.asns, int(asset.value), asset, self.shared)
        excluded = {4: {}, 6: {}}
        self.excluded_domains = set()
        for kind, value, _note, _origin in registry.exclusions:
            if kind == "network":
                version, start, prefixlen = parse_network(value)
                excluded[version][start << 8 | prefixlen] = value
            else:
                self.excluded_domains.add(value)
        #: Domains that constituencies' claims leave out of their own claims: name → keys.
        self.claim_exclusions = defaultdict(set)
        for key, value, _note, _origin in registry.claim_exclusions:
            self.claim_exclusions[value].add(key)
        self.claim_exclusions = dict(self.claim_exclusions)
        # Popped one at a time: each dictionary is freed before the next table is built.
        tables = networks.tables
        self.networks = {4: RangeTable(32, tables.pop(4)), 6: RangeTable(128, tables.pop(6))}
        self.exclusions = {4: RangeTable(32, excluded[4]), 6: RangeTable(128, excluded[6])}
        self._effective = {}  # (organisation id, day) → organisation that answers for it that day
        self._v4_starts, self._v4_slots, self._v4_objects = (
            self.networks[4].starts, self.networks[4].slots, self.networks[4].objects
        )  # fmt: skip
        self._v4_exclusions = len(self.exclusions[4]) > 0

    # -- raw lookups --------------------------------------------------------------------

    def lookup_ip(self, text: str) -> Union[int, Entry, None]:
        """The most specific network holding ``text``, unless an exclusion covers it: its row
        in ``registry.networks`` (``asset_of`` makes its Asset), or an Entry if several
        assets claim that network, or None."""
        try:  # the common case, IPv4, first and without the general parser's checks
            address = _from_bytes(_inet_pton(_AF_INET, text), "big")
        except (OSError, TypeError):
            return self._lookup_ip(text)
        if self._v4_exclusions and self.exclusions[4].lookup(address) is not None:
            return None
        index = bisect_right(self._v4_starts, address) - 1
        return self._v4_objects[self._v4_slots[index]] if index >= 0 else None

    def _lookup_ip(self, text) -> Union[int, Entry, None]:
        parsed = parse_ip(str(text))
        if parsed is None:
            return None
        version, address = parsed
        if self.exclusions[version].lookup(address) is not None:
            return None
        return self.networks[version].lookup(address)

    def asset_of(self, found):
        """What a lookup found as an Asset or Entry: a network's row becomes its Asset.

        Networks are stored as rows (see NetworkAssets); the Asset of a row is made the
        first time it matches (about a microsecond) and kept for the next time.
        """
        return self._network(found) if type(found) is int else found

    def network_entry(self, version: int, address: int) -> Optional[Entry]:
        """The most specific network entry holding ``address`` (an int), exclusions aside."""
        return self.asset_of(self.networks[version].lookup(address))

    def lookup_domain(self, text: str) -> Optional[Entry]:
        """The most specific domain entry for ``text`` (a name, or a subdomain of a non-exact one)."""
        # Only the normalisation the registry applied; a name that is not valid simply
        # matches nothing, as the registry holds valid names only.
        name = text.strip().rstrip(".").lower()
        if not name.isascii():
            try:
                name = normalise_domain(name)
            except ValueError:
                return None
        if self._domain_excluded(name):
            return None
        if self.claim_exclusions:
            return self._lookup_claimed_domain(name)
        entry = self.domains.get(name)
        if entry is not None:
            return entry
        subdomains = self.subdomains
        dot = name.find(".")
        while dot >= 0:
            entry = subdomains.get(name[dot + 1 :])
            if entry is not None:
                return entry
            dot = name.find(".", dot + 1)
        return None

    def _lookup_claimed_domain(self, name: str) -> Optional[Entry]:
        """``lookup_domain`` where claims leave names out of their own claims: a name at or
        below a constituency's claims exclusion matches none of that constituency's claims
        (as a registry's own exclusion matches nothing), and the others' claims still."""
        levels = [name, *parents(name)]
        excluded = set().union(*(self.claim_exclusions.get(level, ()) for level in levels))
        for depth, level in enumerate(levels):
            entry = (self.subdomains if depth else self.domains).get(level)
            if entry is not None and excluded:
                entry = Entry.of([asset for asset in entry.assets if claimed_by(asset.source) not in excluded])
            if entry is not None:
                return entry
        return None

    def _domain_excluded(self, name: str) -> bool:
        excluded = self.excluded_domains
        return bool(excluded) and (name in excluded or any(parent in excluded for parent in parents(name)))

    def lookup_asn(self, value) -> Optional[Entry]:
        try:
            return self.asns.get(parse_asn(value))
        except ValueError:
            return None

    # -- decisions ----------------------------------------------------------------------

    def effective_organisation(self, organisation_id: str, day: date):
        """The organisation that answers for ``organisation_id`` on ``day``: itself, or the
        successor it merged into, followed along the chain; None if it ended without one."""
        key = (organisation_id, day)
        if key not in self._effective:
            organisations = self.registry.organisations
            organisation = organisations[organisation_id]
            seen = set()
            while organisation.valid_until is not None and organisation.valid_until < day:
                if not organisation.successor or organisation.id in seen:
                    organisation = None
                    break
                seen.add(organisation.id)
                organisation = organisations[organisation.successor]
            self._effective[key] = organisation
        return self._effective[key]

    def candidates(self, values, match_asn: bool = False):
        """``(kind, field, value, Entry)`` for each event value that matched, in event order.

        ``values`` is an iterable of ``(field, value)``; the field's last part says what it
        holds (fqdn, url, ip, asn). A URL's host is looked up as a domain or as an IP.
        """
        found = []
        for field, value in values:
            kind = FIELD_KINDS.get(field.rpartition(".")[2])
            original = text = value if type(value) is str else str(value)
            if kind == "url":
                host = url_host(text)
                if host is None:
                    continue
                kind, text = ("ip", host) if parse_ip(host) is not None else ("domain", host)
            if kind == "domain":
                entry = self.lookup_domain(text)
            elif kind == "ip":
                entry, kind = self.asset_of(self.lookup_ip(text)), "network"
            elif kind == "asn" and match_asn:
                entry = self.lookup_asn(value)
            else:
                continue
            if entry is not None:
                found.append((kind, field, original, entry))
        return found

    def decide(self, values, match_asn: bool = False, day: Optional[date] = None, owners: str = "all") -> list:
        """Route an event's values: a list of ``Route``, one per constituency, sorted by key.

        Exclusions come first (the lookups leave excluded values out). Each kind of value
        then has its deciding match: the most specific domain (the service owner), the
        longest network prefix (the network owner) and, if ``match_asn``, the ASN. With
        ``owners="all"`` the service owner and the network owner are both tagged, and the
        ASN owner only when neither matched; with ``owners="most-specific"`` the first kind
        of ``PRECEDENCE`` that matched decides alone. Within one kind, manual assets beat
        imported ones at equal specificity. Organisations that ended are replaced by their
        successors. Two or more unrelated organisations of one constituency that one kind
        decided are a tie: all are kept and reported. A shared-service organisation that
        another value of the event matched joins the municipality it works for (and the
        other way round), with its match. Each organisation's role follows from its
        matches (``Route.role_of``).
        """
        found = self.candidates(values, match_asn)
        if not found:
            return []
        day = day or utc_today()
        if owners != "all" and owners != "most-specific":
            raise ValueError(f"owners must be one of {', '.join(OWNERS)}, not {owners!r}")
        if len(found) == 1:  # the common case: one value decides alike under either rule
            return self._decide_kind(found, found[0][0], day)
        if owners == "all":
            return self._decide_all(found, day)
        for kind in PRECEDENCE:
            routes = self._decide_kind(found, kind, day)
            if routes:
                others = [c for c in found if c[0] != kind]
                if others:
                    self._add_partners(routes, others, day)
                return routes
        return []

    def _decide_all(self, found, day: date) -> list:
        """The service owner and the network owner (or else the ASN owner), merged per constituency."""
        decided, routes = set(), {}
        for kind in ("domain", "network"):
            for route in self._decide_kind(found, kind, day):
                decided.add(kind)
                present = routes.get(route.constituency)
                routes[route.constituency] = route if present is None else _merged(present, route)
        if not decided:
            for route in self._decide_kind(found, "asn", day):
                decided.add("asn")
                routes[route.constituency] = route
        routes = [routes[key] for key in sorted(routes)]
        others = [c for c in found if c[0] not in decided]
        if routes and others:
            self._add_partners(routes, others, day)
        return routes

    def _decide_kind(self, found, kind: str, day: date) -> list:
        """The routes the deciding match of one kind gives (most specific, manual first), or []."""
        best, deciding = -1, []
        for candidate in found:
            if candidate[0] == kind:
                specificity = candidate[3].specificity
                if specificity > best:
                    best, deciding = specificity, [candidate]
                elif specificity == best:
                    deciding.append(candidate)
        if not deciding:
            return []
        if len(deciding) == 1 and type(deciding[0][3]) is Asset:
            # The common case, one value matching one asset, without the general grouping.
            _, field, value, asset = deciding[0]
            organisation = self.effective_organisation(asset.organisation, day)
            if organisation is None:
                return []
            return [
                Route(
                    organisation.constituency,
                    [organisation],
                    [Match(field, value, kind, asset.value, asset, organisation)],
                    [],
                )
            ]
        assets = [(c, asset) for c in deciding for asset in c[3].assets]
        if any(asset.manual for _, asset in assets):
            assets = [(c, asset) for c, asset in assets if asset.manual]
        return self._routes(assets, day)

    def _add_partners(self, routes, others, day: date) -> None:
        """Add to a decided route the organisations that other values of the event matched
        and that work with a deciding one: the shared-service organisation of a decided
        municipality, or a member municipality of a decided shared-service organisation.
        Precedence still decides; this names who runs the system for the owner."""
        deciders = [tuple(route.organisations) for route in routes]  # partners of partners do not count
        for kind, field, value, entry in others:
            for asset in _preferred(entry.assets):
                partner = self.effective_organisation(asset.organisation, day)
                for route, decided in zip(routes, deciders):
                    if partner is None or route.constituency != partner.constituency or partner in route.organisations:
                        continue
                    if any(partner.id in o.members or o.id in partner.members for o in decided):
                        route.organisations.append(partner)
                        route.organisations.sort(key=lambda o: (KINDS.index(o.kind), o.id))
                        route.matches.append(Match(field, value, kind, entry.matched, asset, partner))

    def _routes(self, assets, day: date) -> list:
        by_constituency = defaultdict(lambda: ({}, []))
        for (kind, field, value, entry), asset in assets:
            organisation = self.effective_organisation(asset.organisation, day)
            if organisation is None:
                continue
            organisations, matches = by_constituency[organisation.constituency]
            organisations.setdefault(organisation.id, organisation)
            matches.append(Match(field, value, kind, entry.matched, asset, organisation))
        routes = []
        for key in sorted(by_constituency):
            organisations, matches = by_constituency[key]
            ordered = sorted(organisations.values(), key=lambda o: (KINDS.index(o.kind), o.id))
            tie = [] if self._related(ordered) else [o.id for o in ordered]
            routes.append(Route(key, ordered, matches, tie))
        if len(routes) > 1 and len({claimed_by(asset.source) for _, asset in assets} - {None}) > 1:
            # Two CERTs' claims of one asset: each copy names every claimant, as a tie
            # within one constituency does; which one is right is the hub's to sort out.
            tie = sorted({o.id for route in routes for o in route.organisations})
            for route in routes:
                route.tie = tie
        return routes

    @staticmethod
    def _related(organisations) -> bool:
        """True if the organisations form one group through shared-service memberships."""
        if len(organisations) < 2:
            return True
        ids = {o.id for o in organisations}
        links = defaultdict(set)
        for organisation in organisations:
            for member in organisation.members:
                if member in ids:
                    links[organisation.id].add(member)
                    links[member].add(organisation.id)
        seen, todo = set(), [organisations[0].id]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(links[current] - seen)
        return seen == ids

    def owners(self, entry: Optional[Entry], day: date) -> tuple:
        """Who an entry routes to on ``day``: sorted ``(constituency, organisation id)`` pairs."""
        if entry is None:
            return ()
        found = (self.effective_organisation(asset.organisation, day) for asset in _preferred(entry.assets))
        return tuple(sorted({(o.constituency, o.id) for o in found if o is not None}))

    def stats(self) -> dict:
        return {
            "ipv4_ranges": len(self.networks[4]),
            "ipv6_ranges": len(self.networks[6]),
            "domains": len(self.domains),
            "asns": len(self.asns),
        }


__all__ = ["Index", "RangeTable", "format_network"]
