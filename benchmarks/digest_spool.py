"""Digest output throughput: events/s into the spool against IntelMQ's core file output, and
digests/s delivered to a local HTTP endpoint.

Every digest output keeps its finding ledger: by default in the spool's SQLite file (per
event one committed arrival, filed into the ledger by the delivery thread), and in one more
output on a private PostgreSQL server (per event the ledger, then the spool; on by default
when Debian's server programs are installed, ``--no-postgresql`` to skip it).

Runs a real pipeline (private redis-server, intelmqctl) as in the tests. Each output gets the
same N events in its queue, one output at a time so that each has the machine to itself;
the clock runs from the push until the output acknowledged the last message (both outputs
acknowledge only after writing), then the script checks the file lines and spool rows. The
CPU figures run on until the ledger holds every event (the arrivals are filed), so they
include the work the acknowledgement no longer waits for.
Run as an unprivileged user with the test venv, e.g.
``.venv/bin/python benchmarks/digest_spool.py --events 10000``.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intelmq_nsm.digest import channels
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.pipeline import Pipeline, RedisServer, wait_for
from intelmq_nsm.testbed.sample_events import event, municipalities, organisation
from intelmq_nsm.testbed.spools import arriving, spooled_events


def file_lines(path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def push_all(pipeline, bot_id, messages) -> None:
    client = pipeline.redis.client()
    with client.pipeline(transaction=False) as batch:
        for message in messages:
            batch.lpush(pipeline.queue(bot_id), message)
        batch.execute()


def drained(pipeline, bot_id) -> bool:
    """The bot acknowledged everything: its queue and its internal queue are empty."""
    client = pipeline.redis.client()
    queue = pipeline.queue(bot_id)
    return client.llen(queue) == 0 and client.llen(f"{queue}-internal") == 0


def spool_counters(path: Path) -> tuple:
    """A digest output's findings in its spool, and its arrivals not yet filed."""
    return (lambda: spooled_events(path)), (lambda: arriving(path))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(pipeline, bot_id, messages, written, expected, arriving=None) -> tuple:
    """Seconds from the push until the bot acknowledged the last message (which both outputs
    do only after writing it), and the bot's CPU seconds until then and, for a digest
    output, until its delivery thread filed every arrival into the ledger (the work the
    acknowledgement no longer waits for); then check that everything was written."""
    pid = pipeline.pid(bot_id)
    cpu = cpu_seconds(pid)
    start = time.monotonic()
    push_all(pipeline, bot_id, messages)
    wait_for(lambda: drained(pipeline, bot_id), timeout=600, interval=0.02, what=f"{bot_id} to finish")
    seconds = time.monotonic() - start
    if written() != expected:
        raise SystemExit(f"{bot_id} wrote {written()} events, expected {expected}.")
    if arriving is not None:
        wait_for(lambda: arriving() == 0, timeout=600, interval=0.05, what=f"{bot_id} to file its arrivals")
        if written() != expected:
            raise SystemExit(f"{bot_id} filed {written()} events, expected {expected}.")
    return seconds, cpu_seconds(pid) - cpu


def intake(work: Path, count: int, rounds: int, postgres_url=None) -> dict:
    import json

    orgs = [organisation(code, name) for code, name in municipalities()]
    redis_server = RedisServer(work / "redis").start()
    results = {"file": [], "spool NORMAL": [], "spool FULL": []}
    if postgres_url:
        results["spool+PG ledger"] = []
    cpu_us = {name: [] for name in results}
    try:
        runtime = {
            "core-file": {"module": "intelmq.bots.outputs.file.output", "parameters": {"file": str(work / "f.jsonl")}},
        }
        for sync in ("NORMAL", "FULL"):
            runtime[f"digest-{sync.lower()}"] = {
                "module": "intelmq.bots.outputs.nsm.digest",
                "parameters": {
                    "channel": "file",
                    "file_directory": str(work / "digests"),
                    "constituency": "ibd",
                    "spool_file": str(work / f"{sync}.sqlite"),
                    "spool_synchronous": sync,
                    "max_age": 86400,
                    "max_events": 10**9,
                },
            }
        if postgres_url:
            runtime["digest-pg"] = json.loads(json.dumps(runtime["digest-normal"]))
            runtime["digest-pg"]["parameters"].update(spool_file=str(work / "PG.sqlite"), ledger_url=postgres_url)
        pipeline = Pipeline(work / "intelmq", redis_server, runtime).setup()
        # The bots log every message at DEBUG in the test harness; measure at INFO like production.
        pipeline.runtime["global"]["logging_level"] = "INFO"
        pipeline.write_runtime()
        pipeline.start()
        try:
            for r in range(rounds):
                base = r * count
                messages = [json.dumps(event(base + n, [orgs[(base + n) % len(orgs)]])) for n in range(count)]
                outputs = {
                    "file": ("core-file", lambda: file_lines(work / "f.jsonl"), None),
                    "spool NORMAL": ("digest-normal", *spool_counters(work / "NORMAL.sqlite")),
                    "spool FULL": ("digest-full", *spool_counters(work / "FULL.sqlite")),
                }
                if postgres_url:
                    outputs["spool+PG ledger"] = ("digest-pg", *spool_counters(work / "PG.sqlite"))
                # Alternate the order per round: the machine's other load hits all outputs alike.
                order = list(outputs.items()) if r % 2 == 0 else list(outputs.items())[::-1]
                for name, (bot_id, written, filing) in order:
                    seconds, cpu = timed(pipeline, bot_id, messages, written, base + count, filing)
                    results[name].append(count / seconds)
                    cpu_us[name].append(cpu / count * 1e6)
                    print(
                        f"round {r + 1}: {name:<13} {count / seconds:6.0f} events/s,"
                        f" {cpu / count * 1e6:5.0f} us CPU per event",
                        flush=True,
                    )
        finally:
            pipeline.close()
    finally:
        redis_server.stop()
    return results, cpu_us


def delivery(work: Path, digests: int, per_digest: int) -> float:
    orgs = [organisation(code, name) for code, name in municipalities()]
    spool = DigestSpool(work / "deliver.sqlite")
    for n in range(digests * per_digest):
        spool.add(findings_of(event(n, [orgs[n % len(orgs)]])), now=0)
    logger = logging.getLogger("benchmark")
    with Receiver() as receiver:
        run = Deliverer(spool, channels.RestChannel(receiver.url, "secret"), logger, max_events=per_digest, max_age=0)
        start = time.monotonic()
        result = run.run_once(now=1)
        seconds = time.monotonic() - start
        assert result["delivered"] == len(receiver.accepted), result
    print(
        f"delivered {result['delivered']} digests ({per_digest} findings each, formed in the same run)"
        f" in {seconds:.2f} s: {result['delivered'] / seconds:.0f} digests/s",
        flush=True,
    )
    return result["delivered"] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--digests", type=int, default=1000)
    parser.add_argument("--per-digest", type=int, default=10)
    parser.add_argument("--no-postgresql", action="store_true", help="skip the output with a PostgreSQL ledger")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nsm-bench-") as tmp:
        work = Path(tmp)
        server = None
        if not args.no_postgresql:
            from intelmq_nsm.testbed.postgres import PostgresServer

            server = PostgresServer().start()
        try:
            url = server.create_database("ledger") if server else None
            results, cpu_us = intake(work, args.events, args.rounds, url)
        finally:
            if server:
                server.close()
        for name in [n for n in results if n != "file"]:
            ratios = sorted(s / f for s, f in zip(results[name], results["file"]))
            print(
                f"{name}: median {statistics.median(results[name]):.0f} events/s; per round vs core file output"
                f" {', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f} x),"
                " to the acknowledgement of the last message"
            )
        print(f"core file output: median {statistics.median(results['file']):.0f} events/s")
        file_cpu = statistics.median(cpu_us["file"])
        for name, values in cpu_us.items():
            median = statistics.median(values)
            print(
                f"{name}: median {median:.0f} us CPU per event = {1e6 / median:.0f} events/s per core"
                f" = {file_cpu / median:.2f} x core file output (CPU until the ledger holds every event)"
            )
        delivery(work, args.digests, args.per_digest)


if __name__ == "__main__":
    main()
