"""Load time of a hub's registry made of its CERTs' claims files.

Ten CERTs' claims files (JSON, as ``intelmq-nsm constituency export --claims`` writes them)
of 10,000 networks each, loaded once as the hub's constituency expert loads them (under its
claims policy), against the same 100,000 networks as one plain registry document and as
one bulk CSV file. Each load runs in a fresh process; the best of ``--rounds`` is kept.

    python benchmarks/claims_load.py [--certs 10] [--networks 10000] [--rounds 3] [--workdir DIR]
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.constituency_data import ipv4_networks
from intelmq_nsm.constituency.claims import ClaimsPolicy, ClaimsSource, claims_file
from intelmq_nsm.constituency.export import claims_json

LOAD = """
import json, pickle, sys, time
from intelmq_nsm.constituency import load_registry
policy = pickle.loads(bytes.fromhex(sys.argv[2])) if len(sys.argv) > 2 else None
start = time.perf_counter()
registry = load_registry([sys.argv[1]], claims=policy)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "networks": registry.stats()["networks"], "issues": len(registry.issues)}))
"""


def write(folder: Path, certs: int, per_cert: int) -> dict:
    """The three layouts of the same networks: ``{name: (directory, policy or None)}``."""
    networks = ipv4_networks(random.Random(7), certs * per_cert)
    keys = [f"cert{i}" for i in range(certs)]
    hub, document, bulk = folder / "hub", folder / "document", folder / "csv"
    for directory in (hub, document, bulk):
        directory.mkdir()
    sources = []
    for number, key in enumerate(keys):
        mine = networks[number * per_cert : (number + 1) * per_cert]
        claims = {
            "claims": {"constituency": key, "exported_at": "2026-12-07T08:00:00+00:00", "assets": len(mine),
                       "exclusions": 0},
            "version": f"{key}-bench",
            "constituencies": [{"key": key, "name": key.upper(), "share_names": False}],
            "assets": [{"network": n} for n in mine],
            "exclusions": [],
        }  # fmt: skip
        path = claims_file(hub, key, f"https://{key}.example/claims.json")
        path.write_text(claims_json(claims), encoding="utf-8")
        sources.append(ClaimsSource(key, f"https://{key}.example/claims.json", path))
    plain = {
        "constituencies": [{"key": key} for key in keys],
        "organisations": [{"id": f"org-{key}", "name": key, "constituency": key} for key in keys],
        "assets": [{"network": n, "organisation": f"org-{keys[i // per_cert]}"} for i, n in enumerate(networks)],
    }
    (document / "registry.json").write_text(json.dumps(plain), encoding="utf-8")
    (bulk / "organisations.json").write_text(json.dumps({k: plain[k] for k in ("constituencies", "organisations")}))
    rows = [f"network,{n},org-{keys[i // per_cert]}" for i, n in enumerate(networks)]
    (bulk / "networks.csv").write_text("type,value,organisation\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return {"claims files (hub)": (hub, ClaimsPolicy(sources)), "one JSON document": (document, None),
            "one CSV file": (bulk, None)}  # fmt: skip


def load(directory: Path, policy) -> dict:
    import pickle

    argv = [sys.executable, "-c", LOAD, str(directory)] + ([pickle.dumps(policy).hex()] if policy else [])
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=10)
    parser.add_argument("--networks", type=int, default=10_000, help="networks per CERT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        started = time.perf_counter()
        layouts = write(Path(folder), args.certs, args.networks)
        print(f"{args.certs} claims files of {args.networks} networks written in {time.perf_counter() - started:.1f} s")
        for name, (directory, policy) in layouts.items():
            results = [load(directory, policy) for _ in range(args.rounds)]
            best = min(r["seconds"] for r in results)
            rounds = ", ".join(f"{r['seconds']:.2f}" for r in results)
            print(
                f"{name:>20}: {results[0]['networks']} networks, best {best:.2f} s ({rounds}), "
                f"{results[0]['networks'] / best:,.0f} networks/s, {results[0]['issues']} warnings"
            )


if __name__ == "__main__":
    main()
