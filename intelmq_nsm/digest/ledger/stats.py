"""What became of the findings: counts per case, constituency and organisation (and per
kind of abuse within each), and how long a fix took (days from the first notification to
the verified fix).

The counts come from the ledger as one ``GROUP BY`` (case, constituency, organisation, kind
of abuse, state), read in the order of one covering index and summed per level here; only the fixed
findings' durations (a partial index) are read out to compute the median and the 90th
percentile (linear interpolation, as ``numpy.percentile``). The queries are the ledger's
(:meth:`intelmq_nsm.digest.ledger.store.Ledger.statistics_rows`); here are the sums.
"""

from collections import defaultdict

import numpy

from intelmq_nsm.abuse_kinds import KINDS as KINDS_OF_ABUSE
from intelmq_nsm.digest.ledger.schema import STATES

#: States in which the finding is still there as far as anyone knows (``forwarded``: a
#: hub handed it to a CERT's instance, which has not reported otherwise yet).
UNRESOLVED = ("open", "notified", "reopened", "fixed-reported", "disputed", "forwarded")
LEVELS = (("cases", "case_id"), ("constituencies", "constituency"), ("organisations", "org_id"))
DAY = 86400.0


def _empty() -> dict:
    return {"findings": 0, "notified": 0, "by_state": dict.fromkeys(STATES, 0), "days": [], "by_kind": {}}


def stats(ledger) -> dict:
    """``{"cases": [...], "constituencies": [...], "organisations": [...]}``; each entry has
    its key, ``findings``, ``notified`` (ever), ``open`` (unresolved), ``fixed_verified``,
    ``no_longer_seen``, ``reopened`` (now), ``by_state``, ``days_to_fix`` (``median``,
    ``p90``, ``count``) and ``by_kind``: per kind of abuse it has findings of, its
    ``findings``, ``open``, ``fixed_verified``, ``no_longer_seen`` and ``by_state``."""
    groups = {level: defaultdict(_empty) for level, _ in LEVELS}
    names = {}
    counts, fixes = ledger.statistics_rows()
    for case_id, constituency, org_id, abuse, state, n, notified, name in counts:
        for level, key in (("cases", case_id), ("constituencies", constituency), ("organisations", org_id)):
            group = groups[level][key]
            group["findings"] += n
            group["notified"] += notified
            group["by_state"][state] += n
            by_kind = group["by_kind"].setdefault(abuse, dict.fromkeys(STATES, 0))
            by_kind[state] += n
        names[org_id] = max(names.get(org_id) or "", name or "")
    # The fixed findings' durations: one list per group and level.
    days = {level: defaultdict(list) for level, _ in LEVELS}
    by_case, by_constituency, by_org = days["cases"], days["constituencies"], days["organisations"]
    for case_id, constituency, org_id, seconds in fixes:
        value = seconds / DAY if seconds > 0 else 0.0
        by_case[case_id].append(value)
        by_constituency[constituency].append(value)
        by_org[org_id].append(value)
    for level, _ in LEVELS:
        for key, values in days[level].items():
            groups[level][key]["days"] = values
    result = {}
    for level, column in LEVELS:
        entries = []
        for key in sorted(groups[level]):
            entry = {column: key}
            if level == "organisations":
                entry["name"] = names.get(key) or key
            entry.update(_summary(groups[level][key]))
            entries.append(entry)
        result[level] = entries
    return result


def _summary(group: dict) -> dict:
    by_state = group["by_state"]
    return {
        "findings": group["findings"],
        "notified": group["notified"],
        "open": sum(by_state[s] for s in UNRESOLVED),
        "fixed_verified": by_state["fixed-verified"],
        "no_longer_seen": by_state["no-longer-seen"],
        "reopened": by_state["reopened"],
        "by_state": by_state,
        "days_to_fix": percentiles(group["days"]),
        "by_kind": {kind: kind_counts(group["by_kind"][kind]) for kind in KINDS_OF_ABUSE if kind in group["by_kind"]},
    }


def kind_counts(by_state: dict) -> dict:
    """One kind of abuse's counts from its findings per state."""
    return {
        "findings": sum(by_state.values()),
        "open": sum(by_state[s] for s in UNRESOLVED),
        "fixed_verified": by_state["fixed-verified"],
        "no_longer_seen": by_state["no-longer-seen"],
        "by_state": {state: n for state, n in by_state.items() if n},
    }


def percentiles(days: list) -> dict:
    """The median and 90th percentile of ``days`` (linear interpolation) and their count."""
    if not days:
        return {"count": 0, "median": None, "p90": None}
    values = numpy.asarray(days)
    return {
        "count": len(days),
        "median": round(float(numpy.percentile(values, 50)), 2),
        "p90": round(float(numpy.percentile(values, 90)), 2),
    }


def case_counts(ledger) -> dict:
    """Per case: ``findings``, ``notified``, ``open``, ``fixed_verified``, ``reopened``,
    ``by_state`` (the states it has findings in) and ``by_kind`` (per kind of abuse), as the
    demo's summary shows them."""
    keys = ("findings", "notified", "open", "fixed_verified", "reopened")
    return {
        entry["case_id"]: {
            **{key: entry[key] for key in keys},
            "by_state": {state: n for state, n in entry["by_state"].items() if n},
            "by_kind": {kind: counts["findings"] for kind, counts in entry["by_kind"].items()},
        }
        for entry in stats(ledger)["cases"]
    }
