"""The return leg: state changes/s a hub applies through its real ``POST /v1/outcomes``, and the
time from an owner's answer at a CERT to its visibility at the hub.

1. **At the hub.** The hub's feedback service on 127.0.0.1 (its SQLite ledger holding its
   records of N findings forwarded to the IBD), one client posting ``nsm-outcomes/1``
   batches of ``--batch`` changes (two changes per finding: notified, then an owner's
   answer), then the same batches again (all duplicates). Target: 1,000 changes/s.
2. **From a CERT's outbox.** The CERT's ledger (the same N findings from the hub, each
   opened and notified), its ``OutboxPusher`` sending all of it to the hub: the whole way,
   reading the history included.
3. **An owner's answer at the CERT, seen at the hub.** The CERT's digest output as a real
   IntelMQ bot (private redis-server, intelmqctl) with its defaults (``delivery_interval``
   and ``upstream_interval`` 5 s), the CERT's feedback service taking the answers (its
   ticket system's ``POST /v1/feedback``) into the bot's ledger; each answer is sent at a
   random moment of the interval and the hub's ledger polled until it shows the answer.
   Target: within one delivery interval + 5 s.

Run as an unprivileged user from the repository's root with the test venv:
``python benchmarks/federation_return.py``.
"""

import argparse
import datetime
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url
from intelmq_nsm.digest.outbox import OutboxPusher
from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.feedback.links import create_secret
from intelmq_nsm.feedback.service import build
from intelmq_nsm.testbed.pipeline import Pipeline, RedisServer, wait_for
from intelmq_nsm.testbed.tiers import (
    CERT,
    HUB,
    HUB_LEDGER,
    T0,
    Hub,
    forwarded_event,
    hub_id,
    hub_ledger,
    token_file,
)

logging.basicConfig(level=logging.WARNING)
BOT = "ibd-digest"


def iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat()


def batches(findings: int, size: int, instance: str = CERT) -> list:
    """``nsm-outcomes/1`` bodies: per finding ``notified``, then an owner's ``fixed-reported``."""
    changes = []
    for n in range(findings):
        for seq, state, source in ((2 * n, "notified", "scan"), (2 * n + 1, "fixed-reported", "owner")):
            changes.append(
                {
                    "change_id": f"{instance}/bench/{seq}",
                    "finding_id": hub_id(n),
                    "state": state,
                    "at": iso(T0 + seq),
                    "source": source,
                    "organisation": {"id": f"org-{n % 342:04d}"},
                }
            )
    return [
        json.dumps({"format": "nsm-outcomes/1", "instance": instance, "changes": changes[i : i + size]}).encode()
        for i in range(0, len(changes), size)
    ]


def post_all(hub: Hub, bodies: list, key: str) -> tuple:
    session = requests.Session()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {hub.ibd_token}"}
    total = 0
    started = time.perf_counter()
    for body in bodies:
        answer = session.post(hub.url, data=body, headers=headers, timeout=300)
        answer.raise_for_status()
        total += answer.json()[key]
    return total, time.perf_counter() - started


def at_the_hub(work: Path, findings: int, size: int) -> dict:
    url = sqlite_url(work / "hub.sqlite")
    started = time.perf_counter()
    hub_ledger(url, {"ibd": list(range(findings))}).close()
    print(f"hub ledger: {findings} forwarded findings recorded in {time.perf_counter() - started:.1f} s", flush=True)
    hub = Hub.in_folder(work, url, requests_per_minute=0)
    try:
        bodies = batches(findings, size)
        applied, seconds = post_all(hub, bodies, "applied")
        assert applied == 2 * findings, applied
        duplicates, again = post_all(hub, bodies, "duplicate")
        assert duplicates == 2 * findings, duplicates
    finally:
        hub.stop()
    result = {"applied_per_s": applied / seconds, "duplicates_per_s": duplicates / again, "batches": len(bodies)}
    print(
        f"hub: {applied} changes applied in {len(bodies)} requests of {size} in {seconds:.1f} s:"
        f" {result['applied_per_s']:.0f} changes/s; the same again (duplicates): {result['duplicates_per_s']:.0f}/s",
        flush=True,
    )
    return result


def from_the_outbox(work: Path, findings: int, size: int) -> dict:
    url = sqlite_url(work / "hub2.sqlite")
    hub_ledger(url, {"ibd": list(range(findings))}).close()
    cert = Ledger(sqlite_url(work / "cert.sqlite"), name="ibd-digest-mail")
    observations = [
        Observation(
            f"nf1-{n + 10**9:032x}",
            f"GM{n % 342:04d}",
            f"event-{n}",
            org_name=f"Gemeente {n % 342}",
            constituency="ibd",
            case_id="DIVD-2024-00012",
            upstream_finding_id=hub_id(n),
            upstream_instance=HUB,
        )
        for n in range(findings)
    ]
    for i in range(0, findings, 5000):
        chunk = observations[i : i + 5000]
        cert.observe(chunk, now=T0)
        cert.record_delivery(f"digest-{i}", [(o.finding_id, o.org_id, "new") for o in chunk], now=T0 + 60)
    (work / "second").mkdir()
    hub = Hub.in_folder(work / "second", url, requests_per_minute=0)
    try:
        pusher = OutboxPusher(
            cert, hub.url, token_file(work, hub.ibd_token), CERT, logging.getLogger("bench"), batch=size, interval=0
        )
        sent = 0
        started = time.perf_counter()
        while True:
            counts = pusher.run_once()
            sent += counts["applied"]
            if not counts["sent"]:
                break
        seconds = time.perf_counter() - started
    finally:
        hub.stop()
        cert.close()
    assert sent == 2 * findings, sent
    print(f"outbox: {sent} changes from the CERT's ledger to the hub in {seconds:.1f} s: {sent / seconds:.0f}/s")
    return {"outbox_per_s": sent / seconds}


def answer_latency(work: Path, findings: int, answers: int) -> dict:
    """Owners' answers at the CERT (its feedback service) until seen at the hub, with the bot's defaults."""
    url = sqlite_url(work / "hub3.sqlite")
    hub_ledger(url, {"ibd": list(range(findings))}).close()
    (work / "hub3").mkdir()
    hub = Hub.in_folder(work / "hub3", url)
    spool = work / "cert-spool.sqlite"
    redis_server = RedisServer(work / "redis").start()
    runtime = {
        BOT: {
            "module": "intelmq.bots.outputs.nsm.digest",
            "parameters": {
                "channel": "file",
                "constituency": "ibd",
                "file_directory": str(work / "digests"),
                "file_formats": ["json"],
                "spool_file": str(spool),
                "max_age": 0,
                "instance_name": CERT,
                "upstream_url": hub.url,
                "upstream_token_file": token_file(work, hub.ibd_token, "latency-token"),
            },
        }
    }
    pipeline = Pipeline(work / "intelmq", redis_server, runtime).setup()
    pipeline.runtime["global"]["logging_level"] = "INFO"
    pipeline.write_runtime()
    hub_view = Ledger(url, name=HUB_LEDGER)
    cert_service = None
    try:
        pipeline.start()
        client = redis_server.client()
        for n in range(findings):
            client.lpush(pipeline.queue(BOT), json.dumps(forwarded_event(n)))

        def all_notified():
            return sum(1 for r in hub_view.records(org_id="cert:ibd") if r["state"] == "notified") == findings

        wait_for(all_notified, timeout=600, interval=0.5, what="every notification at the hub")
        secret = work / "cert-secret"
        create_secret(secret)
        tickets = work / "cert-tickets.json"
        _, ticket_token = add_token(tickets, "IBD-tickets", ["feedback"])
        config = config_mod.from_mapping(
            {
                "ledger_url": sqlite_url(spool),
                "ledger_name": BOT,
                "secret_file": str(secret),
                "tokens_file": str(tickets),
                "port": 0,
                "requests_per_minute": 0,
            }
        )
        cert_service = build(config).start()
        cert_ledger = Ledger(sqlite_url(spool), name=BOT)
        records = {r["upstream_finding_id"]: r for r in cert_ledger.records()}
        cert_ledger.close()
        latencies = []
        for i in range(answers):
            time.sleep(random.uniform(0, 5.0))  # a random moment of the intervals
            record = records[hub_id(i)]
            body = {
                "finding_id": record["finding_id"],
                "organisation": record["org_id"],
                "state": "fixed-reported",
                "comment": "Patched.",
                "reference": f"T-{i}",
            }
            headers = {"Authorization": f"Bearer {ticket_token}"}
            sent = time.monotonic()
            answer = requests.post(
                f"http://127.0.0.1:{cert_service.port}/v1/feedback", json=body, headers=headers, timeout=30
            )
            assert answer.status_code == 201, answer.text

            def seen(n=i):
                [mine] = [r for r in hub_view.history_of(hub_id(n)) if r["org_id"] == "cert:ibd"]
                return mine["state"] == "fixed-reported"

            wait_for(seen, timeout=120, interval=0.05, what=f"answer {i} at the hub")
            latencies.append(time.monotonic() - sent)
            print(f"answer {i + 1}: seen at the hub after {latencies[-1]:.2f} s", flush=True)
    finally:
        if cert_service is not None:
            cert_service.stop()
        hub_view.close()
        pipeline.close()
        redis_server.stop()
        hub.stop()
    latencies.sort()
    result = {
        "median_s": statistics.median(latencies),
        "p90_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))],
        "max_s": latencies[-1],
    }
    print(
        f"owner's answer at the CERT → visible at the hub ({answers} answers, delivery and upstream interval 5 s):"
        f" median {result['median_s']:.2f} s, p90 {result['p90_s']:.2f} s, max {result['max_s']:.2f} s"
        f" (target: 5 s + 5 s = 10 s)"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=20000, help="findings forwarded (two changes each)")
    parser.add_argument("--batch", type=int, default=1000, help="changes per request (the hub's max_batch_items)")
    parser.add_argument("--latency-findings", type=int, default=200, help="findings through the CERT's bot")
    parser.add_argument("--answers", type=int, default=10, help="owners' answers timed")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nsm-return-") as tmp:
        work = Path(tmp)
        results = {"hub": at_the_hub(work, args.findings, args.batch)}
        results["outbox"] = from_the_outbox(work, args.findings, args.batch)
        if not args.skip_latency:
            results["latency"] = answer_latency(work, args.latency_findings, args.answers)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
