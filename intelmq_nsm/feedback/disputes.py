"""Disputed findings ("niet van ons") and the registry corrections they lead to.

A dispute is a ledger record in state ``disputed``. At a hub, a downstream CERT's report of
an owner's "not ours" makes the hub's record of the finding forwarded to that CERT
disputed (``reported_by``: ``cert:<key>``): the CERT's claim that routed it there is the
registry entry to correct. It carries the registry matches that routed the finding to the
organisation (``extra.nsm.matches`` as the digest output kept
them), so the operator sees which asset was wrong and where it came from. Accepting a
dispute writes a correction into a corrections file: a registry document of its own
(``exclusions`` and ``assets``) that the constituency expert reads like any registry file,
so its next reload stops routing the asset there. Rejecting keeps the operator's note.
Either decision is recorded in the ledger's ``ledger_disputes``; the finding's record and
history stay as they are (what was routed before keeps its history).

Suggested change: an *exclusion* of the matched network or domain (nothing routes there
any more); with another organisation named, a *re-assignment*: a manual asset for it,
which beats the imported asset of the same specificity (a manual asset that was wrong is
better removed from its own file: the suggestion says so).
"""

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import yaml

from intelmq_nsm import storage

#: Kinds of match a correction can be written for (exclusions name networks or domains).
CORRECTABLE = ("network", "domain")


class DisputeError(ValueError):
    """A dispute cannot be decided as asked; the message says why."""


def dispute_id(finding_id: str, org_id: str) -> str:
    """A short stable id for the dispute of ``finding_id`` by ``org_id``."""
    return "d-" + hashlib.sha256(f"{finding_id}\0{org_id}".encode()).hexdigest()[:12]


def _matches(record: dict) -> list:
    try:
        matches = json.loads(record.get("matches") or "[]")
    except ValueError:
        return []
    return [m for m in matches if isinstance(m, dict)] if isinstance(matches, list) else []


def suggestion(matches: list, org_id: str, assign_to: Optional[str] = None) -> dict:
    """The registry change for a dispute: ``{"change": exclusion|reassignment|manual-edit|none, ...}``."""
    for match in matches:
        kind, value = match.get("kind"), match.get("matched")
        if kind not in CORRECTABLE or not value:
            continue
        note = f"Disputed by {org_id}"
        if assign_to:
            return {"change": "reassignment", kind: value, "organisation": assign_to, "note": note}
        return {"change": "exclusion", kind: value, "note": note}
    for match in matches:
        if match.get("kind") == "asn":
            return {
                "change": "manual-edit",
                "reason": f"AS{match.get('matched')} matched; remove it from the registry file (source "
                f"{match.get('source') or 'manual'}): an exclusion names a network or a domain.",
            }
    return {"change": "none", "reason": "The ledger holds no registry match for this finding."}


class Disputes:
    """The disputed findings of one ledger and the operator's decisions on them."""

    def __init__(self, ledger, corrections_file: Optional[str] = None):
        self.ledger, self.corrections_file = ledger, corrections_file

    def _comment(self, finding_id: str, org_id: str) -> tuple:
        """The owner's comment on the dispute, when it was made and by whom (``owner``, an
        ``operator``, or at a hub the CERT that reported it: ``cert:<key>``)."""
        change = self.ledger.last_change_to(finding_id, org_id, "disputed")
        return (change["note"] or "", change["at"], change["source"]) if change else ("", None, "")

    def list(self, include_decided: bool = False, ident: Optional[str] = None) -> list:
        """The disputes, oldest first; each with its id, finding, organisation, matched
        assets, the owner's comment, the suggested change and a decision if any. With
        ``ident``: only that dispute (its comment is read for it alone)."""
        result = []
        decisions = self.ledger.decisions()
        for record in self.ledger.records(state="disputed"):
            decision = decisions.get((record["finding_id"], record["org_id"]))
            if decision and not include_decided:
                continue
            if ident is not None and dispute_id(record["finding_id"], record["org_id"]) != ident:
                continue
            comment, at, by = self._comment(record["finding_id"], record["org_id"])
            matches = _matches(record)
            result.append(
                {
                    "id": dispute_id(record["finding_id"], record["org_id"]),
                    "finding_id": record["finding_id"],
                    "organisation": record["org_id"],
                    "organisation_name": record["org_name"],
                    "constituency": record["constituency"],
                    "case_id": record["case_id"],
                    "target": record["target"],
                    "disputed_at": at,
                    "reported_by": by,
                    "comment": comment,
                    "matches": [
                        {k: m.get(k, "") for k in ("field", "value", "kind", "matched", "source", "note")}
                        for m in matches
                    ],
                    "suggestion": suggestion(matches, record["org_id"]),
                    "decision": None
                    if decision is None
                    else {k: decision[k] for k in ("decision", "at", "note", "correction")},
                }
            )
        return result

    def find(self, ident: str) -> dict:
        for dispute in self.list(include_decided=True, ident=ident):
            return dispute
        raise DisputeError(f"There is no disputed finding with the id {ident!r} in the ledger {self.ledger.name!r}.")

    def _decide(self, dispute: dict, decision: str, note: str, correction: str, now: float) -> None:
        self.ledger.record_decision(dispute["finding_id"], dispute["organisation"], decision, now, note, correction)

    def accept(self, ident: str, assign_to: Optional[str] = None, note: str = "", now=None) -> dict:
        """Write the dispute's correction into the corrections file; returns the correction."""
        if not self.corrections_file:
            raise DisputeError("Accepting a dispute needs the corrections file (--corrections FILE).")
        dispute = self.find(ident)
        if dispute["decision"] and dispute["decision"]["decision"] == "accepted":
            raise DisputeError(f"The dispute {ident} was accepted before; its correction is in the corrections file.")
        change = suggestion(dispute["matches"], dispute["organisation"], assign_to)
        if change["change"] not in ("exclusion", "reassignment"):
            raise DisputeError(f"The dispute {ident} cannot be corrected by a file: {change['reason']}")
        entry = {k: v for k, v in change.items() if k != "change"}
        entry["note"] = f"{entry['note']} (finding {dispute['finding_id']}, dispute {ident})"
        add_correction(self.corrections_file, "assets" if change["change"] == "reassignment" else "exclusions", entry)
        self._decide(dispute, "accepted", note, json.dumps(change, sort_keys=True), time.time() if now is None else now)
        return change

    def reject(self, ident: str, note: str, now=None) -> dict:
        dispute = self.find(ident)
        if not note.strip():
            raise DisputeError("A rejected dispute keeps a note saying why (--note TEXT).")
        self._decide(dispute, "rejected", note.strip(), "", time.time() if now is None else now)
        return dispute


def add_correction(path, section: str, entry: dict) -> None:
    """Add ``entry`` to ``section`` of the corrections document at ``path`` (atomically;
    an entry there already is not added twice)."""
    path = Path(path)
    document = {}
    if path.exists():
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(document, dict):
            raise DisputeError(f"The corrections file {path} does not hold a registry document.")
    entries = document.setdefault(section, [])

    def _what(e: dict) -> dict:
        return {k: v for k, v in e.items() if k != "note"}

    if any(_what(e) == _what(entry) for e in entries):
        return
    entries.append(entry)
    header = "# Registry corrections from accepted disputes (intelmq-nsm constituency disputes --accept).\n"
    storage.atomic_write(path, header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
