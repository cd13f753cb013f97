"""Stale organisations: whose contacts failed, or who answered nothing, for N days.

Two signs that the registry's contacts for an organisation no longer reach anyone who acts:

- **unreachable**: a contact marked unreachable (a mail server refused it for good, or a
  bounce said so: ``intelmq_nsm.digest.contacts``) at least N days ago and not cleared;
- **silent**: findings first notified at least N days ago and no answer of the owner's
  (on the feedback page or through the ticket system's API) since they were notified.

``intelmq-nsm constituency stale`` prints both per organisation.
"""

import time
from typing import Optional

DAY = 86400.0


def unreachable(book, cutoff: float) -> dict:
    """``{org_id: [contact rows]}`` of the contacts unreachable since ``cutoff`` or before."""
    result = {}
    for row in book.rows():
        if row["since"] <= cutoff:
            result.setdefault(row["org_id"], []).append(row)
    return result


def silent(ledger, cutoff: float) -> dict:
    """``{org_id: {"name", "findings", "since", "last_answer"}}``: organisations with findings
    first notified at ``cutoff`` or before and no owner's answer after that notification."""
    return {
        org_id: {"name": name or org_id, "findings": count, "since": since, "last_answer": answered}
        for org_id, name, count, since, answered in ledger.silent(cutoff)
    }


def stale(book, ledger, days: float, now: Optional[float] = None, registry=None) -> list:
    """Per stale organisation: ``{"org_id", "name", "unreachable": [rows], "silent": {...} or
    None, "reachable": the registry's contacts not marked (None without a registry)}``."""
    now = time.time() if now is None else now
    cutoff = now - days * DAY
    failing = unreachable(book, cutoff) if book is not None else {}
    quiet = silent(ledger, cutoff) if ledger is not None else {}
    marked = {row["address"] for row in book.rows()} if book is not None else set()
    result = []
    for org_id in sorted(set(failing) | set(quiet)):
        organisation = registry.organisations.get(org_id) if registry is not None else None
        name = organisation.name if organisation else quiet.get(org_id, {}).get("name") or org_id
        reachable = None
        if organisation is not None:
            reachable = [c for c in organisation.contacts if c.strip().lower() not in marked]
        result.append(
            {
                "org_id": org_id,
                "name": name,
                "unreachable": failing.get(org_id, []),
                "silent": quiet.get(org_id),
                "reachable": reachable,
            }
        )
    return result
