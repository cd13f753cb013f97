"""A sectoral CERT's claims, written from its full registry for the hub that routes to it.

``claims_document(registry, key)`` gives the claims file of constituency ``key``
(``harmonization/claims.md``): the networks, domains and ASNs whose owner on the day is an
organisation of that constituency, as the CERT's own registry decides them, and nothing
about those organisations unless the CERT asks for their ids (and names). It never
carries contacts, preferences, keys, validity dates, notes or sources.

What the CERT's registry decides and the hub's union must decide alike:

- where a manual and an imported asset claim one value, the manual one (the import's claim
  is left out if the manual one is another constituency's);
- an excluded network is cut out of the claimed networks it lies in (the smallest set of
  networks that covers the rest exactly), as at the hub an exclusion would apply to every
  constituency; a claimed network or domain that an exclusion covers is left out;
- an excluded domain below a claimed one goes along as the claims' own exclusion, which at
  the hub leaves out this constituency's claims only;
- an ended organisation's assets are its successor's; one that ended without a successor
  has none.
"""

import ipaddress
import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from datetime import date, datetime, timezone
from typing import Optional

from intelmq_nsm.cert_ids import cert_organisation

from .builtin import builtin_municipalities
from .claims import HEADER
from .model import CERT_ORGANISATION
from .values import parents, parse_network, utc_today

#: What ``organisations`` may ask for: no organisation at all (every asset is the
#: constituency's own, ``cert:<key>``), their ids, or their ids and names.
ORGANISATIONS = ("none", "ids", "names")


def claims_document(
    registry,
    key: str,
    organisations: str = "none",
    today: Optional[date] = None,
    exported_at: Optional[datetime] = None,
    version: Optional[str] = None,
) -> dict:
    """The claims file of constituency ``key`` from ``registry`` (a loaded Registry), as a
    mapping to write as JSON. Raises ValueError for an unknown constituency or option."""
    if key not in registry.constituencies:
        raise ValueError(f"the registry has no constituency {key!r}")
    if organisations not in ORGANISATIONS:
        raise ValueError(f"organisations must be one of {', '.join(ORGANISATIONS)}, not {organisations!r}")
    today = today or utc_today()
    index = registry.index
    names = _names(registry, key, organisations)
    claimed = _claimed(registry, key, today)  # (kind, value, exact) → {organisation, ...}
    excluded = _excluded_networks(registry)
    networks, domains, asns = set(), set(), set()  # one claim per value and organisation as exported
    for (kind, value, exact), owners in claimed.items():
        owners = {names[owner] for owner in owners}
        if kind == "network":
            networks.update((piece, owner) for piece in _without(value, excluded) for owner in owners)
        elif kind == "domain":
            if index.lookup_domain(value) is not None:  # None: an exclusion covers it
                domains.update((value, exact, owner) for owner in owners)
        else:
            asns.update((int(value), owner) for owner in owners)
    claimed_domains = {value for (kind, value, exact) in claimed if kind == "domain" and not exact}
    excluded_domains = (value for kind, value, _note, _origin in registry.exclusions if kind == "domain")
    exclusions = sorted(value for value in excluded_domains if any(p in claimed_domains for p in parents(value)))
    assets = (
        [_asset("network", str(n), owner) for n, owner in sorted(networks, key=_network_order)]
        + [_asset("domain", d, owner, exact) for d, exact, owner in sorted(domains)]
        + [_asset("asn", a, owner) for a, owner in sorted(asns)]
    )
    used = {owner for *_, owner in (*networks, *domains, *asns)}
    constituency = registry.constituencies[key]
    moment = (exported_at or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    document = {
        HEADER: {"constituency": key, "exported_at": moment, "assets": len(assets), "exclusions": len(exclusions)},
        "version": version or registry.version,
        "constituencies": [{"key": key, "name": constituency.name, "share_names": constituency.share_names}],
    }
    if organisations != "none" and used:
        document["organisations"] = [
            _organisation(o, names, organisations, used)
            for o in sorted(registry.organisations.values(), key=lambda o: names[o.id])
            if names[o.id] in used
        ]
    document["assets"] = assets
    document["exclusions"] = [{"domain": value} for value in exclusions]
    return document


def _claimed(registry, key: str, today: date) -> dict:
    """``(kind, value, exact) → set of organisation ids`` of constituency ``key`` on ``today``:
    per value, the manual assets if there are any, else all, each with the organisation
    that answers for its owner that day."""
    by_value = defaultdict(list)
    for asset in registry.all_assets():
        by_value[(asset.kind, asset.value)].append(asset)
    claimed = defaultdict(set)
    for assets in by_value.values():
        for asset in [a for a in assets if a.manual] or assets:
            owner = registry.index.effective_organisation(asset.organisation, today)
            if owner is not None and owner.constituency == key:
                claimed[(asset.kind, asset.value, asset.exact)].add(owner.id)
    return claimed


def claims_json(document: dict) -> str:
    """The claims as JSON text: the header and sections spread out, one record a line."""
    lines = ["{"]
    items = list(document.items())
    for number, (name, value) in enumerate(items):
        end = "," if number + 1 < len(items) else ""
        if isinstance(value, list) and value:
            records = [f"  {json.dumps(record, ensure_ascii=False)}" for record in value]
            lines += [f" {json.dumps(name)}: [", ",\n".join(records), f" ]{end}"]
        else:
            lines.append(f" {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)}{end}")
    return "\n".join(lines) + "\n}\n"


def _excluded_networks(registry) -> dict:
    """Per IP version, the excluded addresses as sorted, merged ``(first, last)`` ranges."""
    ranges = defaultdict(list)
    for kind, value, _note, _origin in registry.exclusions:
        if kind == "network":
            version, start, prefixlen = parse_network(value)
            ranges[version].append((start, start + (1 << ((32 if version == 4 else 128) - prefixlen)) - 1))
    merged = {}
    for version, spans in ranges.items():
        spans.sort()
        joined = [list(spans[0])]
        for first, last in spans[1:]:
            if first <= joined[-1][1] + 1:
                joined[-1][1] = max(joined[-1][1], last)
            else:
                joined.append([first, last])
        merged[version] = ([first for first, _ in joined], [last for _, last in joined])
    return merged


def _without(value: str, excluded: dict) -> list:
    """The network ``value`` less the excluded ranges: itself, the networks that cover the
    rest exactly, or nothing."""
    network = ipaddress.ip_network(value)
    firsts, lasts = excluded.get(network.version, ((), ()))
    first, last = int(network.network_address), int(network.broadcast_address)
    # The excluded ranges that overlap the network: those ending at or after its first
    # address, up to those starting after its last.
    begin, end = bisect_left(lasts, first), bisect_right(firsts, last)
    if begin >= end:
        return [network]
    kept, cursor = [], first
    for low, high in zip(firsts[begin:end], lasts[begin:end]):
        if low > cursor:
            kept.append((cursor, low - 1))
        cursor = max(cursor, high + 1)
    if cursor <= last:
        kept.append((cursor, last))
    address = ipaddress.ip_address
    return [n for low, high in kept for n in ipaddress.summarize_address_range(address(low), address(high))]


def _network_order(item):
    network, owner = item
    return network.version, int(network.network_address), network.prefixlen, owner


def _names(registry, key: str, organisations: str) -> dict:
    """Organisation id in the CERT's registry → its id in the claims: none (the
    constituency's own, ``cert:<key>``), a built-in municipality's CBS code as it is (a hub
    that lets this CERT name them knows them), any other id as ``<key>:<id>``."""
    if organisations == "none":
        return defaultdict(lambda: cert_organisation(key))
    builtin = {code for code, _name in builtin_municipalities()}
    prefix = f"{key}:"
    return {
        ident: ident if ident in builtin or ident.startswith(prefix) else prefix + ident
        for ident in registry.organisations
    }


def _asset(kind: str, value, owner: str, exact: bool = False) -> dict:
    record = {kind: value}
    if not owner.startswith(CERT_ORGANISATION):  # the constituency's own needs no name
        record["organisation"] = owner
    if exact:
        record["exact"] = True
    return record


def _organisation(organisation, names: dict, organisations: str, used) -> dict:
    record = {"id": names[organisation.id], "kind": organisation.kind}
    if organisations == "names":
        record["name"] = organisation.name
    members = sorted(names[m] for m in organisation.members if names[m] in used)  # the others are not in the claims
    if members:
        record["members"] = members
    return record
