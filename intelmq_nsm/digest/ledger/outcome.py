"""What became of one case's findings: the figures a researcher (and the IBD's operators) see.

:func:`case_outcome` reads the case's records and their history from the ledger
(:meth:`intelmq_nsm.digest.ledger.store.Ledger.case_records`) and answers with counts per
state and per constituency, the days from notification to verified fix (median and 90th
percentile), and a daily series of open and fixed findings, each day's state being the
last change on or before its end (UTC). Organisation names appear only for constituencies
that allow sharing them (``share_names`` in the registry); otherwise a constituency shows
counts only.

At a hub, a constituency whose findings went to its CERT's own instance (the hub's records
of org ``cert:<key>``) also shows what that CERT reported (``downstream``): the CERT, its
instance, how many findings it reported on and when last, and per organisation of the
CERT's the states, by name only where the CERT sent names and the hub's registry lets the
constituency share them, else as a count. The constituency's own counts, the days to a fix
and the daily series follow the CERT's reports (applied to the hub's records).

At a hub, ``forwarded`` counts per constituency the findings handed to that
constituency's CERT (records of the organisation ``cert:<key>``), whatever the CERT
reported of them since.
"""

import datetime
import time
from collections import defaultdict
from typing import Callable, Optional

from intelmq_nsm.abuse_kinds import DEFAULT as DEFAULT_KIND
from intelmq_nsm.abuse_kinds import KINDS as KINDS_OF_ABUSE
from intelmq_nsm.digest.ledger.policy import forwarded_to
from intelmq_nsm.digest.ledger.schema import CERT_SOURCE, STATES
from intelmq_nsm.digest.ledger.stats import DAY, UNRESOLVED, kind_counts, percentiles

#: The daily series covers at most this many days (the most recent ones).
MAX_DAYS = 400


def _day(timestamp: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date()


def _end_of(day: datetime.date) -> float:
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
    return (start + datetime.timedelta(days=1)).timestamp()


def _counts(records, kinds: bool = True) -> dict:
    """Counts of the records; ``kinds``: with them per kind of abuse (``by_kind``)."""
    by_state = dict.fromkeys(STATES, 0)
    by_kind = {}
    for r in records:
        by_state[r["state"]] += 1
        kind = by_kind.setdefault(r.get("abuse") or DEFAULT_KIND, dict.fromkeys(STATES, 0))
        kind[r["state"]] += 1
    counts = {
        "findings": len(records),
        "notified": sum(1 for r in records if r["first_notified"] is not None),
        "open": sum(by_state[s] for s in UNRESOLVED),
        "fixed_verified": by_state["fixed-verified"],
        "by_state": {s: n for s, n in by_state.items() if n},
    }
    if kinds:
        # Per kind of abuse: a compromised system no longer seen is not a verified fix.
        counts["by_kind"] = {k: kind_counts(by_kind[k]) for k in KINDS_OF_ABUSE if k in by_kind}
    return counts


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


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def case_records(ledger, case_id: str, every_ledger: bool = False) -> tuple:
    """``(records, changes, downstream)`` of the case in ``ledger`` (with ``every_ledger``: in
    every ledger its database holds); each change, record and downstream row has the ``key``
    of its record."""
    records, changes = ledger.case_records(case_id, every_ledger)
    downstream = ledger.case_downstream(case_id, every_ledger) if records else []
    for row in (*records, *changes, *downstream):
        row["key"] = (id(ledger), row["ledger"], row["finding_id"], row["org_id"])
    return records, changes, downstream


def _state_counts(rows) -> dict:
    counts = defaultdict(int)
    for row in rows:
        counts[row["state"]] += 1
    return {state: counts[state] for state in STATES if counts[state]} | {
        state: n for state, n in sorted(counts.items()) if state not in STATES
    }


def downstream_of(group, rows, share: bool) -> Optional[dict]:
    """What the CERTs reported for a constituency's findings forwarded to them (``group``: its
    records; ``rows``: the CERTs' per organisation); None when none was forwarded."""
    certs = sorted({r["org_id"] for r in group if r["org_id"].startswith(CERT_SOURCE)})
    if not certs:
        return None
    result = {
        "certs": certs,
        "instances": sorted({d["instance"] for d in rows if d["instance"]}),
        "forwarded": sum(1 for r in group if r["org_id"].startswith(CERT_SOURCE)),
        "reported": len({d["key"] for d in rows}),
        "last_report": _iso(max(d["at"] for d in rows)) if rows else None,
        "by_state": _state_counts(rows),
    }
    per_org = defaultdict(list)
    for d in rows:
        per_org[d["downstream_id"]].append(d)
    named = {org: ds for org, ds in per_org.items() if share and ds[-1]["name"]}
    if named:
        organisations = [
            {"name": ds[-1]["name"], "findings": len(ds), "by_state": _state_counts(ds)} for ds in named.values()
        ]
        result["organisations"] = sorted(organisations, key=lambda o: o["name"])
    result["organisations_count"] = len(per_org)
    return result


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
    records, changes, reported = [], [], defaultdict(list)
    for ledger in [sources] if hasattr(sources, "engine") else sources:
        more_records, more_changes, more_reported = case_records(ledger, case_id, every_ledger)
        records += more_records
        changes += more_changes
        for row in more_reported:
            reported[row["key"]].append(row)
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
            entry["organisations"] = [{"name": name, **_counts(per_org[name], kinds=False)} for name in sorted(per_org)]
        else:
            entry["organisations_count"] = len({r["org_id"] for r in group})
        downstream = downstream_of(group, [d for r in group for d in reported[r["key"]]], share_names(key))
        if downstream is not None:
            entry["downstream"] = downstream
        constituencies.append(entry)
    return {
        "case_id": case_id,
        **_counts(records),
        **_forwarded(records),
        "days_to_fix": _days_to_fix(records),
        "constituencies": constituencies,
        "daily": daily_series(records, changes, now),
        "as_of": _iso(now),
    }
