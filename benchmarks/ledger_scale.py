"""The finding ledger at scale: per-event cost at 10,000 and at 1,000,000 findings, ``stats``
over a million, and the disk each finding takes.

The ledger is filled in bulk with findings as a year of notifications leaves them (342
municipalities, 200 cases; every finding notified once, so one history row of its first
sighting, one of its notification and one digest row each; a third of them verified fixed
with a third history row), then the output's own path is timed: ``Ledger.observe`` for one
event in its own transaction, for new findings and for rescans of known ones (which read,
lock and update the record). Run as an unprivileged user with the test venv, e.g.
``.venv/bin/python benchmarks/ledger_scale.py --backend sqlite``.
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intelmq_nsm.digest.ledger import Ledger, Observation
from intelmq_nsm.digest.ledger.stats import stats

NAME = "ibd-digest-mail"
DAY = 86400.0
T0 = 1_760_000_000.0
ORGS = [f"GM{n:04d}" for n in range(1, 343)]
STATES = ["notified"] * 6 + ["fixed-verified"] * 3 + ["reopened"]


def rows(start: int, count: int, rng: random.Random):
    """Findings ``start`` … ``start + count - 1`` with their history and digest rows."""
    found, changes, digests = [], [], []
    for n in range(start, start + count):
        fid, org = f"nf1-{n:032x}", ORGS[n % len(ORGS)]
        first = T0 + rng.uniform(0, 300) * DAY
        notified = first + 600
        state = STATES[n % len(STATES)]
        fixed = notified + rng.expovariate(1 / 20) * DAY if state == "fixed-verified" else None
        found.append({
            "ledger": NAME, "finding_id": fid, "org_id": org, "org_name": f"Gemeente {org}", "constituency": "ibd",
            "case_id": f"DIVD-2025-{n % 200:05d}", "target": f"2001:db8:{n // 65536:x}::{n % 65536:x}:443",
            "state": state, "first_seen": first, "last_seen": fixed or notified, "times_seen": 2,
            "first_notified": notified, "last_notified": notified, "notifications": 1, "reminders": 0,
            "reopened": int(state == "reopened"), "fixed_at": fixed, "pending": None,
            "last_event": f"{n:064x}", "last_kind": None,
        })  # fmt: skip
        common = {"ledger": NAME, "finding_id": fid, "org_id": org, "source": "scan", "reference": ""}
        changes.append({**common, "at": first, "old_state": None, "state": "open", "note": "First seen vulnerable."})
        changes.append({**common, "at": notified, "old_state": "open", "state": "notified", "note": "Notified."})
        if fixed:
            changes.append(
                {**common, "at": fixed, "old_state": "notified", "state": "fixed-verified", "note": "Fixed."}
            )
        digests.append({
            "ledger": NAME, "digest_id": f"{n // 20:064x}", "finding_id": fid, "org_id": org, "kind": "new",
            "delivered_at": notified,
        })  # fmt: skip
    return found, changes, digests


def fill(ledger: Ledger, upto: int, have: int, batch: int = 20000) -> None:
    rng = random.Random(have)
    start = time.monotonic()
    for first in range(have, upto, batch):
        found, changes, digests = rows(first, min(batch, upto - first), rng)
        ledger.insert_rows(found, changes, digests)
    print(f"filled {have:,} → {upto:,} findings in {time.monotonic() - start:.1f} s", flush=True)


def per_event(ledger: Ledger, size: int, samples: int, rng: random.Random) -> dict:
    """Microseconds per event (one observation, one transaction): new findings, and rescans
    of known ones, at the ledger's present size."""
    result = {}
    now = T0 + 400 * DAY
    new = [Observation(f"nf1-new-{size}-{i}", ORGS[i % 342], f"new-{size}-{i}") for i in range(samples)]
    known = [rng.randrange(size) for _ in range(samples)]
    rescans = [Observation(f"nf1-{n:032x}", ORGS[n % 342], f"rescan-{size}-{i}") for i, n in enumerate(known)]
    for label, batch in (("new", new), ("rescan", rescans)):
        times = []
        for observation in batch:
            start = time.perf_counter()
            ledger.observe([observation], now=now)
            times.append(time.perf_counter() - start)
        result[label] = statistics.median(times) * 1e6
        result[f"{label} mean"] = statistics.fmean(times) * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sizes", default="10000,1000000", help="ledger sizes to measure at")
    parser.add_argument("--samples", type=int, default=2000, help="events timed per size and kind")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="nsm-ledger-") as tmp:
        server = None
        if args.backend == "postgresql":
            from intelmq_nsm.testbed.postgres import PostgresServer

            server = PostgresServer().start()
            url = server.create_database("ledger")
        else:
            url = f"sqlite:///{tmp}/spool.sqlite"
        try:
            ledger = Ledger(url, name=NAME)
            have = 0
            for size in sizes:
                fill(ledger, size, have)
                have = size
                if server:
                    with ledger.engine.connect() as conn:
                        conn.exec_driver_sql("ANALYZE")
                timing = per_event(ledger, size, args.samples, rng)
                have += args.samples  # the new findings just observed
                print(
                    f"{args.backend} at {size:,} findings: per event (median, mean) new {timing['new']:.0f} µs,"
                    f" {timing['new mean']:.0f} µs; rescan {timing['rescan']:.0f} µs, {timing['rescan mean']:.0f} µs",
                    flush=True,
                )
            total = ledger.count()
            for attempt in (1, 2):  # the second run: with the indexes in the page cache
                start = time.monotonic()
                result = stats(ledger)
                seconds = time.monotonic() - start
                print(
                    f"stats over {total:,} findings (run {attempt}): {seconds:.2f} s ({len(result['cases'])} cases,"
                    f" {len(result['organisations'])} organisations)",
                    flush=True,
                )
            size_bytes = ledger.disk_bytes()
            print(f"disk: {size_bytes / 2**20:.0f} MiB, {size_bytes / total:.0f} bytes per finding", flush=True)
            ledger.close()
        finally:
            if server:
                server.close()


if __name__ == "__main__":
    main()
