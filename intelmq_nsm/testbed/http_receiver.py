"""A local HTTP endpoint for the REST channel: records every request and answers from a script.

The tests, the benchmarks and anyone trying the REST channel by hand use it as the IBD's
intake; it listens on 127.0.0.1 only.
"""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from intelmq_nsm.testbed.pipeline import LOOPBACK, HarnessError


class Receiver(ThreadingHTTPServer):
    """An HTTP endpoint that records every request and answers from a script.

    ``script`` is a list consumed one entry per request: an int status, ``("slow", s)``
    (answer 200 after s seconds) or ``"hold"`` (wait until ``release`` is set, then 200).
    When the script is empty it answers ``default``, after ``delay`` seconds. Only 2xx
    answers count as received.
    """

    daemon_threads = True

    def __init__(self, script=(), default: int = 200, delay: float = 0):
        super().__init__((LOOPBACK, 0), _Handler)
        self.script = list(script)
        self.default = default
        self.delay = delay
        self.requests = []  # (headers dict, body bytes, status)
        self.lock = threading.Lock()
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}/digests"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def record(self, headers, body, status):
        with self.lock:
            self.requests.append((headers, body, status))

    @property
    def accepted(self) -> list:
        """Bodies (parsed) of the requests answered with 2xx."""
        with self.lock:
            return [json.loads(body) for _, body, status in self.requests if 200 <= status < 300]

    def keys(self) -> Counter:
        """How often each Idempotency-Key arrived (any answer)."""
        with self.lock:
            return Counter(h.get("Idempotency-Key") for h, _, _ in self.requests)

    def wait_for(self, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise HarnessError(f"Receiver saw {len(self.requests)} requests; condition not met in {timeout} s.")
            time.sleep(0.05)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        action = self.server.next_action()
        status = 200
        if action == "hold":
            self.server.held.set()
            self.server.release.wait(60)
        elif isinstance(action, tuple) and action[0] == "slow":
            time.sleep(action[1])
        elif isinstance(action, int):
            status = action
            time.sleep(self.server.delay)
        self.server.record(dict(self.headers), body, status)
        payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
        try:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or was killed: exactly what some tests do

    def log_message(self, *args):
        pass
