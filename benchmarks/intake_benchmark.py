"""Intake collector: accepted submissions/s and latency (p50/p99) for 1 KB and 1 MB
submissions from 16 concurrent clients on loopback.

The intake runs as a real IntelMQ bot (started by intelmqctl, sending to a private
redis-server); each answer is a 202 after the submission was stored in the spool and the
bot tried to send it. Baseline in the same run: a bare ThreadingHTTPServer that reads the
body and answers 202 (the HTTP stack's own cost). Run as an unprivileged user from the
repository's root with the test venv: ``python benchmarks/intake_benchmark.py``.
"""

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.testbed.pipeline import Pipeline, RedisServer, free_port, wait_for
from intelmq_nsm.web.limits import Limits

CLIENTS = 16
#: The intake's limits in this benchmark: the defaults without the rate limit per token.
LIMITS = Limits(requests_per_minute=0)


def body_of(size: int, client: int, number: int) -> bytes:
    """Unique NDJSON (nuclei-like lines) of about ``size`` bytes: no submission repeats."""
    line = {"template-id": "example-panel", "ip": "192.0.2.10", "port": "443", "client": client, "n": number}
    head = json.dumps(line)
    pad = max(0, 250 - len(head))
    one = json.dumps({**line, "response": "x" * pad})
    count = max(1, size // (len(one) + 1))
    lines = [json.dumps({**line, "line": i, "response": "x" * pad}) for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


def run_clients(port: int, token: str, size: int, per_client: int) -> tuple:
    latencies, failures = [], []
    lock = threading.Lock()
    bodies = {c: [body_of(size, c, n) for n in range(per_client)] for c in range(CLIENTS)}
    barrier = threading.Barrier(CLIENTS + 1)

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        barrier.wait()
        for body in bodies[c]:
            started = time.perf_counter()
            conn.request("POST", "/v1/reports", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                if response.status == 202:
                    latencies.append(elapsed)
                else:
                    failures.append(response.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return latencies, failures, wall


def summary(name: str, size: int, latencies: list, failures: list, wall: float) -> dict:
    latencies = sorted(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "server": name,
        "size": size,
        "accepted": len(latencies),
        "failed": len(failures),
        "per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
    }


class _BaselineServer(ThreadingHTTPServer):
    request_queue_size = 128  # as the intake's


class _Baseline(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        data = b'{"status": "accepted"}'
        self.send_response(202)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="1 KB submissions in total")
    parser.add_argument("--large", type=int, default=128, help="1 MB submissions in total")
    args = parser.parse_args()
    runs = [(1024, max(1, args.small // CLIENTS)), (1024 * 1024, max(1, args.large // CLIENTS))]
    results = []

    baseline = _BaselineServer(("127.0.0.1", 0), _Baseline)
    threading.Thread(target=baseline.serve_forever, daemon=True).start()
    for size, per_client in runs:
        results.append(
            summary("baseline http.server", size, *run_clients(baseline.server_address[1], "-", size, per_client))
        )
    baseline.shutdown()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        redis_server = RedisServer(tmp / "redis").start()
        _, token = add_token(tmp / "tokens.json", "DIVD", ["divd"])
        port = free_port()
        pipeline = Pipeline(
            tmp / "intelmq",
            redis_server,
            {
                "nsm-intake": {
                    "module": "intelmq.bots.collectors.nsm.intake",
                    "parameters": {
                        "http_port": port,
                        "token_file": str(tmp / "tokens.json"),
                        "spool_file": str(tmp / "spool.sqlite"),
                        **LIMITS.parameters(),
                        "destination_queues": {"_default": ["sink-queue"]},
                    },
                },
                "global": {"logging_level": "INFO"},
            },
        ).setup()
        try:
            pipeline.start()
            wait_for(lambda: _up(port), timeout=15, what="the intake")
            for size, per_client in runs:
                results.append(summary("intake collector", size, *run_clients(port, token, size, per_client)))
                sink = redis_server.client().llen("sink-queue")
                redis_server.client().delete("sink-queue")
                print(f"# {sink} reports reached the pipeline queue.", file=sys.stderr)
        finally:
            pipeline.close()
            redis_server.stop()

    print("| server | submission | accepted | failed | submissions/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        size = "1 KB" if r["size"] < 1024 * 1024 else "1 MB"
        cells = [r["server"], size, r["accepted"], r["failed"], r["per_second"], r["p50_ms"], r["p99_ms"]]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    return 0


def _up(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/v1/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
