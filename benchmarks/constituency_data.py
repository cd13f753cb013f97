"""Synthetic registry data for the constituency benchmarks (never sent anywhere).

1,000,000 IPv4 and 200,000 IPv6 networks spread over the whole address space (the
documentation ranges are far too small), 200,000 domains under ``.test`` and 10,000 ASNs,
owned by the 342 built-in municipalities, written as one CSV file, one asset per row.
"""

import random
import socket
from pathlib import Path

from intelmq_nsm.constituency import builtin_municipalities

SIZES = {"ipv4": 1_000_000, "ipv6": 200_000, "domains": 200_000, "asns": 10_000}


def ipv4_networks(rng, count):
    seen = set()
    while len(seen) < count:
        length = rng.choice((16, 20, 22, 23, 24, 24, 24, 25, 26, 27, 28, 29, 30, 32))
        start = rng.getrandbits(32) >> (32 - length) << (32 - length)
        seen.add((start, length))
    return [f"{socket.inet_ntop(socket.AF_INET, s.to_bytes(4, 'big'))}/{n}" for s, n in seen]


def ipv6_networks(rng, count):
    seen = set()
    while len(seen) < count:
        length = rng.choice((32, 40, 44, 48, 48, 48, 56, 64))
        start = (0x2000 << 112 | rng.getrandbits(125)) >> (128 - length) << (128 - length)
        seen.add((start, length))
    return [f"{socket.inet_ntop(socket.AF_INET6, s.to_bytes(16, 'big'))}/{n}" for s, n in seen]


def domains(rng, count):
    seen = set()
    while len(seen) < count:
        base = f"d{rng.getrandbits(40):x}.test"
        seen.add(base if rng.random() < 0.7 else f"www{rng.randrange(100)}.{base}")
    return sorted(seen)


def generate(directory: Path, seed: int = 1) -> dict:
    """Write ``registry.csv`` (if not there yet) and return the generated values for lookups."""
    rng = random.Random(seed)
    codes = [code for code, _ in builtin_municipalities()]
    data = {
        "ipv4": ipv4_networks(rng, SIZES["ipv4"]),
        "ipv6": ipv6_networks(rng, SIZES["ipv6"]),
        "domains": domains(rng, SIZES["domains"]),
        "asns": rng.sample(range(1, 4_200_000_000), SIZES["asns"]),
    }
    path = directory / "registry.csv"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        pick = rng.choice
        with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as out:
            out.write("type,value,organisation,source\n")
            for kind, key in (("network", "ipv4"), ("network", "ipv6"), ("domain", "domains"), ("asn", "asns")):
                out.writelines(f"{kind},{value},{pick(codes)},benchmark-import\n" for value in data[key])
        path.with_suffix(".tmp").replace(path)
    return data
