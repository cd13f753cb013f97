"""Rate limits per client, and the ``429`` with ``Retry-After`` that says when to come back.

:class:`RateLimiter` is a token bucket per key. A :class:`Throttle` holds a service's two:
requests per client (a token, or an address) and failed attempts (a wrong token, a bad
link) per address and per token id; it refuses with a :class:`~intelmq_nsm.web.refusal.Refusal`
that carries ``Retry-After``, whichever endpoint asks.
"""

import threading
import time

from intelmq_nsm.web.limits import Limits
from intelmq_nsm.web.refusal import Refusal


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``per_minute``/60 per second."""

    #: Buckets kept before the full ones (nothing taken lately) are forgotten.
    MAX_BUCKETS = 10000

    def __init__(self, per_minute: int, burst: int):
        self.rate, self.burst = per_minute / 60.0, max(1, burst)
        self._buckets = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), level + (now - stamp) * self.rate)

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until the next request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self.MAX_BUCKETS:
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self.burst}
            level = self._level(key, now)
            if level >= 1:
                self._buckets[key] = (level - 1, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate

    def wait(self, key: str) -> float:
        """What :meth:`take` would answer, without taking."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            level = self._level(key, time.monotonic())
        return 0.0 if level >= 1 else (1 - level) / self.rate


def retry_after(seconds: float) -> dict:
    """The ``Retry-After`` header for a wait of ``seconds`` (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, round(seconds + 0.5)))}


def address(remote: str) -> str:
    """The key of a client address (requests and failures are counted per key)."""
    return f"address {remote}"


def token(token_id: str) -> str:
    """The key of a token id."""
    return f"token {token_id}"


class Throttle:
    """A service's request and failure limits (from its :class:`~intelmq_nsm.web.limits.Limits`)."""

    def __init__(self, limits: Limits):
        self.requests = RateLimiter(limits.requests_per_minute, limits.burst)
        self.failures = RateLimiter(limits.failed_auth_per_minute, limits.failed_auth_burst)

    def request(self, key: str, whose: str = "from this address") -> None:
        """Count one request of ``key``; a 429 ``rate_limited`` over the limit."""
        wait = self.requests.take(key)
        if wait:
            raise Refusal(
                429, "rate_limited", f"Too many requests {whose}; try again in {wait:.0f} s.", headers=retry_after(wait)
            )

    def before_trying(self, *keys: str) -> None:
        """A 429 ``too_many_failures`` while any of ``keys`` has failed too often (nothing is counted)."""
        wait = max(self.failures.wait(key) for key in keys)
        if wait:
            raise Refusal(
                429,
                "too_many_failures",
                f"Too many failed authentications from this address or for this token; try again in {wait:.0f} s.",
                headers=retry_after(wait),
            )

    def failed(self, *keys: str) -> None:
        """Count one failed attempt for each of ``keys``."""
        for key in keys:
            self.failures.take(key)
