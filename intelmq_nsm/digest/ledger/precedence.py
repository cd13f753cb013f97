"""Which source may move a finding from which state to which: one table, one function.

Every writer of the ledger asks :func:`decide` before it changes a record's state: the
digest output acting on a scan (a rescan's result, a delivery, a quiet period), the owners'
page, the ticket system's API, an operator, and a downstream CERT reporting its own
ledger's changes back to the hub. ``decide(old_state, new_state, source)`` answers with a
:class:`Decision`: whether the state changes and to what, whether the request is kept in
the history only (the state stays), or whether it is ignored. The table and its reasons are
documented in ``harmonization/finding-states.md``.

Sources:

- ``scan``: what the digest output does on a scan's result (first seen, seen again, seen
  fixed), on a delivery (``open`` → ``notified``) and on a quiet period (``no-longer-seen``).
- ``owner``: the owners' page (signed links).
- ``ticket``: the ticket system's API (``POST /v1/feedback``).
- ``operator``: the CERT's own operators (the commands).
- ``cert:<key>`` and ``cert:<key>/<origin>``: a downstream CERT's instance reporting a change
  of its own record of the finding (``<key>``: the CERT's constituency key, e.g. ``ibd``).
  ``<origin>`` is who changed it there (``scan``, ``owner``, ``ticket`` or ``operator``);
  without it the state says it (:data:`CERT_ORIGIN`). It is decided as that origin at the
  hub would be, except that a CERT's operator counts as a ticket system (a CERT speaks for
  its constituents, never over the hub's own operators), and that what the hub's table
  does not apply is still kept in the hub's history: the hub keeps what every CERT said.

What outranks what, in short: a scan's verification outranks every answer (an answer after
a verified fix is kept in the history, the fix stays); a rescan that sees the system
vulnerable again still reopens it (after a verified or reported fix, or after it was no
longer seen); the owners' answers stand against being seen again (an operator reopens
them); an operator may correct a verified fix (the verification was wrong: open,
false-positive, disputed) but not lower it to an unverified claim.
"""

from dataclasses import dataclass
from typing import Optional

#: Every state a finding can be in. ``open``: seen, not yet notified. ``notified``: in a
#: delivered digest. ``reopened``: seen again after a fix (or after it was no longer seen).
#: ``fixed-verified``: a rescan said not vulnerable. ``no-longer-seen``: a compromised or
#: misbehaving system that the feeds stopped reporting for the quiet period (or a rescan no
#: longer found): never a verified fix. The owners' answers: ``fixed-reported`` (says
#: fixed, not yet verified), ``disputed`` (not ours), ``accepted-risk``, ``false-positive``.
#: ``forwarded``: at a hub, a finding handed to a sectoral CERT's own instance (the record's
#: organisation is ``cert:<key>``); what becomes of it there is the CERT's to say.
STATES = (
    "open",
    "notified",
    "fixed-verified",
    "reopened",
    "fixed-reported",
    "disputed",
    "accepted-risk",
    "false-positive",
    "no-longer-seen",
    "forwarded",
)
#: States a CERT may report that are no state of a hub's record: it reminded its constituent.
REPORTED_ONLY = ("reminded",)
#: The owners' answers.
ANSWERS = ("fixed-reported", "disputed", "accepted-risk", "false-positive")
#: The finding is there as far as anyone knows, and nobody answered.
ACTIVE = ("open", "notified", "reopened", "forwarded")
#: The sources that are not a CERT's.
SOURCES = ("scan", "owner", "ticket", "operator")
#: A downstream CERT's source: ``cert:<key>`` or ``cert:<key>/<origin>``.
CERT = "cert"
#: What a CERT's change without an origin is decided as, by the state it reports; None:
#: history only (the hub notified the CERT itself; the CERT's own notices are its news).
CERT_ORIGIN = {
    "fixed-verified": "scan",
    "reopened": "scan",
    "no-longer-seen": "scan",
    "open": "ticket",
    # The CERT notified its constituent: the hub's record of a forwarded finding follows.
    "notified": "scan",
    "reminded": None,
    # Handed on to a CERT further down: the CERT's news.
    "forwarded": None,
    **dict.fromkeys(ANSWERS, "owner"),
}

APPLY, HISTORY, IGNORE = "apply", "history", "ignore"

_ANSWERED = (*ANSWERS, "no-longer-seen")
_OWNER = {answer: {**dict.fromkeys((*ACTIVE, *_ANSWERED), APPLY), "fixed-verified": HISTORY} for answer in ANSWERS}
_TICKET = {
    **_OWNER,
    # Taking an answer back. Open already: kept in the history; a verified fix stays.
    "open": {**dict.fromkeys(_ANSWERED, APPLY), **dict.fromkeys(ACTIVE, HISTORY), "fixed-verified": HISTORY},
}

#: The table: source → requested state → old state (None: no record yet) → APPLY (the state
#: changes), HISTORY (kept in the history, the state stays) or IGNORE (nothing recorded).
#: An old state not listed is IGNORE.
TABLE = {
    "scan": {
        "open": {None: APPLY},
        "notified": {"open": APPLY, "forwarded": APPLY},
        "reopened": {"fixed-verified": APPLY, "fixed-reported": APPLY, "no-longer-seen": APPLY},
        "fixed-verified": {None: APPLY, **{s: APPLY for s in STATES if s != "fixed-verified"}},
        "no-longer-seen": {None: APPLY, **dict.fromkeys((*ACTIVE, "fixed-reported"), APPLY)},
    },
    "owner": _OWNER,
    "ticket": _TICKET,
    "operator": {
        **_TICKET,
        # The verification was wrong: an operator corrects it; lowering it to a claim is not.
        "open": {**_TICKET["open"], "fixed-verified": APPLY},
        "false-positive": {**_OWNER["false-positive"], "fixed-verified": APPLY},
        "disputed": {**_OWNER["disputed"], "fixed-verified": APPLY},
    },
}

_REASONS = {
    APPLY: "{source} moves it from {old} to {new}.",
    HISTORY: "{source} says {new}; kept in the history, it stays {old}: {why}",
    IGNORE: "{source} cannot move it from {old} to {new}.",
}
_WHY_HISTORY = {
    "fixed-verified": "a verified fix outranks an answer.",
    "open": "it is open already.",
    "notified": "it is open already.",
    "reopened": "it is open already.",
    "forwarded": "the CERT it was forwarded to says what became of it.",
    "reported": "the CERT's own news.",
}


@dataclass(frozen=True)
class Decision:
    """What a request does to a record: ``state`` after it (the old one when it stays),
    ``changes`` (the state moves), ``history_only`` (the request is kept in the history,
    the state stays), ``reason`` (one sentence, for the history's note and the logs)."""

    state: Optional[str]
    changes: bool
    history_only: bool
    reason: str

    @property
    def recorded(self) -> bool:
        """Whether the history gets a row for it."""
        return self.changes or self.history_only


def parse_source(source: str) -> tuple:
    """``(role, cert key, origin)`` of ``source``: ``("owner", None, None)``,
    ``("cert", "ibd", "scan")``, ``("cert", "ibd", None)``; raises ValueError."""
    if source in SOURCES:
        return source, None, None
    head, _, rest = str(source).partition(":")
    key, _, origin = rest.partition("/")
    if head != CERT or not key or not key.replace("-", "").replace("_", "").isalnum():
        raise ValueError(
            f"source must be one of {', '.join(SOURCES)}, cert:<key> or cert:<key>/<origin>, not {source!r}."
        )
    if origin and origin not in SOURCES:
        raise ValueError(f"The origin of {source!r} must be one of {', '.join(SOURCES)}, not {origin!r}.")
    return CERT, key, origin or None


def decide(old_state: Optional[str], new_state: str, source: str) -> Decision:
    """What ``source`` asking for ``new_state`` does to a record in ``old_state`` (None: the
    ledger has no record of it yet). Raises ValueError for an unknown state or source."""
    if old_state is not None and old_state not in STATES:
        raise ValueError(f"old_state must be one of {', '.join(STATES)} or None, not {old_state!r}.")
    if new_state not in STATES and new_state not in REPORTED_ONLY:
        raise ValueError(f"new_state must be one of {', '.join((*STATES, *REPORTED_ONLY))}, not {new_state!r}.")
    role, _, origin = parse_source(source)
    if role == CERT:
        # Its own notices are the CERT's news whoever it says sent them (None: history only).
        as_role = None if CERT_ORIGIN[new_state] is None else origin or CERT_ORIGIN[new_state]
        if as_role == "operator":
            as_role = "ticket"
        if old_state is None:
            # A CERT speaks only of findings the hub forwarded to it: of nothing else.
            return _decision(IGNORE, old_state, new_state, source, "")
        outcome = IGNORE if as_role is None else TABLE[as_role].get(new_state, {}).get(old_state, IGNORE)
        if outcome == IGNORE:
            # The hub keeps what every CERT said about a finding it forwarded.
            why = _WHY_HISTORY.get(old_state, "") if as_role else _WHY_HISTORY["reported"]
            return _decision(HISTORY, old_state, new_state, source, why or "the hub's table does not apply it.")
    elif new_state in REPORTED_ONLY:
        outcome = IGNORE
    else:
        outcome = TABLE[role].get(new_state, {}).get(old_state, IGNORE)
    return _decision(outcome, old_state, new_state, source, _WHY_HISTORY.get(old_state, ""))


def _decision(outcome: str, old: Optional[str], new: str, source: str, why: str) -> Decision:
    reason = _REASONS[outcome].format(source=source, old=old or "nothing", new=new, why=why).rstrip(": ")
    if outcome == APPLY and old == new:
        # The same answer again: a row in the history (its note may be new), no change.
        return Decision(old, False, True, f"{source} says {new} again.")
    if outcome == APPLY:
        return Decision(new, True, False, reason)
    if outcome == HISTORY:
        return Decision(old, False, True, reason)
    return Decision(old, False, False, reason)
