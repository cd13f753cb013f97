"""Checks across a whole registry, once every file is read: what records say of each other.

References (an organisation's constituency, members and successor, an asset's
organisation), organisations that ended or have not started yet but hold assets, and
assets claimed by several organisations, which need a note on each claim saying why
(unless CERTs' claims decide: a hub cannot ask its CERTs for notes, it reports the tie).
"""

from collections import Counter
from datetime import date

from .index import Index
from .model import Issues, claimed_by
from .registry import Registry


def check_references(registry: Registry, issues: Issues, today: date) -> None:
    organisations = registry.organisations
    for organisation in organisations.values():
        path, location = organisation.origin
        if organisation.constituency not in registry.constituencies:
            issues.add("error", path, location, "constituency", f"unknown constituency {organisation.constituency!r}")
        for member in organisation.members:
            if member not in organisations:
                issues.add("error", path, location, "members", f"unknown organisation {member!r}")
        if organisation.successor is not None:
            if organisation.successor not in organisations:
                issues.add("error", path, location, "successor", f"unknown organisation {organisation.successor!r}")
            elif _successor_cycle(organisations, organisation):
                issues.add("error", path, location, "successor", "the successors form a cycle")
    owners = Counter(registry.networks.organisations)
    owners.update(asset.organisation for asset in registry.assets)
    unknown = {ident for ident in owners if ident not in organisations}
    for asset in registry.all_assets() if unknown else ():
        if asset.organisation in unknown:
            path, location = asset.origin
            issues.add("error", path, location, "organisation", f"unknown organisation {asset.organisation!r}")
    if registry.claims:
        _check_claimed(registry, issues, unknown)
    for ident, count in sorted(owners.items()):
        if ident in unknown:
            continue
        organisation = organisations[ident]
        path, location = organisation.origin
        if organisation.valid_until is not None and organisation.valid_until < today:
            if organisation.successor:
                issues.add(
                    "warning", path, location, "valid_until",
                    f"{ident} ended on {organisation.valid_until} and still has {count} assets; "
                    f"they are routed to its successor {organisation.successor}",
                )  # fmt: skip
            else:
                issues.add(
                    "error", path, location, "valid_until",
                    f"{ident} ended on {organisation.valid_until} without a successor and still has {count} assets",
                )  # fmt: skip
        elif organisation.valid_from is not None and organisation.valid_from > today:
            issues.add(
                "warning", path, location, "valid_from",
                f"{ident} starts on {organisation.valid_from} but already has {count} assets, routed to it now",
            )  # fmt: skip


def _check_claimed(registry: Registry, issues: Issues, unknown: set) -> None:
    """Each asset of a constituency's claims belongs to an organisation of that constituency,
    whichever file declared the organisation."""
    organisations = registry.organisations
    pairs = set(zip(registry.networks.sources, registry.networks.organisations))
    pairs.update((asset.source, asset.organisation) for asset in registry.assets)
    wrong = {
        (source, ident) for source, ident in pairs
        if ident not in unknown and (key := claimed_by(source)) and organisations[ident].constituency != key
    }  # fmt: skip
    for asset in registry.all_assets() if wrong else ():
        if (asset.source, asset.organisation) in wrong:
            path, location = asset.origin
            organisation = organisations[asset.organisation]
            reason = (
                f"the claims of {claimed_by(asset.source)!r} claim for {organisation.id}, an organisation of "
                f"constituency {organisation.constituency!r}"
            )
            issues.add("error", path, location, "organisation", reason)


def _successor_cycle(organisations: dict, organisation) -> bool:
    seen = set()
    current = organisation
    while current is not None and current.successor:
        if current.id in seen:
            return True
        seen.add(current.id)
        current = organisations.get(current.successor)
    return False


def check_shared(index: Index, issues: Issues) -> None:
    """An asset claimed by two organisations needs a note on each claim saying why.

    Only the claims that decide count: an imported claim that a manual one of another
    organisation overrides is no tie, and needs no note from the manual one.
    """
    for entry in index.shared:
        if len({asset.organisation for asset in entry.assets}) == 1:
            path, location = entry.assets[0].origin
            issues.add("warning", path, location, entry.assets[0].kind, f"{entry.matched} is listed more than once")
            continue
        deciding = [asset for asset in entry.assets if asset.manual] or entry.assets
        owners = {asset.organisation for asset in deciding}
        if len(owners) > 1 and all(claimed_by(asset.source) for asset in deciding):
            path, location = deciding[-1].origin
            claims = ", ".join(sorted({f"{a.organisation} ({a.source})" for a in deciding}))
            issues.add(
                "warning", path, location, deciding[-1].kind,
                f"{entry.matched} is claimed by {claims}: events there go to each of them",
            )  # fmt: skip
            continue
        for asset in deciding if len(owners) > 1 else ():
            if not asset.note:
                path, location = asset.origin
                others = ", ".join(sorted(owners - {asset.organisation}))
                issues.add(
                    "error", path, location, "note",
                    f"{entry.matched} is also claimed by {others}; a shared asset needs a note saying why",
                )  # fmt: skip
