"""The notification policy: what one observation of a finding does to its ledger record.

Plain functions over a record (a mapping of ``ledger_findings`` columns, or None for a
finding never seen): no database here, so the rules can be read and tested on their own.
Which state may follow which is :func:`.precedence.decide`'s (source ``scan``); here is
what the digest gets.

- Seen (vulnerable, infected, misbehaving) for the first time: ``open``, to be notified
  (kind ``new``).
- Seen again while notified (or reopened) and nothing for it waiting in a digest: a
  reminder (kind ``reminder``) once ``reminder_after`` seconds passed since its last
  notification (``0``: never). While ``open`` its first notification is on its way.
- Seen again after ``fixed-verified``, ``fixed-reported`` or ``no-longer-seen``:
  ``reopened`` (kind ``reopened``); a finding never notified becomes ``open`` again (kind
  ``new``).
- Owners' answers ``disputed``, ``accepted-risk``, ``false-positive``: counted as seen, no
  reminders; an operator reopens them.
- Seen not vulnerable: ``fixed-verified``; when it had been notified and ``report_fixed``
  is on, it goes into the next digest's section of verified fixes (kind ``fixed``). A
  finding never seen vulnerable is recorded and sends nothing. A compromised or
  misbehaving system that a rescan no longer finds is ``no-longer-seen`` instead (kind
  ``not-seen``): no feed can verify that an infection is gone.
- Only the reporter that first saw a finding vulnerable (the case's owner, else the feed's
  provider) closes it: another reporter's not-vulnerable result changes nothing (see
  ``harmonization/finding-id.md``, "Who may close a finding").
- Compromised and misbehaving systems the feeds stopped reporting for ``quiet_after``
  seconds become ``no-longer-seen`` (:func:`quiet`): reported as such, never as fixed.
- Observations are counted per report (``times_seen``): the events of one report (a
  submission, a feed's report) about one finding are one observation.
- The same event again (IntelMQ hands a message over once more after a crash): the same
  answer as the first time, while that is still waiting for its digest; counted once.
- A delivered reminder changes no state, but is written to the history all the same (the
  same state before and after), so that a hub learns of it from a CERT's outbox.
- A hub's record of forwarding (:func:`forwarded_first`, :func:`forwarded_again`): the
  organisation is the CERT (``cert:<key>``), the state ``forwarded`` until the CERT
  reports otherwise; it never goes into a digest of the hub's.
- At a CERT, a finding a hub forwarded keeps that hub's finding id and instance name
  (``upstream_finding_id``, ``upstream_instance``), the last ones seen.
"""

from dataclasses import dataclass, field
from typing import Optional

from intelmq_nsm import cert_ids
from intelmq_nsm.abuse_kinds import DEFAULT as DEFAULT_KIND
from intelmq_nsm.abuse_kinds import SEEN_BY_FEEDS
from intelmq_nsm.digest.ledger.precedence import decide

FIXED = ("fixed-verified", "fixed-reported")
NOTIFIED = ("notified", "reopened")
#: States a quiet period moves to ``no-longer-seen`` (see :mod:`.precedence`).
QUIET_FROM = ("open", "notified", "reopened", "fixed-reported")
#: Kinds in a digest that are news of an end, not a notice to act: they count as no notification.
NEWS = ("fixed", "not-seen")


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
    #: Who speaks for it: the case's owner (``extra.nsm.case_owner``), else the feed's provider.
    reporter: str = ""
    #: A finding a hub forwarded: the hub's finding id and instance (``extra.nsm.upstream``).
    upstream_finding_id: str = ""
    upstream_instance: str = ""
    #: The kind of abuse: vulnerable, compromised, misbehaving or exposed.
    abuse: str = DEFAULT_KIND
    #: The report it came from ("" when unknown: the event is an observation of its own).
    report: str = ""


@dataclass
class Step:
    """What an observation does: the kind it puts into a digest (None: nothing), the new
    column values, and the change of state for the history (old, new, note) if any."""

    kind: Optional[str]
    values: dict = field(default_factory=dict)
    change: Optional[tuple] = None


def _gone(observation: Observation) -> str:
    """The state a not-vulnerable result moves a finding to: a verified fix, except for
    what no scan can verify (compromised, misbehaving): no longer seen."""
    return "no-longer-seen" if observation.abuse in SEEN_BY_FEEDS else "fixed-verified"


def first(observation: Observation, now: float) -> Step:
    """A finding never seen before."""
    if observation.vulnerable:
        state, kind, note = "open", "new", f"First seen ({observation.abuse})."
    else:
        state, kind, note = _gone(observation), None, "First seen not vulnerable; nothing to notify."
    values = {
        "org_name": observation.org_name,
        "constituency": observation.constituency,
        "case_id": observation.case_id,
        "target": observation.target,
        "matches": observation.matches,
        # Not vulnerable first: nobody has spoken for it yet.
        "reporter": observation.reporter if observation.vulnerable else "",
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
        "abuse": observation.abuse,
        "last_report": observation.report,
    }
    return Step(kind, values, (None, state, note))


def again(record, observation: Observation, now: float, reminder_after: float, report_fixed: bool) -> Step:
    """A finding the ledger knows (``record``: its row)."""
    if record["last_event"] == observation.event_hash:
        repeat = record["last_kind"] if record["last_kind"] and record["pending"] == record["last_kind"] else None
        return Step(repeat)
    if not observation.vulnerable and not may_close(record, observation):
        return Step(None)  # another reporter's rescan cannot speak for this finding
    values = seen(record, observation, now)
    if observation.matches and observation.matches != record.get("matches"):
        values["matches"] = observation.matches
    if observation.abuse != record.get("abuse"):
        values["abuse"] = observation.abuse
    if observation.vulnerable and observation.reporter and not record.get("reporter"):
        values["reporter"] = observation.reporter
    if observation.upstream_finding_id and not record.get("upstream_finding_id"):
        # Seen first from the CERT's own sources, then forwarded by a hub: its changes from
        # now on go back to the hub too.
        values["upstream_finding_id"] = observation.upstream_finding_id
        values["upstream_instance"] = observation.upstream_instance
    state, kind, change = record["state"], None, None
    if observation.vulnerable:
        decision = decide(state, "reopened", "scan")
        if decision.changes:
            if record["first_notified"] is None:
                kind, new_state, note = "new", "open", f"Seen again after {state}; it had never been notified."
            else:
                kind, new_state, note = "reopened", "reopened", f"Seen again after {state}."
                values["reopened"] = record["reopened"] + 1
            values.update(state=new_state, pending=kind)
            change = (state, new_state, note)
        elif state in NOTIFIED and record["pending"] is None and due_for_reminder(record, now, reminder_after):
            kind = "reminder"
            values["pending"] = kind
    elif decide(state, _gone(observation), "scan").changes:
        new_state = _gone(observation)
        verified = new_state == "fixed-verified"
        note = "A rescan found it not vulnerable." if verified else "A rescan no longer found it."
        change = (state, new_state, note)
        values["state"] = new_state
        if record["first_notified"] is not None:
            if verified:
                values["fixed_at"] = now
            if report_fixed:
                kind = "fixed" if verified else "not-seen"
                values["pending"] = kind
    values["last_kind"] = kind
    return Step(kind, values, change)


def seen(record, observation: Observation, now: float) -> dict:
    """The record's values after ``observation`` was seen again: when last, which event, and
    one observation more unless its report was counted already (the events of one report
    are one observation)."""
    values = {"last_seen": max(now, record["last_seen"]), "last_event": observation.event_hash}
    if not observation.report or observation.report != record.get("last_report"):
        values["times_seen"] = record["times_seen"] + 1
        values["last_report"] = observation.report
    return values


def may_close(record, observation: Observation) -> bool:
    """Whether a not-vulnerable ``observation`` may close the finding of ``record``: its
    reporter is the one that saw it vulnerable first, or the record has none (a ledger of
    an earlier version, or a finding never seen vulnerable)."""
    return not record.get("reporter") or record["reporter"] == observation.reporter


def quiet(record, now: float, quiet_after: float) -> Optional[Step]:
    """A compromised or misbehaving finding the feeds stopped reporting ``quiet_after``
    seconds ago: ``no-longer-seen`` (nothing for a digest: no event says so, the ledger's
    readers and the owners' page do); None when it is not (yet) so."""
    if quiet_after <= 0 or record.get("abuse") not in SEEN_BY_FEEDS or now - record["last_seen"] < quiet_after:
        return None
    decision = decide(record["state"], "no-longer-seen", "scan")
    if not decision.changes:
        return None
    note = f"No longer seen for {quiet_after / 86400:g} days."
    return Step(None, {"state": decision.state}, (record["state"], decision.state, note))


def due_for_reminder(record, now: float, reminder_after: float) -> bool:
    last = record["last_notified"]
    return reminder_after > 0 and last is not None and now - last >= reminder_after


def delivered(record, kind: str, digest_id: str, now: float) -> Step:
    """The digest ``digest_id`` holding this finding as ``kind`` was delivered."""
    values = {}
    change = None
    if kind not in NEWS:
        values.update(
            last_notified=now,
            notifications=record["notifications"] + 1,
            first_notified=record["first_notified"] if record["first_notified"] is not None else now,
        )
        if kind == "reminder":
            values["reminders"] = record["reminders"] + 1
            # No change of state, but a change of the finding's life all the same: in the
            # history, so that it goes where the history goes (a hub's outbox).
            change = (record["state"], record["state"], f"Reminded in digest {digest_id}.")
        if decide(record["state"], "notified", "scan").changes:
            values["state"] = "notified"
            change = (record["state"], "notified", f"Notified in digest {digest_id}.")
        elif record["state"] == "fixed-verified" and record["fixed_at"] is None:
            # Verified fixed while its first notification was on its way.
            values["fixed_at"] = now
    if record["pending"] == kind:
        values["pending"] = None
    return Step(kind, values, change)


# -- a hub's record of what it forwarded to a sectoral CERT's instance ---------------------

#: The state of a hub's record of a finding it forwarded (see STATES).
FORWARDED = "forwarded"
#: A hub's record of a finding forwarded to a CERT has the organisation ``cert:<key>``,
#: the key of the CERT's constituency in the hub's registry.
CERT_PREFIX = cert_ids.CERT_PREFIX


#: The organisation id of a hub's records of findings forwarded to a constituency's CERT.
cert_org_id = cert_ids.cert_organisation
#: The constituency whose CERT a record's organisation ``cert:<key>`` stands for ("" if none).
forwarded_to = cert_ids.cert_key


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
    return Step(None, seen(record, observation, now))
