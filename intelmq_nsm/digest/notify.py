"""From an event to what goes into digests: the finding ledger decides, the spool keeps.

Per event: the ledger records the observation of each finding and says what it is in a
digest now (new, reminder, reopened, fixed) or that it goes into none; what is due goes
into the spool; then the caller acknowledges the message.

When the ledger is the spool's own SQLite file (the default), both are written in one
transaction on the spool's connection: one commit per event, and a crash leaves both or neither.
With the ledger elsewhere (PostgreSQL) they are two commits, ledger first; a crash in
between repeats the message, the ledger answers a repeated event (same event hash) as the
first time without counting it again, and the spool ignores the repeat.
"""

import dataclasses
import datetime
import json
from typing import Callable, Optional

from intelmq_nsm.digest.findings import findings
from intelmq_nsm.digest.ledger import Observation


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
) -> list:
    """Take one event (a flat dict); return the findings spooled for digests.

    Raises FindingError for an event that cannot be delivered (the bot dumps it) and, from
    ``call`` (which may retry), LedgerUnavailable."""
    found = findings(event, constituency=constituency)
    wanted = observations(found)
    if ledger.shares_file(spool.path):

        def both():
            # On the spool's own connection: no second connection to the same file.
            with ledger.sqlite_transaction(spool.db) as db:
                records = ledger.observe(wanted, now=now, conn=db)
                due = [with_record(f, r) for f, r in zip(found, records) if r["kind"]]
                if due:
                    spool.add_in(db, due, now=now)
                return due

        return call(both)
    records = call(lambda: ledger.observe(wanted, now=now))
    due = [with_record(f, r) for f, r in zip(found, records) if r["kind"]]
    if due:
        spool.add(due, now=now)
    return due
