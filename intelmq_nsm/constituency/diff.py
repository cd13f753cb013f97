"""What routing a new registry would change, compared with an old one.

Networks are compared exactly: the boundaries of both registries' range tables cut the
address space into pieces that each registry routes uniformly, so comparing one address
per piece covers every address. Domains are compared for every name either registry
mentions and for a subdomain of it (which tells exact entries apart); ASNs one by one.

``owner_rule_changes`` compares the two ``owners`` rules of one registry on a file of
events instead, so that an operator sees what the rule ``all`` would change.
"""

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Optional


def _network_owner(index, version: int, address: int, day: date) -> tuple:
    if index.exclusions[version].lookup(address) is not None:
        return ()
    return index.owners(index.network_entry(version, address), day)


def network_changes(old, new, day: date):
    """``(first address, last address, old owners, new owners)`` for each changed range."""
    for version, bits in ((4, 32), (6, 128)):
        cuts = set()
        for index in (old, new):
            cuts.update(index.networks[version].starts)
            cuts.update(index.exclusions[version].starts)
        cuts = sorted(c for c in cuts if c < 1 << bits)
        if not cuts or cuts[0] != 0:
            cuts.insert(0, 0)
        pending = None
        for i, start in enumerate(cuts):
            end = cuts[i + 1] - 1 if i + 1 < len(cuts) else (1 << bits) - 1
            before, after = _network_owner(old, version, start, day), _network_owner(new, version, start, day)
            if before == after:
                if pending:
                    yield version, *pending
                    pending = None
            elif pending and pending[2:] == (before, after) and pending[1] + 1 == start:
                pending = (pending[0], end, before, after)
            else:
                if pending:
                    yield version, *pending
                pending = (start, end, before, after)
        if pending:
            yield version, *pending


def domain_changes(old, new, day: date):
    names = set()
    for index in (old, new):
        names.update(index.domains)
        names.update(index.excluded_domains)
        names.update(index.claim_exclusions)
    for name in sorted(names):
        for probe in (name, f"x.{name}"):
            before = old.owners(old.lookup_domain(probe), day)
            after = new.owners(new.lookup_domain(probe), day)
            if before != after:
                yield probe, before, after


def asn_changes(old, new, day: date):
    for asn in sorted(set(old.asns) | set(new.asns)):
        before, after = old.owners(old.asns.get(asn), day), new.owners(new.asns.get(asn), day)
        if before != after:
            yield asn, before, after


def describe(owners: tuple) -> str:
    if not owners:
        return "nobody (_default)"
    return ", ".join(f"{constituency}:{organisation}" for constituency, organisation in owners)


def changes(old_registry, new_registry, day: date) -> list:
    """Readable lines, one per changed network range (as CIDRs), domain or ASN."""
    old, new = old_registry.index, new_registry.index
    lines = []
    for version, first, last, before, after in network_changes(old, new, day):
        cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        cidrs = ", ".join(str(n) for n in ipaddress.summarize_address_range(cls(first), cls(last)))
        lines.append(f"network {cidrs}: {describe(before)} -> {describe(after)}")
    for name, before, after in domain_changes(old, new, day):
        lines.append(f"domain {name}: {describe(before)} -> {describe(after)}")
    for asn, before, after in asn_changes(old, new, day):
        lines.append(f"asn AS{asn}: {describe(before)} -> {describe(after)}")
    return lines


#: The event fields the constituency expert looks up by default.
EVENT_FIELDS = ("source.fqdn", "source.url", "source.ip", "source.asn")


@dataclass
class RuleChanges:
    """What ``owners: all`` changes against ``most-specific`` on a file of events."""

    events: int = 0  # events read (valid JSON objects)
    unrouted: int = 0  # events no rule routes anywhere
    new_constituency: int = 0  # changed events that reach a constituency ``most-specific`` did not
    changed: list = field(default_factory=list)  # (line, before, after) as readable text
    invalid: list = field(default_factory=list)  # (line, reason)


def _event_value(event: dict, name: str):
    """A flat key (``source.ip``, as IntelMQ's file output writes it) or the nested form."""
    if name in event:
        return event[name]
    group, _, key = name.partition(".")
    nested = event.get(group)
    return nested.get(key) if isinstance(nested, dict) else None


def _decision(routes) -> tuple:
    return tuple(sorted((r.constituency, o.id, r.role_of(o.id)) for r in routes for o in r.organisations))


def _describe_decision(decision: tuple) -> str:
    if not decision:
        return "nobody (_default)"
    return ", ".join(f"{constituency}:{organisation}({role})" for constituency, organisation, role in decision)


def owner_rule_changes(registry, lines, match_asn: bool = False, day: Optional[date] = None) -> RuleChanges:
    """Route each event of ``lines`` (JSON objects, one a line; blank lines skipped) under
    ``owners: most-specific`` and ``owners: all`` with ``registry`` and
    count the events whose organisations differ (a role alone is no change of routing)."""
    index = registry.index
    summary = RuleChanges()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            summary.invalid.append((number, f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(event, dict):
            summary.invalid.append((number, f"a JSON {type(event).__name__}, not an event object"))
            continue
        summary.events += 1
        values = [(name, value) for name in EVENT_FIELDS if (value := _event_value(event, name)) not in (None, "")]
        before = _decision(index.decide(values, match_asn, day, owners="most-specific")) if values else ()
        after = _decision(index.decide(values, match_asn, day, owners="all")) if values else ()
        if not after:
            summary.unrouted += 1
        if {d[:2] for d in before} != {d[:2] for d in after}:
            summary.changed.append((number, _describe_decision(before), _describe_decision(after)))
            summary.new_constituency += bool({d[0] for d in after} - {d[0] for d in before})
    return summary
