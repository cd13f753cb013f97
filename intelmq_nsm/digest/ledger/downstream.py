"""At a hub: what a change a downstream CERT reported does to the hub's record of a finding
it forwarded to that CERT (org ``cert:<key>``), and to its row of the CERT's organisation.

Plain functions over a record (a mapping of ``ledger_findings`` columns), as in
:mod:`.policy`; the state each takes is :func:`.precedence.decide`'s. The hub's record
follows the CERT: its state, when the CERT first notified (so that a researcher's "notified"
and days to a fix count the CERT's notification), the verified fix, a reopening. Every
applied change is written to the record's history with the CERT's time and the source
``cert:<key>``, also where it leaves the state as it was (a reminder, a second organisation).
"""

from dataclasses import dataclass
from typing import Optional

from intelmq_nsm.digest.ledger.policy import Step
from intelmq_nsm.digest.ledger.precedence import REPORTED_ONLY, SOURCES, decide


@dataclass(frozen=True)
class Reported:
    """One change a CERT reported (``nsm-outcomes/1``), checked."""

    change_id: str
    #: The hub's finding id (the CERT's ``extra.nsm.upstream.finding_id``).
    finding_id: str
    state: str
    at: float
    #: The CERT's organisation: its id (opaque where the CERT shares no names) and name.
    downstream_id: str
    name: str = ""
    #: Who changed it at the CERT (``scan``, ``owner``, ``operator``, ...).
    cert_source: str = ""
    note: str = ""


def note(reported: Reported, instance: str) -> str:
    """The history note at the hub: who reported what for which organisation, and why."""
    who = f"{reported.name} ({reported.downstream_id})" if reported.name else reported.downstream_id
    by = f" by {reported.cert_source}" if reported.cert_source else ""
    text = f"{instance or 'The CERT'} reported {reported.state}{by} for {who}"
    return f"{text}: {reported.note}" if reported.note else f"{text}."


def on_record(record, reported: Reported, source: str, instance: str) -> Step:
    """What the change does to the hub's record (``record``: its row): what the hub's table
    of precedence applies (:func:`.precedence.decide`, as who changed it at the CERT), in
    the history either way."""
    decision = decide(record["state"], reported.state, origin(source, reported))
    state = decision.state
    values = {}
    if state != record["state"]:
        values["state"] = state
        if state == "reopened":
            values["reopened"] = record["reopened"] + 1
    if reported.state == "notified":
        if record["first_notified"] is None or reported.at < record["first_notified"]:
            values["first_notified"] = reported.at
        if record["last_notified"] is None or reported.at > record["last_notified"]:
            values["last_notified"] = reported.at
    first_notified = values.get("first_notified", record["first_notified"])
    if state == "fixed-verified" and record["state"] != "fixed-verified" and first_notified is not None:
        values["fixed_at"] = reported.at
    return Step(None, values, (record["state"], state, note(reported, instance)))


def origin(source: str, reported: Reported) -> str:
    """The source the hub decides a CERT's change as: ``cert:<key>/<who changed it there>``,
    or ``cert:<key>`` when the CERT named nobody the table knows."""
    return f"{source}/{reported.cert_source}" if reported.cert_source in SOURCES else source


def downstream_state(old_state: Optional[str], reported: Reported, source: str) -> str:
    """The state of the CERT's organisation's row (None: its first report): what the CERT
    reports, by the same table as the hub's record (an unverified word after a verified
    fix leaves it verified); a reminder leaves it as it was."""
    if old_state is None:
        return "notified" if reported.state in REPORTED_ONLY else reported.state
    return decide(old_state, reported.state, origin(source, reported)).state
