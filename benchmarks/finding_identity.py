"""What an event's findings cost the digest output: ``findings_of`` per event (kind of abuse,
finding id, the digest's row), and an event's whole way into the spool and the ledger, this
tree against another (e.g. main's), in the same run.

Each measurement runs in a fresh process with the tree's ``intelmq_nsm`` first on the path;
the trees take turns, round after round, so that the machine's other load hits both alike.
Two sets of events, both of which every version takes: researchers' findings (the NSM
report parser's fields, a case id) and a feed's (the fields IntelMQ's core parsers write:
an infected host seen by a sinkhole from a client port, a brute-forcer, an open service,
each with ``classification.identifier``).

    .venv/bin/python benchmarks/finding_identity.py --other /path/to/main/checkout
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ORGANISATION = {"id": "GM0363", "name": "Amsterdam", "kind": "municipality", "contacts": ["ciso@amsterdam.example"]}


def researcher_event(n: int) -> dict:
    return {
        "__type": "Event",
        "feed.name": "Researcher intake",
        "feed.provider": "DIVD",
        "time.observation": "2026-06-01T10:00:00+00:00",
        "time.source": f"2026-06-01T09:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "classification.taxonomy": "vulnerable",
        "classification.type": "vulnerable-system",
        "classification.identifier": "citrix-bleed",
        "severity": "high",
        "source.ip": f"192.0.2.{n % 250 + 1}",
        "source.port": 443,
        "product.vulnerabilities": "cve-2023-4966",
        "event_description.url": "https://csirt.divd.example/cases/DIVD-2024-00012",
        "constituency": "ibd",
        "extra.nsm.case_id": "DIVD-2024-00012",
        "extra.nsm.case_title": "Citrix Bleed",
        "extra.nsm.organisations": [ORGANISATION],
        "extra.nsm.record": n,
    }


FEED_SHAPES = (
    {
        "feed.name": "Sinkhole-HTTP-Events",
        "classification.taxonomy": "malicious-code",
        "classification.type": "infected-system",
        "classification.identifier": "andromeda",
        "malware.name": "andromeda",
        "destination.ip": "203.0.113.80",
        "destination.port": 80,
    },
    {
        "feed.name": "Honeypot-Brute-Force-Events",
        "classification.taxonomy": "intrusion-attempts",
        "classification.type": "brute-force",
        "classification.identifier": "brute-force",
        "destination.ip": "203.0.113.90",
        "destination.port": 22,
    },
    {
        "feed.name": "Accessible-RDP",
        "classification.taxonomy": "vulnerable",
        "classification.type": "potentially-unwanted-accessible",
        "classification.identifier": "accessible-rdp",
    },
)


def feed_event(n: int) -> dict:
    shape = FEED_SHAPES[n % len(FEED_SHAPES)]
    return {
        "__type": "Event",
        "feed.provider": "Shadowserver",
        "time.observation": "2026-06-01T06:00:00+00:00",
        "time.source": f"2026-06-01T05:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "source.ip": f"192.0.2.{n % 250 + 1}",
        "source.port": 3389 if shape["feed.name"] == "Accessible-RDP" else 40000 + n % 20000,
        "protocol.transport": "tcp",
        "constituency": "ibd",
        "extra.nsm.organisations": [ORGANISATION],
        **shape,
    }


def measure(tree: Path, events: int) -> dict:
    """µs of CPU time per event in ``tree`` (run in a process of its own): ``findings_of``
    alone, and the digest output's whole way of an event into its spool's file with the
    ledger in it (``notify.arrive`` before the acknowledgement, then the delivery thread's
    ``notify.file_arrivals``: findings, ledger, spool)."""
    sys.path.insert(0, str(tree))
    import tempfile

    from intelmq_nsm.digest import notify
    from intelmq_nsm.digest.ledger import Ledger, sqlite_url

    # A tree from before kinds of abuse (ddd11bf) did the same job in its old home. Asked by
    # the file: an import would find the new module in the venv's own checkout instead.
    if (tree / "intelmq_nsm" / "digest" / "event_findings.py").exists():
        from intelmq_nsm.digest.event_findings import findings_of
    else:
        from intelmq_nsm.digest.findings import findings as findings_of
    from intelmq_nsm.digest.spool import DigestSpool

    result = {}
    for name, make in (("researcher", researcher_event), ("feed", feed_event)):
        batch = [make(n) for n in range(events)]
        findings_of(batch[0])  # imports, templates, caches
        # CPU time of this process: the machine's other load does not count in it.
        start = time.process_time()
        for event in batch:
            findings_of(event)
        result[name] = (time.process_time() - start) / events * 1e6
        with tempfile.TemporaryDirectory(prefix="nsm-identity-") as tmp:
            path = Path(tmp) / "spool.sqlite"
            spool, ledger = DigestSpool(path), Ledger(sqlite_url(path), name="bench")
            try:
                start = time.process_time()
                for event in batch:
                    notify.arrive(event, spool, 0.0)
                notify.file_arrivals(spool, ledger)
                result[f"{name}, into the spool"] = (time.process_time() - start) / events * 1e6
            finally:
                spool.close()
                ledger.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=False, help="another checkout to compare with (e.g. main's)")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a tree, in a child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.events)))
        return
    trees = {"this": HERE}
    if args.other:
        trees["other"] = Path(args.other).resolve()
    results = {name: {} for name in trees}
    for r in range(args.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
        for name, tree in order:
            argv = [sys.executable, __file__, "--measure", str(tree), "--events", str(args.events)]
            out = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
            for kind, value in out.items():
                results[name].setdefault(kind, []).append(value)
            print(f"round {r + 1}: {name:<5} " + ", ".join(f"{k} {v:6.1f} us" for k, v in out.items()), flush=True)
    for kind in results["this"]:
        best = {name: min(values[kind]) for name, values in results.items()}
        medians = {name: statistics.median(values[kind]) for name, values in results.items()}
        line = ", ".join(f"{name} {best[name]:.1f} us (median {medians[name]:.1f})" for name in best)
        if "other" in best:
            ratio, median_ratio = best["this"] / best["other"], medians["this"] / medians["other"]
            line += f"; this/other {ratio:.3f} (best), {median_ratio:.3f} (median)"
        print(f"{kind} events: {line}")


if __name__ == "__main__":
    main()
