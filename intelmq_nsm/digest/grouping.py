"""When a group of findings becomes a digest, and what its id is.

A group is an organisation's findings in one constituency (and case, with ``by_case``).
Some findings form groups of their own, told apart by options after the group's key:
a TLP:RED finding is never put in a digest with others (``alone``), and findings of the
severity an organisation wants at once (its pace's ``immediate``) form a group that is due
at once. The organisation's pace (``max_age``, or a daily digest at ``daily_at``) is in the
key too, so that the spool decides when a group is due from the key alone.
"""

import datetime
import hashlib
import json
import zoneinfo

from intelmq_nsm.constituency.preferences import SEVERITIES

SEPARATOR = "\x1f"
#: Between a group's key and its options (JSON): pace, immediate, alone.
OPTIONS = "\x1e"


def group_key(constituency: str, org_id: str, case_id: str = "", by_case: bool = False) -> str:
    """Findings with the same key go into the same digest: organisation and constituency,
    and the case too when digests are made per case."""
    parts = [constituency, org_id]
    if by_case:
        parts.append(case_id or "")
    return SEPARATOR.join(parts)


def key_of(finding, by_case: bool = False) -> str:
    """The group of one finding (an ``intelmq_nsm.digest.event_findings.Finding``), with its options."""
    key = group_key(finding.constituency, finding.organisation["id"], finding.case_id, by_case)
    options = {}
    pace = dict(finding.organisation.get("pace") or {})
    immediate = pace.pop("immediate", None)
    if pace:
        options["pace"] = pace
    if immediate and finding.vulnerable and at_least(finding.row.get("severity"), immediate):
        options["immediate"] = True
    if finding.row.get("tlp") == "RED":
        options["alone"] = finding.event_hash
    if not options:
        return key
    return key + OPTIONS + json.dumps(options, sort_keys=True, separators=(",", ":"))


def at_least(severity, threshold: str) -> bool:
    """Whether IntelMQ's ``severity`` is ``threshold`` or higher (undefined and unknown: no)."""
    return severity in SEVERITIES and SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def options_of(key: str) -> dict:
    return json.loads(key.partition(OPTIONS)[2] or "{}")


def group_is_due(
    key: str, count: int, oldest: float, now: float, max_events: int, max_age: float, flush: bool = False
) -> bool:
    """:func:`is_due` under the group's options: ``immediate`` at once, the organisation's
    pace instead of the output's ``max_age`` (a daily digest: once its hour passed since the
    oldest finding arrived)."""
    options = options_of(key) if OPTIONS in key else {}
    pace = options.get("pace") or {}
    if options.get("immediate"):
        max_age = 0
    elif "daily_at" in pace:
        if count > 0 and not flush and count < max_events:
            return next_daily(oldest, pace["daily_at"], pace["timezone"]) <= now
    elif "max_age" in pace:
        max_age = pace["max_age"]
    return is_due(count, oldest, now, max_events, max_age, flush)


def next_daily(after: float, at: str, timezone: str) -> float:
    """The first moment after ``after`` at which the clock in ``timezone`` shows ``at`` (HH:MM)."""
    zone = zoneinfo.ZoneInfo(timezone)
    hour, minute = (int(part) for part in at.split(":"))
    day = datetime.datetime.fromtimestamp(after, zone).date()
    while True:
        moment = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=zone).timestamp()
        if moment > after:
            return moment
        day += datetime.timedelta(days=1)


def is_due(count: int, oldest: float, now: float, max_events: int, max_age: float, flush: bool = False) -> bool:
    """A group is due when it is full, when its oldest finding waited ``max_age`` seconds,
    or when the operator flushes."""
    return count > 0 and (flush or count >= max_events or now - oldest >= max_age)


def digest_id(org_id: str, constituency: str, key: str, event_hashes) -> str:
    """The digest's id: sha256 of its canonical content (organisation, constituency, group and
    the sorted hashes of its events). The same findings give the same id, so a digest formed
    again after a crash carries the same ``Idempotency-Key``."""
    canonical = json.dumps(
        {"org": org_id, "constituency": constituency, "group": key, "events": sorted(event_hashes)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def backoff(attempts: int, base: float, maximum: float) -> float:
    """Seconds to wait before attempt ``attempts + 1``: base, 2 * base, 4 * base, … capped."""
    return min(maximum, base * 2 ** max(0, attempts - 1))
