"""Throughput of the constituency expert in a real Redis pipeline, against two baselines.

In the same run, one after the other on the same redis-server and the same events:
a pass-through expert (receive, send, acknowledge), the constituency expert with the
national-scale registry of ``constituency_data.py`` loaded, and IntelMQ's core sieve
expert tagging the same events with 1,000 networks written as sieve rules. Each bot runs
as its own process, as intelmqctl would start it; the clock runs from pushing the events
into its source queue until all of them are in its destination queues.

    python benchmarks/constituency_pipeline.py [--events 10000] [--rounds 10] [--small-registry] [--skip-sieve]

The sieve side needs IntelMQ's optional sieve dependencies: ``pip install textX pendulum``.
"""

import argparse
import csv
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.constituency_data import generate  # noqa: E402
from intelmq_nsm.testbed.pipeline import VENV_BIN, Pipeline, RedisServer, wait_for  # noqa: E402

SIEVE_RULES = 1_000


def sieve_file(path: Path, networks) -> None:
    rules = [
        f"if source.ip << '{network}' {{\n"
        f"  add! constituency = 'ibd'\n  add! extra.nsm.organisation_id = '{organisation}'\n  path 'ibd'\n}}\n"
        for network, organisation in networks
    ]
    path.write_text("".join(rules), encoding="utf-8")


def runtime(registry: Path, sieve: Path) -> dict:
    def queues(name):
        return {"_default": [f"{name}-out-default"], "ibd": [f"{name}-out-ibd"]}

    return {
        "global": {"logging_level": "INFO"},
        "passthrough": {
            "module": "intelmq.bots.experts.passthrough",
            "parameters": {"destination_queues": {"_default": ["passthrough-out-default"]}},
        },
        "constituency": {
            "module": "intelmq.bots.experts.nsm.constituency",
            "parameters": {"database": str(registry), "destination_queues": queues("constituency")},
        },
        "sieve": {
            "module": "intelmq.bots.experts.sieve.expert",
            "parameters": {"file": str(sieve), "destination_queues": queues("sieve")},
        },
    }


PROGRAMS = {
    "constituency": "intelmq.bots.experts.nsm.constituency",
    "sieve": "intelmq.bots.experts.sieve.expert",
}


def start_bot(pipeline: Pipeline, bot_id: str) -> tuple:
    """Start ``bot_id`` as its own process and wait for its init: ``(process, seconds)``."""
    log = pipeline.log_dir / f"{bot_id}.log"
    log.unlink(missing_ok=True)
    if bot_id == "passthrough":
        argv = [sys.executable, str(ROOT / "benchmarks" / "passthrough_expert.py"), bot_id]
    else:
        argv = [str(VENV_BIN / PROGRAMS[bot_id]), bot_id]
    started = time.perf_counter()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen(argv, env=pipeline.env, cwd=pipeline.root, **quiet)
    wait_for(lambda: log.exists() and "Bot initialization completed." in log.read_text(), timeout=600,
             what=f"{bot_id} to start")  # fmt: skip
    return process, time.perf_counter() - started


def measure(pipeline: Pipeline, bot_id: str, events: list, process) -> dict:
    """Push the events into the (idle, running) bot's queue; time until all are passed on.
    Also the bot's CPU time meanwhile (less disturbed by other processes than the clock)."""
    client = pipeline.redis.client()
    paths = pipeline.runtime[bot_id]["parameters"]["destination_queues"]
    outputs = [queue for queues in paths.values() for queue in queues]
    for queue in outputs:
        client.delete(queue)
    cpu = psutil.Process(process.pid).cpu_times()
    start = time.perf_counter()
    batch = client.pipeline(transaction=False)
    for event in events:
        batch.lpush(pipeline.queue(bot_id), json.dumps(event))
    batch.execute()
    wait_for(lambda: sum(client.llen(q) for q in outputs) >= len(events), timeout=1800, interval=0.01,
             what=f"{bot_id} to pass on {len(events)} events")  # fmt: skip
    seconds = time.perf_counter() - start
    used = psutil.Process(process.pid).cpu_times()
    cpu_seconds = used.user + used.system - cpu.user - cpu.system
    return {"rate": len(events) / seconds, "seconds": seconds, "cpu_us": cpu_seconds / len(events) * 1e6,
            "queues": {q: client.llen(q) for q in outputs}, "sample": client.lindex(outputs[-1], 0)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nsm-constituency-bench"))
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--sieve-events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--small-registry", action="store_true",
        help="load only the 1,000 networks the events hit instead of the national-scale registry",
    )  # fmt: skip
    parser.add_argument("--skip-sieve", action="store_true")
    args = parser.parse_args()
    # Stopped from outside, still stop the bots and redis-server it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    generate(args.workdir)
    registry = args.workdir / "registry.csv"
    rng = random.Random(11)
    owners = {}
    with open(registry, encoding="utf-8") as stream:
        for row in csv.reader(stream):
            if row[0] == "network" and ":" not in row[1]:
                owners[row[1]] = row[2]
            if len(owners) >= 200_000:
                break
    # The sieve's 1,000 networks come from the registry, so both bots tag the same way.
    chosen = rng.sample(sorted(owners), SIEVE_RULES)
    event = {"__type": "Event", "classification.type": "vulnerable-system"}
    events = [{**event, "source.ip": rng.choice(chosen).partition("/")[0]} for _ in range(args.events)]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sieve = tmp / "rules.sieve"
        sieve_file(sieve, [(n, owners[n]) for n in chosen])
        if args.small_registry:
            # The same tagging from a registry of only these networks: what the registry's
            # size itself costs per event.
            registry = tmp / "small.csv"
            rows = "".join(f"network,{n},{owners[n]},benchmark-import\n" for n in chosen)
            registry.write_text("type,value,organisation,source\n" + rows, encoding="utf-8")
        server = RedisServer(tmp / "redis").start()
        try:
            bots = runtime(registry, sieve)
            if args.skip_sieve:
                del bots["sieve"]
            pipeline = Pipeline(tmp / "intelmq", server, bots)
            pipeline.env["PYTHONPATH"] = str(ROOT)  # the bots run this checkout's code
            pipeline.setup()
            # All three run at once but only one has work at a time: the others wait on
            # their empty queues. Short, alternating batches spread the machine's noise.
            processes = {}
            try:
                for bot_id in [b for b in ("passthrough", "constituency", "sieve") if b in bots]:
                    processes[bot_id], seconds = start_bot(pipeline, bot_id)
                    print(f"{bot_id} started in {seconds:.1f} s", flush=True)
                results = {name: [] for name in processes}
                for round_number in range(args.rounds):
                    order = list(processes)
                    if round_number % 2:
                        order.reverse()
                    for bot_id in order:
                        batch = events if bot_id != "sieve" else events[: args.sieve_events]
                        result = measure(pipeline, bot_id, batch, processes[bot_id])
                        results[bot_id].append(result)
                        print(f"round {round_number + 1} {bot_id}: {result['rate']:.0f} events/s "
                              f"({len(batch)} in {result['seconds']:.1f} s), CPU {result['cpu_us']:.0f} µs/event",
                              flush=True)  # fmt: skip
                rss = {b: psutil.Process(p.pid).memory_info().rss / 2**20 for b, p in processes.items()}
            finally:
                for process in processes.values():
                    process.send_signal(signal.SIGTERM)
                for process in processes.values():
                    process.wait(timeout=60)
        finally:
            server.stop()
    median = {name: statistics.median(r["rate"] for r in rs) for name, rs in results.items()}
    # Paired: each round's two runs follow each other, so a slow spell of the machine
    # weighs on both; the median of the per-round ratios is the figure to compare.
    ratios = [c["rate"] / p["rate"] for c, p in zip(results["constituency"], results["passthrough"])]
    cpu = {name: statistics.median(r["cpu_us"] for r in rs) for name, rs in results.items()}
    print(f"median rates: { {k: round(v) for k, v in median.items()} }")
    print(f"median CPU µs per event: { {k: round(v) for k, v in cpu.items()} }")
    print(f"RSS MB after the runs: { {k: round(v) for k, v in rss.items()} }")
    print(f"constituency / pass-through: median of the per-round ratios {statistics.median(ratios):.2f} "
          f"(of the median rates {median['constituency'] / median['passthrough']:.2f}; by CPU time per event "
          f"{cpu['passthrough'] / cpu['constituency']:.2f}), per round {[round(r, 2) for r in ratios]}")  # fmt: skip
    if "sieve" in median:
        print(f"sieve (1,000 rules) / constituency: {median['sieve'] / median['constituency']:.3f}")
    print(f"a tagged event: {results['constituency'][-1]['sample']}")


if __name__ == "__main__":
    main()
