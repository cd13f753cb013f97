"""Load time, memory and lookup rate of the constituency registry at national scale.

Registry: 1,000,000 IPv4 and 200,000 IPv6 networks, 200,000 domains, 10,000 ASNs (see
``constituency_data.py``), one CSV file. Load time and peak RSS are measured in a fresh
process each; lookups on one core in this process. py-radix loading the same networks is
measured alongside, for the record of why the index is a range table.

    python benchmarks/constituency_registry.py [--workdir DIR]
"""

import argparse
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.constituency_data import SIZES, generate

LOAD = """
import json, resource, sys, time
from intelmq_nsm.constituency import load_registry
start = time.perf_counter()
registry = load_registry([sys.argv[1]])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "stats": registry.index.stats()}))
"""

RADIX = """
import csv, json, resource, sys, time
import radix
networks = [row[1] for row in csv.reader(open(sys.argv[1])) if row[0] == "network"]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
tree = radix.Radix()
for network in networks:
    tree.add(network).data["o"] = "GM0363"
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base}))
"""


def in_fresh_process(code: str, *args) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def rate(function, values) -> float:
    start = time.perf_counter()
    for value in values:
        function(value)
    return len(values) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nsm-constituency-bench"))
    parser.add_argument("--skip-radix", action="store_true")
    args = parser.parse_args()
    data = generate(args.workdir)
    csv_file = str(args.workdir / "registry.csv")

    loads = [in_fresh_process(LOAD, csv_file) for _ in range(2)]
    best = min(loads, key=lambda r: r["seconds"])
    print(f"registry: {SIZES}")
    print(f"load + index: {[round(r['seconds'], 2) for r in loads]} s, peak RSS {best['rss_mb']:.0f} MB")
    print(f"index: {best['stats']}")
    if not args.skip_radix:
        radix = in_fresh_process(RADIX, csv_file)
        print(f"py-radix, the same 1.2M networks alone: {radix['seconds']:.2f} s, +{radix['rss_mb']:.0f} MB")

    from intelmq_nsm.constituency import load_registry

    registry = load_registry([csv_file])
    index = registry.index
    rng = random.Random(7)
    registered = [n.partition("/")[0] for n in rng.sample(data["ipv4"], 250_000)]
    ipv4 = registered + [socket.inet_ntoa(rng.getrandbits(32).to_bytes(4, "big")) for _ in range(250_000)]
    rng.shuffle(ipv4)
    ipv6 = [n.partition("/")[0] for n in rng.sample(data["ipv6"], 100_000)]
    domains = [f"www.{d}" for d in rng.sample(data["domains"], 150_000)]
    domains += [f"host{i}.unknown{i % 997}.test" for i in range(150_000)]
    rng.shuffle(domains)
    events = [[("source.fqdn", d), ("source.ip", ip)] for d, ip in zip(domains[:100_000], ipv4[:100_000])]

    def forget_made_assets():
        made = registry.networks.made
        made[:] = [None] * len(made)

    def ip_with_asset(ip):
        return index.asset_of(index.lookup_ip(ip))

    # A lookup finds the network's row; the Asset of a row is made the first time it
    # matches. Measured apart: cold (every network new), and with the Assets made.
    results = {
        "IPv4 lookups/s (half registered, half random)": rate(index.lookup_ip, ipv4),
        "IPv6 lookups/s": rate(index.lookup_ip, ipv6),
        "domain lookups/s (half registered)": rate(index.lookup_domain, domains),
    }
    forget_made_assets()
    results["full decisions/s (fqdn + ip per event, every network new)"] = rate(index.decide, events)
    forget_made_assets()
    results["IPv4 lookups/s with the Asset, every network new"] = rate(ip_with_asset, ipv4)
    results["IPv4 lookups/s with the Asset, Assets made"] = rate(ip_with_asset, ipv4)
    results["full decisions/s (fqdn + ip per event, Assets made)"] = rate(index.decide, events)
    for name, value in results.items():
        print(f"{name}: {value:,.0f}")
    matched = sum(1 for ip in ipv4[:10_000] if index.lookup_ip(ip) is not None)
    print(f"(sanity: {matched} of the first 10,000 IPv4 lookups matched)")


if __name__ == "__main__":
    main()
