"""What became of a case's findings, as the intake tells the researchers who reported it.

The figures come from the digest outputs' finding ledgers (each output that notifies keeps
its own: its spool file, or a PostgreSQL URL); which constituencies let researchers see
their organisations' names comes from the constituency registry (``share_names``), read
again when one of its files changes. Blocking; the web stack runs it in its worker pool.
"""

import threading
from pathlib import Path
from typing import Optional

from intelmq_nsm.constituency import load_registry, update
from intelmq_nsm.digest.ledger import Ledger, sqlite_path, sqlite_url
from intelmq_nsm.digest.ledger.chart import case_chart
from intelmq_nsm.digest.ledger.outcome import case_outcome


def ledger_url(spec: str) -> str:
    """A ledger given as a SQLite path or a ``sqlite:///``/``postgresql://`` URL → its URL."""
    spec = str(spec).strip()
    return spec if "://" in spec else sqlite_url(Path(spec).resolve())


class CaseOutcomes:
    """The ledgers ``ledgers`` (paths or URLs, every ledger name each holds) and the registry."""

    def __init__(self, ledgers, registry=None, builtin_municipalities: bool = True):
        ledgers = [ledgers] if isinstance(ledgers, str) else list(ledgers or [])
        if not ledgers:
            raise ValueError("CaseOutcomes needs at least one ledger (a spool file or a ledger URL).")
        self.urls = [ledger_url(spec) for spec in ledgers]
        self._open = {}
        self.registry = [registry] if isinstance(registry, str) else list(registry or [])
        self.builtin = builtin_municipalities
        self._shared, self._signature = frozenset(), None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for ledger in self._open.values():
                ledger.close()
            self._open.clear()

    @property
    def ledgers(self) -> list:
        """The ledgers there are now: a SQLite file its digest output has not made yet is
        left out (and not made here), and opened once it exists."""
        with self._lock:
            for url in self.urls:
                if url in self._open:
                    continue
                path = sqlite_path(url)
                if path is not None and not Path(path).exists():
                    continue
                self._open[url] = Ledger(url, name="")
            return [self._open[url] for url in self.urls if url in self._open]

    def shared_constituencies(self) -> frozenset:
        """The constituencies whose registry entry has ``share_names: true``."""
        if not self.registry:
            return frozenset()
        # The expert's reload rule: a file removed meanwhile counts as a change, not an error.
        signature = update.signature(self.registry)
        with self._lock:
            if signature != self._signature:
                registry = load_registry(self.registry, include_builtin=self.builtin)
                self._shared = frozenset(k for k, c in registry.constituencies.items() if c.share_names)
                self._signature = signature
            return self._shared

    def outcome(self, case_id: str, now: Optional[float] = None) -> Optional[dict]:
        shared = self.shared_constituencies()
        return case_outcome(self.ledgers, case_id, share_names=shared.__contains__, now=now, every_ledger=True)

    @staticmethod
    def empty(case_id: str) -> dict:
        """The figures of a case no digest output has recorded a finding of (yet)."""
        return {
            "case_id": case_id,
            "findings": 0,
            "notified": 0,
            "forwarded": 0,
            "open": 0,
            "fixed_verified": 0,
            "by_state": {},
            "days_to_fix": {"count": 0, "median": None, "p90": None},
            "constituencies": [],
            "daily": [],
        }

    @staticmethod
    def chart(outcome: dict) -> str:
        return case_chart(outcome["case_id"], outcome["daily"])
