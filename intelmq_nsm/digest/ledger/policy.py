"""The notification policy: what one observation of a finding does to its ledger record.

Plain functions over a record (a mapping of ``ledger_findings`` columns, or None for a
finding never seen): no database here, so the rules can be read and tested on their own.

- Seen vulnerable for the first time: ``open``, to be notified (kind ``new``).
- Seen again while notified (or reopened) and nothing for it waiting in a digest: a
  reminder (kind ``reminder``) once ``reminder_after`` seconds passed since its last
  notification (``0``: never). While ``open`` its first notification is on its way.
- Seen vulnerable after ``fixed-verified`` or ``fixed-reported``: ``reopened`` (kind
  ``reopened``); a finding never notified becomes ``open`` again (kind ``new``).
- Owners' answers ``disputed``, ``accepted-risk``, ``false-positive``: counted as seen, no
  reminders; an operator reopens them.
- Seen not vulnerable: ``fixed-verified``; when it had been notified and ``report_fixed``
  is on, it goes into the next digest's section of verified fixes (kind ``fixed``). A
  finding never seen vulnerable is recorded and sends nothing.
- The same event again (IntelMQ hands a message over once more after a crash): the same
  answer as the first time, while that is still waiting for its digest; counted once.
- A hub's record of forwarding (:func:`forwarded_first`, :func:`forwarded_again`): the
  organisation is the CERT (``cert:<key>``), the state ``forwarded`` until the CERT
  reports otherwise; it never goes into a digest of the hub's.
- At a CERT, a finding a hub forwarded keeps that hub's finding id and instance name
  (``upstream_finding_id``, ``upstream_instance``), the last ones seen.
"""

from dataclasses import dataclass, field
from typing import Optional

FIXED = ("fixed-verified", "fixed-reported")
NOTIFIED = ("notified", "reopened")


@dataclass(frozen=True)
class Observation:
    """One finding of one event for one organisation, as the ledger needs it."""

    finding_id: str
    org_id: str
    event_hash: str
    vulnerable: bool = True
    org_name: str = ""
    constituency: str = ""
    case_id: str = ""
    target: str = ""
    #: The registry matches that routed it to this organisation, as JSON ("" if unknown).
    matches: str = ""
    #: A finding a hub forwarded: the hub's finding id and instance name ("" otherwise).
    upstream_finding_id: str = ""
    upstream_instance: str = ""


@dataclass
class Step:
    """What an observation does: the kind it puts into a digest (None: nothing), the new
    column values, and the change of state for the history (old, new, note) if any."""

    kind: Optional[str]
    values: dict = field(default_factory=dict)
    change: Optional[tuple] = None


def first(observation: Observation, now: float) -> Step:
    """A finding never seen before."""
    if observation.vulnerable:
        state, kind, note = "open", "new", "First seen vulnerable."
    else:
        state, kind, note = "fixed-verified", None, "First seen not vulnerable; nothing to notify."
    values = {
        "org_name": observation.org_name,
        "constituency": observation.constituency,
        "case_id": observation.case_id,
        "target": observation.target,
        "matches": observation.matches,
        "upstream_finding_id": observation.upstream_finding_id,
        "upstream_instance": observation.upstream_instance,
        "state": state,
        "first_seen": now,
        "last_seen": now,
        "times_seen": 1,
        "notifications": 0,
        "reminders": 0,
        "reopened": 0,
        "pending": kind,
        "last_event": observation.event_hash,
        "last_kind": kind,
    }
    return Step(kind, values, (None, state, note))


def again(record, observation: Observation, now: float, reminder_after: float, report_fixed: bool) -> Step:
    """A finding the ledger knows (``record``: its row)."""
    if record["last_event"] == observation.event_hash:
        repeat = record["last_kind"] if record["last_kind"] and record["pending"] == record["last_kind"] else None
        return Step(repeat)
    values = {
        "last_seen": max(now, record["last_seen"]),
        "times_seen": record["times_seen"] + 1,
        "last_event": observation.event_hash,
    }
    if observation.matches and observation.matches != record.get("matches"):
        values["matches"] = observation.matches
    values.update(_upstream(record, observation))
    state, kind, change = record["state"], None, None
    if observation.vulnerable:
        if state in FIXED:
            if record["first_notified"] is None:
                kind, new_state, note = "new", "open", "Seen vulnerable again; it had never been notified."
            else:
                kind, new_state, note = "reopened", "reopened", f"Seen vulnerable again after {state}."
                values["reopened"] = record["reopened"] + 1
            values.update(state=new_state, pending=kind)
            change = (state, new_state, note)
        elif state in NOTIFIED and record["pending"] is None and due_for_reminder(record, now, reminder_after):
            kind = "reminder"
            values["pending"] = kind
    elif state != "fixed-verified":
        change = (state, "fixed-verified", "A rescan found it not vulnerable.")
        values["state"] = "fixed-verified"
        if record["first_notified"] is not None:
            values["fixed_at"] = now
            if report_fixed:
                kind = "fixed"
                values["pending"] = kind
    values["last_kind"] = kind
    return Step(kind, values, change)


def due_for_reminder(record, now: float, reminder_after: float) -> bool:
    last = record["last_notified"]
    return reminder_after > 0 and last is not None and now - last >= reminder_after


def delivered(record, kind: str, digest_id: str, now: float) -> Step:
    """The digest ``digest_id`` holding this finding as ``kind`` was delivered."""
    values = {}
    change = None
    if kind != "fixed":
        values.update(
            last_notified=now,
            notifications=record["notifications"] + 1,
            first_notified=record["first_notified"] if record["first_notified"] is not None else now,
        )
        if kind == "reminder":
            values["reminders"] = record["reminders"] + 1
        if record["state"] == "open":
            values["state"] = "notified"
            change = ("open", "notified", f"Notified in digest {digest_id}.")
        elif record["state"] == "fixed-verified" and record["fixed_at"] is None:
            # Verified fixed while its first notification was on its way.
            values["fixed_at"] = now
    if record["pending"] == kind:
        values["pending"] = None
    return Step(kind, values, change)


def _upstream(record, observation: Observation) -> dict:
    """The hub a finding came from, as last seen: a finding the CERT saw first itself and a
    hub forwarded later is reported back to that hub from then on."""
    upstream = {
        "upstream_finding_id": observation.upstream_finding_id,
        "upstream_instance": observation.upstream_instance,
    }
    if not observation.upstream_finding_id or all(record.get(k) == v for k, v in upstream.items()):
        return {}
    return upstream


# -- a hub's record of what it forwarded to a sectoral CERT's instance ---------------------

#: The state of a hub's record of a finding it forwarded (see STATES).
FORWARDED = "forwarded"
#: A hub's record of a finding forwarded to a CERT has the organisation ``cert:<key>``,
#: the key of the CERT's constituency in the hub's registry.
CERT_PREFIX = "cert:"


def cert_org_id(constituency: str) -> str:
    """The organisation id of a hub's records of findings forwarded to ``constituency``'s CERT."""
    return f"{CERT_PREFIX}{constituency}"


def forwarded_to(org_id: str) -> str:
    """The constituency whose CERT a record's organisation ``cert:<key>`` stands for; "" for
    any other organisation."""
    return org_id[len(CERT_PREFIX) :] if org_id.startswith(CERT_PREFIX) else ""


def forwarded_first(observation: Observation, now: float) -> Step:
    """A finding the hub forwards for the first time: recorded as ``forwarded``; nothing
    goes into a digest (the CERT's instance notifies)."""
    result = "vulnerable" if observation.vulnerable else "not vulnerable"
    step = first(observation, now)
    step.values.update(state=FORWARDED, pending=None, last_kind=None)
    return Step(None, step.values, (None, FORWARDED, f"Forwarded to {observation.org_id} ({result})."))


def forwarded_again(record, observation: Observation, now: float) -> Step:
    """A finding forwarded again (a rescan, a repeat): counted as seen; its state is what
    the CERT reported back since, and stays."""
    if record["last_event"] == observation.event_hash:
        return Step(None)
    values = {
        "last_seen": max(now, record["last_seen"]),
        "times_seen": record["times_seen"] + 1,
        "last_event": observation.event_hash,
    }
    return Step(None, values)
