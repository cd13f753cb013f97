"""The forward leg's findings/s (hub → a sectoral CERT's instance) against the single
chain's, in the same run.

The forward leg is what a finding crosses between the hub's constituency expert and the
CERT's own deduplicator (runtime-examples/forward-leg): at the hub IntelMQ's AMQP output
(a persistent message with a publisher confirm per event) to the CERT's virtual host on
the hub's RabbitMQ, beside it the forward-record output (the hub's ledger); at the CERT
IntelMQ's AMQP collector and the forwarded-event parser. Both instances run as the tests
run them (intelmq_nsm.testbed.tiers: two IntelMQ roots, each its own redis-server, a
private RabbitMQ node); the CERT's bots behind the parser are stopped, so that what the
parser sends waits in the deduplicator's queue and is counted there. N events as the
hub's expert sends them on the CERT's path go into the two queues at the hub at once; the
clock runs from the first push until all N wait at the CERT's deduplicator and the hub's
ledger holds all N.

The halves: the same leg with each organisation's side measured alone, as they run in the
deployment, each on its own machine (here each on the whole of this one in turn). The hub's
half with the CERT's instance stopped: from the first push until the AMQP output has had
all N confirmed by the node and the hub's ledger holds all N; then the CERT's half: its
collector and parser started on the N waiting in its queue, findings/s from the first to
the last at the CERT's deduplicator (so that intelmqctl's start-up is not counted).

The single chain is benchmarks/chain.py's: the example chain on one installation, from
the first report submitted to the last digest delivered (findings/s over the same N).
Rounds alternate the order, so that a change of the machine's load hits both alike.

    python benchmarks/federation_forward.py [--findings 10000] [--rounds 2]

Run it as an unprivileged user with the venv that scripts/test built.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chain import cpu_seconds, single_chain  # noqa: E402
from intelmq_nsm.testbed.pipeline import wait_for  # noqa: E402
from intelmq_nsm.testbed.rabbitmq import RabbitMQServer  # noqa: E402
from intelmq_nsm.testbed.sample_events import hub_event  # noqa: E402
from intelmq_nsm.testbed.tiers import Tiers  # noqa: E402

EXAMPLE = ROOT / "runtime-examples" / "nsm-ibd"
SNIPPETS = ROOT / "runtime-examples" / "forward-leg"
HUB_BOTS = ("ibd-forward-amqp", "ibd-forward-record")
CERT_BOTS = ("hub-collector", "hub-forwarded-parser")
#: Where the leg ends: the CERT's own chain starts here (stopped while measuring).
CERT_NEXT = "deduplicator-expert"
PUSH_BATCH = 1000


def forwarded_count(leg) -> int:
    ledger = leg.hub.ledger("ibd-forward-record")
    try:
        return ledger.count()
    finally:
        ledger.close()


def push(leg, events: list) -> None:
    """``events`` into the queues of the hub's bots on the CERT's path, at once, as the hub's
    expert would send them."""
    queues = [leg.hub.pipeline.queue(b) for b in HUB_BOTS]
    client = leg.hub.pipeline.redis.client()
    for start in range(0, len(events), PUSH_BATCH):
        batch = events[start : start + PUSH_BATCH]
        with client.pipeline(transaction=False) as pushing:
            for queue in queues:
                pushing.lpush(queue, *batch)
            pushing.execute()


def run_leg(findings: int, workdir: Path, rabbitmq) -> dict:
    leg = Tiers.forward_leg(EXAMPLE, SNIPPETS, workdir, rabbitmq, vhost=f"nsm-ibd-bench-{workdir.name}", timeout=3600)
    events = [json.dumps(hub_event(n)) for n in range(findings)]
    try:
        leg.start()
        # Only the leg runs: the CERT's chain behind the parser and the hub's in front of
        # the expert's path are idle or stopped.
        others = [b for b in leg.cert.pipeline.bot_ids if b not in CERT_BOTS]
        leg.cert.pipeline.stop(*others)
        cert_redis = leg.cert.pipeline.redis.client()
        arrived = leg.cert.pipeline.queue(CERT_NEXT)
        processes = {b: leg.hub.pipeline.pid(b) for b in HUB_BOTS} | {b: leg.cert.pipeline.pid(b) for b in CERT_BOTS}
        idle = {b: cpu_seconds(pid) for b, pid in processes.items()}
        broker_idle = sum(cpu_seconds(pid) for pid in rabbitmq._group_pids())
        load_before = os.getloadavg()
        started = time.perf_counter()
        push(leg, events)
        wait_for(lambda: cert_redis.llen(arrived) >= findings, timeout=3600, interval=0.1, what="the CERT's parser")
        at_cert = time.perf_counter() - started
        wait_for(lambda: forwarded_count(leg) >= findings, timeout=3600, interval=0.2, what="the hub's record")
        wall = max(at_cert, time.perf_counter() - started)
        busy = {b: cpu_seconds(pid) - idle[b] for b, pid in processes.items()}
        busy["rabbitmq"] = sum(cpu_seconds(pid) for pid in rabbitmq._group_pids()) - broker_idle
        arrived_count = cert_redis.llen(arrived)
    finally:
        leg.close()
    return {
        "variant": "forward-leg",
        "findings": findings,
        "arrived_at_cert": arrived_count,
        "wall_s": round(wall, 1),
        "at_cert_s": round(at_cert, 1),
        "findings_per_s": round(findings / wall),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_ms_per_finding": {b: round(1000 * s / findings, 3) for b, s in sorted(busy.items())},
    }


def run_halves(findings: int, workdir: Path, rabbitmq) -> dict:
    leg = Tiers.forward_leg(EXAMPLE, SNIPPETS, workdir, rabbitmq, vhost=f"nsm-ibd-bench-{workdir.name}", timeout=3600)
    events = [json.dumps(hub_event(n)) for n in range(findings)]
    try:
        leg.start()
        leg.cert.pipeline.stop(*leg.cert.pipeline.bot_ids)
        hub_redis, cert_redis = leg.hub.pipeline.redis.client(), leg.cert.pipeline.redis.client()
        output = leg.hub.pipeline.queue(HUB_BOTS[0])
        started = time.perf_counter()
        push(leg, events)
        # The output acknowledges each message once the node has confirmed it.
        unconfirmed = (output, f"{HUB_BOTS[0]}-queue-internal")
        wait_for(lambda: sum(hub_redis.llen(q) for q in unconfirmed) == 0, timeout=3600, interval=0.1, what="the hub")
        wait_for(lambda: forwarded_count(leg) >= findings, timeout=3600, interval=0.2, what="the hub's record")
        hub_wall = time.perf_counter() - started
        queued = leg.queued()
        arrived = leg.cert.pipeline.queue(CERT_NEXT)
        leg.cert.pipeline.start(*CERT_BOTS)
        first = wait_for(lambda: cert_redis.llen(arrived) or None, timeout=600, interval=0.01, what="a first finding")
        first_at = time.perf_counter()
        wait_for(lambda: cert_redis.llen(arrived) >= findings, timeout=3600, interval=0.1, what="the CERT's parser")
        cert_wall = time.perf_counter() - first_at
        arrived_count = cert_redis.llen(arrived)
    finally:
        leg.close()
    return {
        "variant": "halves",
        "findings": findings,
        "queued_at_hub_node": queued,
        "arrived_at_cert": arrived_count,
        "hub_half_s": round(hub_wall, 1),
        "hub_half_findings_per_s": round(findings / hub_wall),
        "cert_half_s": round(cert_wall, 1),
        # None where all had arrived before the first look: too few findings to time.
        "cert_half_findings_per_s": round((findings - first) / cert_wall) if first < findings else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rabbitmq = RabbitMQServer(intelmqctl_port=False).start()
    results = {"forward-leg": [], "halves": [], "single-chain": []}
    runs = {"forward-leg": run_leg, "halves": run_halves}
    try:
        for number in range(args.rounds):
            order = ("forward-leg", "halves", "single-chain")
            order = order if number % 2 == 0 else order[::-1]
            for variant in order:
                workdir = Path(tempfile.mkdtemp(prefix=f"nsm-{variant}-"))
                try:
                    if variant in runs:
                        result = runs[variant](args.findings, workdir, rabbitmq)
                    else:
                        result = single_chain(args.findings, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                result["round"] = number + 1
                results[variant].append(result)
                print(json.dumps(result), flush=True)
            leg, halves, chain = (results[v][-1] for v in ("forward-leg", "halves", "single-chain"))
            rate, cert = chain["findings_per_s"], halves["cert_half_findings_per_s"]
            cert_text = f"{cert}/s ({cert / rate:.2f}x)" if cert else "not timed (too few findings)"
            print(
                f"round {number + 1}, {args.findings} findings: forward leg {leg['findings_per_s']} findings/s "
                f"({leg['wall_s']} s), single chain {rate} findings/s ({chain['wall_s']} s): "
                f"{leg['findings_per_s'] / rate:.2f}x; the hub's half alone {halves['hub_half_findings_per_s']}/s "
                f"({halves['hub_half_findings_per_s'] / rate:.2f}x), the CERT's half alone {cert_text}",
                flush=True,
            )
    finally:
        rabbitmq.stop()


if __name__ == "__main__":
    main()
