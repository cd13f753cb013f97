"""Routing decisions per second, by the kinds of value an event matches, under each owners rule.

On the national-scale registry of ``constituency_data.py``, on one core, per second of
the process's CPU time: events with an address only, with a name only (both registered),
and with a registered name and a registered address (two owners). With
``--compare OTHER``, the same measurement runs alternately in this checkout and in
another one (an earlier version, say), each in a fresh process, so that both face the
same machine in the same run; a checkout whose ``decide`` has no ``owners`` parameter is measured with its one rule.

    python benchmarks/constituency_decide.py [--rounds 3] [--compare /path/to/other/checkout]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = """
import inspect, json, random, sys, time
from benchmarks.constituency_data import generate
from intelmq_nsm.constituency import load_registry

data = generate(__import__("pathlib").Path(sys.argv[1]))
index = load_registry([sys.argv[1] + "/registry.csv"]).index
rng = random.Random(7)
ips = [n.partition("/")[0] for n in rng.sample(data["ipv4"], 100_000)]
names = [f"www.{d}" for d in rng.sample(data["domains"], 100_000)]
events = {
    "ip only": [[("source.ip", ip)] for ip in ips],
    "fqdn only": [[("source.fqdn", name)] for name in names],
    "fqdn + ip": [[("source.fqdn", name), ("source.ip", ip)] for name, ip in zip(names, ips)],
}
rules = ["all", "most-specific"] if "owners" in inspect.signature(index.decide).parameters else [None]
decide = index.decide
for batch in events.values():  # make the Assets of the matched networks once, as a running bot has
    for values in batch:
        decide(values)
results = {}
for kind, batch in events.items():
    for rule in rules:
        keywords = {"owners": rule} if rule else {}
        start = time.process_time()  # CPU time: less disturbed by other processes than the clock
        for values in batch:
            decide(values, **keywords)
        label = f"{kind}, owners {rule or 'most-specific (the only rule)'}"
        results[label] = len(batch) / (time.process_time() - start)
print(json.dumps(results))
"""


def measure(checkout: Path, workdir: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(workdir)], env=env, cwd=checkout, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"measuring {checkout} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nsm-constituency-bench"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another checkout, measured alternately with this one")
    args = parser.parse_args()
    checkouts = {"this": ROOT}
    if args.compare:
        checkouts["other"] = args.compare.resolve()
    runs = {name: [] for name in checkouts}
    for round_number in range(args.rounds):
        order = list(checkouts) if round_number % 2 == 0 else list(reversed(checkouts))
        for name in order:
            result = measure(checkouts[name], args.workdir)
            runs[name].append(result)
            print(f"round {round_number + 1} {name}: " + ", ".join(f"{k}: {v:,.0f}/s" for k, v in result.items()),
                  flush=True)  # fmt: skip
    for name, results in runs.items():
        print(f"median decisions/s, {name} ({checkouts[name]}):")
        for key in results[0]:
            print(f"  {key}: {statistics.median(r[key] for r in results):,.0f}")


if __name__ == "__main__":
    main()
