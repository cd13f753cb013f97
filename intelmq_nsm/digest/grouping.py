"""When a group of findings becomes a digest, and what its id is."""

import hashlib
import json

SEPARATOR = "\x1f"


def group_key(constituency: str, org_id: str, case_id: str = "", by_case: bool = False) -> str:
    """Findings with the same key go into the same digest: organisation and constituency,
    and the case too when digests are made per case."""
    parts = [constituency, org_id]
    if by_case:
        parts.append(case_id or "")
    return SEPARATOR.join(parts)


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
