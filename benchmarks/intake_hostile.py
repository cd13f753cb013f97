"""Intake collector under hostile load, on loopback: failed authentications and memory per MB.

1. Failed authentication: 100 clients (threads of a second process, each with an
   address of its own in ``X-Forwarded-For``, as behind the proxy) send requests with a
   known token id (another researcher's) and a wrong secret as fast as they can, while
   one researcher submits (its token not yet verified when the attack starts) and a
   monitor polls ``/v1/health``. Each run in a fresh process. Reported: the
   researcher's and the monitor's latency (p50/p99), the scrypt computations, the
   answers the attackers got and the process's peak RSS; once with the failure limit
   (the default), once without it (hashing bounded only), and once without attackers
   (the same machine's baseline).
2. Memory per MB accepted: the growth of the peak RSS of a fresh process while it
   accepts one submission of 10 MB and one of 40 MB (NSM report JSON and NDJSON).

The intake's service and HTTP server run in this process, with the bot's pump sending
into a list (no Redis: the cost measured is the intake's own). Run as an unprivileged
user from the repository's root with the test venv: ``python benchmarks/intake_hostile.py``.
"""

import argparse
import http.client
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intelmq_nsm.auth import tokens as tokens_mod
from intelmq_nsm.auth.tokens import TokenVerifier, add_token
from intelmq_nsm.intake.http import IntakeServer
from intelmq_nsm.intake.pump import Pump
from intelmq_nsm.intake.service import IntakeConfig, IntakeService
from intelmq_nsm.intake.spool import SubmissionSpool
from intelmq_nsm.web.limits import PARAMETERS, Limits

ATTACKERS = 100


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: Behind a proxy, as the attackers' X-Forwarded-For pretends.
BEHIND_A_PROXY = Limits(max_connections=1000, trust_forwarded_for=True)


class Intake:
    """The intake's service and server; ``config`` holds limits (one object for the service
    and its server) and the service's own settings, by their parameter names."""

    def __init__(self, folder: Path, **config):
        self.token_file = folder / "tokens.json"
        _, self.token = add_token(self.token_file, "DIVD", ["divd"])
        _, self.other_token = add_token(self.token_file, "Example Research", ["example"])
        self.spool = SubmissionSpool(folder / "spool.sqlite")
        logger = logging.getLogger("bench")
        limits = Limits.from_parameters(config, defaults=BEHIND_A_PROXY)
        settings = IntakeConfig(**{k: v for k, v in config.items() if k not in PARAMETERS})
        self.service = IntakeService(TokenVerifier(self.token_file), self.spool, settings, logger, limits=limits)
        self.sent = 0
        self.pump = Pump(self.spool, self._send, self.service.state, logger)
        self.server = IntakeServer(self.service, "127.0.0.1", 0).start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.pump.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def _send(self, item):
        self.sent += 1

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.server.stop()
        self.spool.close()


def request(port, method, path, body=None, headers=None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def report(n: int) -> bytes:
    return json.dumps(
        {
            "schema": "nsm-report/1",
            "case": {"id": "DIVD-2024-00031", "title": "Exposed example admin panels"},
            "reporter": {"organisation": "DIVD"},
            "findings": [{"ip": f"192.0.2.{n % 250 + 1}", "port": 1000 + n}],
        }
    ).encode()


def failed_auth(limit: bool, seconds: float, attacked: bool = True) -> dict:
    calls = [0]
    real = tokens_mod._hash

    def counting(*args):
        calls[0] += 1
        return real(*args)

    tokens_mod._hash = counting
    with tempfile.TemporaryDirectory() as folder:
        config = {"send_wait": 1, "requests_per_minute": 0}
        if not limit:
            config["failed_auth_per_minute"] = 0
        intake = Intake(Path(folder), **config)
        # Another researcher's token id: the attack must not hold this researcher up.
        token = intake.other_token
        forged = token[:13] + ("B" if token[13] != "B" else "C") + token[14:]
        port = intake.server.port
        base_rss = rss_mib()
        command = [sys.executable, __file__, "--attack", str(port), forged, str(seconds + 1)]
        attackers = subprocess.Popen(command, stdout=subprocess.PIPE, text=True) if attacked else None
        time.sleep(1)
        health, submit, n, statuses = [], [], 0, {}
        deadline = time.monotonic() + seconds
        headers = {
            "Authorization": f"Bearer {intake.token}",
            "Content-Type": "application/json",
            "X-Forwarded-For": "198.51.100.1",
        }
        while time.monotonic() < deadline:
            health.append(request(port, "GET", "/v1/health")[1])
            n += 1
            status, elapsed = request(port, "POST", "/v1/reports", report(n), headers)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 202:
                submit.append(elapsed)
        answers = json.loads(attackers.communicate(timeout=120)[0]) if attacked else {}
        intake.close()
    tokens_mod._hash = real

    def ms(values, q):
        return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 1) if len(values) > 2 else None

    return {
        "attack": "100 clients, failure limit " + ("on (default)" if limit else "off") if attacked else "none",
        "researcher's answers": statuses,
        "submit p50/p99 ms": (ms(submit, 50), ms(submit, 99)),
        "health p50/p99 ms": (ms(health, 50), ms(health, 99)),
        "scrypt computations": calls[0],
        "attackers' answers": answers,
        "peak RSS MiB (growth)": round(rss_mib() - base_rss, 1),
    }


def attack(port: int, forged: str, seconds: float) -> None:
    """In a second process: ATTACKERS threads with wrong secrets; prints the answers they got."""
    answers, lock, deadline = {}, threading.Lock(), time.monotonic() + seconds

    def one(n):
        headers = {
            "Authorization": f"Bearer {forged}",
            "Content-Type": "application/json",
            "X-Forwarded-For": f"203.0.113.{n % 250 + 1}",
        }
        while time.monotonic() < deadline:
            try:
                status = str(request(port, "POST", "/v1/reports", report(0), headers)[0])
            except OSError:
                status = "error"
            with lock:
                answers[status] = answers.get(status, 0) + 1

    threads = [threading.Thread(target=one, args=(n,)) for n in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(answers))


def write_body(path: Path, kind: str, megabytes: int) -> None:
    size = megabytes * 2**20
    with open(path, "w", encoding="utf-8") as out:
        if kind == "json":
            finding = json.dumps({"ip": "192.0.2.10", "port": 443, "evidence": "x" * 400})
            head = json.dumps({"schema": "nsm-report/1", "case": {"id": "DIVD-2024-00031", "title": "t"}})[:-1]
            out.write(head + ', "findings": [' + finding)
            for _ in range(size // (len(finding) + 2)):
                out.write(", " + finding)
            out.write("]}")
        else:
            line = json.dumps({"template-id": "example-panel", "ip": "192.0.2.30", "port": "443", "r": "x" * 400})
            for _ in range(size // (len(line) + 1)):
                out.write(line + "\n")


def memory_child(kind: str, body_file: str) -> None:
    """In a fresh process: the peak RSS growth while the submission in ``body_file`` is
    accepted (the client streams it from the file, so the growth is the intake's)."""
    with tempfile.TemporaryDirectory() as folder:
        intake = Intake(Path(folder), send_wait=0, max_body_size=100 * 2**20, requests_per_minute=0)
        content_type = "application/json" if kind == "json" else "application/x-ndjson"
        before = rss_mib()
        headers = {
            "Authorization": f"Bearer {intake.token}",
            "Content-Type": content_type,
            "Content-Length": str(Path(body_file).stat().st_size),
        }
        with open(body_file, "rb") as body:
            status, elapsed = request(intake.server.port, "POST", "/v1/reports", body, headers)
        growth = rss_mib() - before
        intake.close()
        print(json.dumps({"status": status, "growth": growth, "seconds": elapsed}))


def memory_per_mb() -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("json", "ndjson"):
            growth = {}
            for megabytes in (10, 40):
                body_file = Path(folder) / f"{kind}-{megabytes}"
                write_body(body_file, kind, megabytes)
                command = [sys.executable, __file__, "--memory-child", kind, str(body_file)]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                answer = json.loads(out.strip().splitlines()[-1])
                assert answer["status"] == 202, answer
                growth[megabytes] = answer["growth"]
            results[kind] = {
                "peak RSS growth MiB for 10 / 40 MB": (round(growth[10]), round(growth[40])),
                "MiB per MB accepted": round((growth[40] - growth[10]) / 30, 1),
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--memory-child", nargs=2, metavar=("KIND", "FILE"))
    parser.add_argument("--attack", nargs=3, metavar=("PORT", "TOKEN", "SECONDS"))
    parser.add_argument("--failed-auth", choices=("none", "on", "off"))
    parser.add_argument("--only", choices=("auth", "memory"), help="run one of the two parts")
    args = parser.parse_args()
    if args.failed_auth:
        limit, attacked = args.failed_auth != "off", args.failed_auth != "none"
        print(json.dumps(failed_auth(limit, args.seconds, attacked)))
        return 0
    if args.attack:
        attack(int(args.attack[0]), args.attack[1], float(args.attack[2]))
        return 0
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    if args.only != "memory":
        for limit in ("none", "on", "off"):
            command = [sys.executable, __file__, "--failed-auth", limit, "--seconds", str(args.seconds)]
            print(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip(), flush=True)
    if args.only != "auth":
        print(json.dumps(memory_per_mb()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
