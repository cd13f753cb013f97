"""From an event to what goes into digests: the finding ledger decides, the spool keeps.

The ledger records the observation of each finding and says what it is in a digest now
(new, reminder, reopened, fixed) or that it goes into none; what is due goes into the
spool. When that happens depends on where the ledger is:

- In the spool's own SQLite file (the default): per event, :func:`arrive` appends the
  event's findings to the spool's arrivals (one row, one commit) and the caller
  acknowledges the message. Every delivery round, before digests are formed,
  :func:`file_arrivals` observes them in the ledger in arrival order, each at the time it
  arrived, and moves what is due into the spool, in one transaction per batch: a crash
  leaves a batch filed or still arriving, never half. Why: the ledger's rows and indexes
  cost an event's commit three times the pages of the arrival, and that commit is on the
  path of every message; in a batch, neighbouring findings share their pages.
- Elsewhere (PostgreSQL): per event, :func:`accept` observes in the ledger, then spools,
  before the acknowledgement, so that an unreachable ledger stops the output from
  acknowledging. Two commits, ledger first; a crash in between repeats the message, the
  ledger answers a repeated event (same event hash) as the first time without counting it
  again, and the spool ignores the repeat.
"""

import dataclasses
import datetime
import json
from typing import Callable, Optional

from intelmq_nsm import storage
from intelmq_nsm import tlp as traffic_light
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.ledger import BAD_VALUE_ERRORS, Observation


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def observations(found) -> list:
    return [
        Observation(
            f.finding_id,
            f.organisation["id"],
            f.event_hash,
            vulnerable=f.vulnerable,
            org_name=f.organisation["name"],
            constituency=f.constituency,
            case_id=f.case_id,
            target=f.target,
            matches=json.dumps(list(f.matches), sort_keys=True) if f.matches else "",
            upstream_finding_id=f.upstream_finding_id,
            upstream_instance=f.upstream_instance,
        )
        for f in found
    ]


def with_record(found, record: dict):
    """The finding as the digest shows it: its kind and what the ledger knows of its life."""
    row = {
        **found.row,
        "kind": record["kind"],
        "first_seen": _iso(record["first_seen"]),
        "last_seen": _iso(record["last_seen"]),
        "times_seen": record["times_seen"],
    }
    return dataclasses.replace(found, row=row)


def accept(
    event: dict,
    spool,
    ledger,
    now: float,
    constituency: Optional[str] = None,
    call: Callable = lambda action: action(),
    tlp: str = traffic_light.DEFAULT,
) -> list:
    """Take one event (a flat dict) into the ledger and the spool; return the findings
    spooled for digests. ``tlp``: the label of findings whose event carries none.

    Raises FindingError for an event that cannot be delivered (the bot dumps it) and, from
    ``call`` (which may retry), LedgerUnavailable."""
    found = findings_of(event, constituency=constituency, tlp=tlp)
    wanted = observations(found)
    if ledger.shares_file(spool.path):

        def both():
            # On the spool's own connection: no second connection to the same file.
            with ledger.sqlite_transaction(spool.db) as db:
                return _spool_due(spool, found, ledger.observe(wanted, now=now, conn=db), now)

        return call(both)
    return _spool_due(spool, found, call(lambda: ledger.observe(wanted, now=now)), now)


def arrive(
    event: dict, spool, now: float, constituency: Optional[str] = None, tlp: str = traffic_light.DEFAULT
) -> None:
    """Take one event (a flat dict) into the spool's arrivals.

    Raises FindingError for an event that cannot be delivered (the bot dumps it): its
    findings are made here, before the acknowledgement, as :func:`accept` makes them, so
    that every event :func:`accept` would refuse is refused here too (and made again, from
    the stored event, when it is filed)."""
    findings_of(event, constituency=constituency, tlp=tlp)
    spool.arrive(event, now=now)


#: What a stored event that cannot be filed raises: its data, not the database's state
#: (an unreachable or locked database raises LedgerUnavailable and the batch waits).
UNFILEABLE = (ValueError, TypeError, KeyError, AttributeError, *BAD_VALUE_ERRORS)


def file_arrivals(
    spool,
    ledger,
    batch: int = 500,
    failed: Callable = lambda arrival_id, error: None,
    tlp: str = traffic_light.DEFAULT,
) -> int:
    """Observe the findings of the spool's arrivals in the ledger, each at the time it
    arrived, and spool what is due; return how many arrivals (events) were filed. Raises
    LedgerUnavailable; what is not filed stays for the next round.

    An arrival that cannot be filed (its data: see UNFILEABLE) is marked failed with the
    reason and kept in the spool, ``failed(id, error)`` is told, and the rest of its batch
    is filed: one bad event must not hold up every digest."""
    filed = 0
    bad = []

    def unfileable(arrival_id, exc) -> None:
        bad.append(arrival_id)
        failed(arrival_id, str(exc))

    while arrivals := spool.arrivals(limit=batch):
        if not ledger.shares_file(spool.path):
            # The ledger moved elsewhere (ledger_url set) while arrivals waited: each is
            # taken as accept() takes an event, then dropped.
            for arrival_id, at, event in arrivals:
                try:
                    accept(event, spool, ledger, at, tlp=tlp)
                except UNFILEABLE as exc:
                    spool.arrival_failed(arrival_id, str(exc))
                    unfileable(arrival_id, exc)
                    continue
                spool.drop_arrivals([arrival_id])
            filed += len(arrivals)
            continue
        with ledger.sqlite_transaction(spool.db) as db:
            for arrival_id, at, event in arrivals:
                try:
                    # A savepoint per arrival: a bad one is undone alone.
                    with storage.savepoint(db):
                        found = findings_of(event, tlp=tlp)
                        _spool_due(spool, found, ledger.observe(observations(found), now=at, conn=db), at)
                except UNFILEABLE as exc:
                    spool.arrival_failed(arrival_id, str(exc))
                    unfileable(arrival_id, exc)
            spool.drop_arrivals([arrival[0] for arrival in arrivals])
        filed += len(arrivals)
    return filed - len(bad)


def _spool_due(spool, found, records, now: float) -> list:
    """Spool the findings the ledger's records make due (in the transaction open on the
    spool's connection, if any: see :class:`intelmq_nsm.digest.spool.DigestSpool`)."""
    due = [with_record(f, r) for f, r in zip(found, records) if r["kind"]]
    if due:
        spool.add(due, now=now)
    return due
