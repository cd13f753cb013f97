"""What became of one case's findings: the figures a researcher (and the IBD's operators) see.

:func:`case_outcome` reads the case's records and their history from the ledger
(:meth:`intelmq_nsm.digest.ledger.store.Ledger.case_records`) and answers with counts per
state and per constituency, the days from notification to verified fix (median and 90th
percentile), and a daily series of open and fixed findings, each day's state being the
last change on or before its end (UTC). Organisation names appear only for constituencies
that allow sharing them (``share_names`` in the registry); otherwise a constituency shows
counts only. At a hub, ``forwarded`` counts per constituency the findings handed to that
constituency's CERT (records of the organisation ``cert:<key>``), whatever the CERT
reported of them since.
"""

import datetime
import time
from collections import defaultdict
from typing import Callable, Optional

from intelmq_nsm.digest.ledger.policy import forwarded_to
from intelmq_nsm.digest.ledger.schema import STATES
from intelmq_nsm.digest.ledger.stats import DAY, UNRESOLVED, percentiles

#: The daily series covers at most this many days (the most recent ones).
MAX_DAYS = 400


def _day(timestamp: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date()


def _end_of(day: datetime.date) -> float:
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
    return (start + datetime.timedelta(days=1)).timestamp()


def _counts(records) -> dict:
    by_state = dict.fromkeys(STATES, 0)
    for r in records:
        by_state[r["state"]] += 1
    return {
        "findings": len(records),
        "notified": sum(1 for r in records if r["first_notified"] is not None),
        "open": sum(by_state[s] for s in UNRESOLVED),
        "fixed_verified": by_state["fixed-verified"],
        "by_state": {s: n for s, n in by_state.items() if n},
    }


def _forwarded(records) -> dict:
    """How many of ``records`` this hub handed to a sectoral CERT's instance, whatever the
    CERT reported of them since."""
    return {"forwarded": sum(1 for r in records if forwarded_to(r["org_id"]))}


def _days_to_fix(records) -> dict:
    days = [
        max(0.0, r["fixed_at"] - r["first_notified"]) / DAY
        for r in records
        if r["state"] == "fixed-verified" and r["first_notified"] is not None and r["fixed_at"] is not None
    ]
    return percentiles(days)


def daily_series(records, changes, now: float) -> list:
    """``[{"date", "open", "fixed"}]`` from the first day a finding was seen to ``now``'s day;
    ``changes`` carry a ``key`` naming their record, oldest first."""
    if not records:
        return []
    timeline = defaultdict(list)
    for change in changes:
        timeline[change["key"]].append((change["at"], change["state"]))
    last = _day(now)
    first = max(_day(min(r["first_seen"] for r in records)), last - datetime.timedelta(days=MAX_DAYS - 1))
    series = []
    day = first
    while day <= last:
        end = min(_end_of(day), now + 1)
        open_, fixed = 0, 0
        for steps in timeline.values():
            state = None
            for at, new_state in steps:
                if at >= end:
                    break
                state = new_state
            if state in UNRESOLVED:
                open_ += 1
            elif state == "fixed-verified":
                fixed += 1
        series.append({"date": day.isoformat(), "open": open_, "fixed": fixed})
        day += datetime.timedelta(days=1)
    return series


def case_records(ledger, case_id: str, every_ledger: bool = False) -> tuple:
    """``(records, changes)`` of the case in ``ledger`` (with ``every_ledger``: in every
    ledger its database holds); each change has the ``key`` of its record."""
    records, changes = ledger.case_records(case_id, every_ledger)
    for change in changes:
        change["key"] = (id(ledger), change["ledger"], change["finding_id"], change["org_id"])
    return records, changes


def case_outcome(
    sources,
    case_id: str,
    share_names: Callable[[str], bool] = lambda constituency: False,
    now: Optional[float] = None,
    every_ledger: bool = False,
) -> Optional[dict]:
    """The case's figures over the ledgers ``sources`` (one Ledger or several: each digest
    output that notifies keeps its own), or None when none has a finding of that case."""
    now = time.time() if now is None else now
    records, changes = [], []
    for ledger in [sources] if hasattr(sources, "engine") else sources:
        more_records, more_changes = case_records(ledger, case_id, every_ledger)
        records += more_records
        changes += more_changes
    if not records:
        return None
    per_constituency = defaultdict(list)
    for r in records:
        per_constituency[r["constituency"]].append(r)
    constituencies = []
    for key in sorted(per_constituency):
        group = per_constituency[key]
        entry = {"constituency": key, **_counts(group), **_forwarded(group), "days_to_fix": _days_to_fix(group)}
        if share_names(key):
            per_org = defaultdict(list)
            for r in group:
                per_org[r["org_name"] or r["org_id"]].append(r)
            entry["organisations"] = [{"name": name, **_counts(per_org[name])} for name in sorted(per_org)]
        else:
            entry["organisations_count"] = len({r["org_id"] for r in group})
        constituencies.append(entry)
    return {
        "case_id": case_id,
        **_counts(records),
        **_forwarded(records),
        "days_to_fix": _days_to_fix(records),
        "constituencies": constituencies,
        "daily": daily_series(records, changes, now),
        "as_of": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="seconds"),
    }
