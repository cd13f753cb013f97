"""A private RabbitMQ for IntelMQ's AMQP pipeline, run as the current (unprivileged) user.

Debian's ``rabbitmq-server`` package provides the programs in ``/usr/lib/rabbitmq/bin``;
the ``/usr/sbin`` wrappers insist on the system node in ``/var/lib/rabbitmq`` and are not
used. The node gets its own name, its own ports (AMQP, Erlang distribution, epmd,
management API) on 127.0.0.1 only, and keeps its cookie, database and logs in one short
temporary folder. No system service is involved: the server is a child process, stopped
by its process id, and so is the epmd it registers with (started here first, so that its
pid is known and no epmd is left listening).

Each pipeline on a shared server gets a virtual host of its own (``vhost``): queue names
are per virtual host, so pipelines of different tests (or an operator's real ones) never
see each other's messages, and IntelMQ's queue counts read only their own.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from intelmq_nsm.testbed.pipeline import LOOPBACK, HarnessError, free_port, wait_for

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
#: The port intelmqctl reads queue counts from: fixed in IntelMQ 3.5's AMQP pipeline,
#: whatever ``intelmqctl_rabbitmq_monitoring_url`` says.
INTELMQCTL_MANAGEMENT_PORT = 15672
#: IntelMQ declares every queue like this; a producer that declares it otherwise gets
#: 406 PRECONDITION_FAILED.
QUEUE_ARGUMENTS = {"x-queue-mode": "lazy"}
#: RabbitMQ's built-in user, which may log in from the loopback interface only.
USER, PASSWORD = "guest", "guest"


def rabbitmq_available() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and epmd_binary() is not None


def epmd_binary() -> Optional[str]:
    return shutil.which("epmd") or next((str(p) for p in Path("/usr/lib/erlang").glob("erts-*/bin/epmd")), None)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; False once it is gone or has exited (a zombie, state Z)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class AmqpBroker:
    """Where one pipeline's messages live: a RabbitMQ on loopback and a virtual host on it."""

    host: str
    port: int
    management_port: int
    vhost: str
    username: str = USER
    password: str = PASSWORD

    def pipeline_settings(self) -> dict:
        """The ``global:`` pipeline settings of a runtime.yaml that uses this broker.

        Host and port are always written: left out, intelmqctl's AMQP code falls back to an
        address that is not on this machine.
        """
        settings = {}
        for side in ("source", "destination"):
            settings.update(
                {
                    f"{side}_pipeline_broker": "amqp",
                    f"{side}_pipeline_host": self.host,
                    f"{side}_pipeline_port": self.port,
                    f"{side}_pipeline_username": self.username,
                    f"{side}_pipeline_password": self.password,
                    f"{side}_pipeline_amqp_virtual_host": self.vhost,
                }
            )
        return settings

    def _api(self, method: str, path: str, **kwargs):
        import requests

        url = f"http://{self.host}:{self.management_port}/api/{path}"
        response = requests.request(method, url, auth=(self.username, self.password), timeout=10, **kwargs)
        if response.status_code >= 400:
            raise HarnessError(f"RabbitMQ management API: {method} {path} answered {response.status_code}.")
        return response.json() if response.content else None

    def queue_sizes(self) -> dict:
        """Messages per queue of this virtual host, ready and unacknowledged together.

        The management API's counts lag the broker by its statistics interval (0.5 s on a
        server started here); ready counts are also read from the broker itself, which has
        no lag, and the larger of the two is taken.
        """
        vhost = urllib.parse.quote(self.vhost, safe="")
        sizes = {q["name"]: q.get("messages", 0) for q in self._api("GET", f"queues/{vhost}")}
        with self.connection() as connection:
            for name in sizes:
                channel = connection.channel()
                with contextlib.suppress(Exception):
                    ready = channel.queue_declare(queue=name, passive=True).method.message_count
                    sizes[name] = max(sizes[name], ready)
                with contextlib.suppress(Exception):
                    channel.close()
        return sizes

    @contextlib.contextmanager
    def connection(self):
        import pika

        parameters = pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.username, self.password),
        )
        connection = pika.BlockingConnection(parameters)
        try:
            yield connection
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def publish(self, queue: str, *bodies: str) -> None:
        """Put messages into ``queue`` as IntelMQ's AMQP pipeline would: durable, lazy, persistent."""
        import pika

        with self.connection() as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.queue_declare(queue=queue, durable=True, arguments=QUEUE_ARGUMENTS)
            for body in bodies:
                channel.basic_publish(
                    exchange="",
                    routing_key=queue,
                    body=body.encode("utf-8"),
                    properties=pika.BasicProperties(delivery_mode=2),
                    mandatory=True,
                )


class RabbitMQServer:
    """A private rabbitmq-server on 127.0.0.1 with its files in a short temporary folder.

    ``management_port``: the management API's port; 15672 (the only one intelmqctl can
    read queue counts from) when it is free and ``intelmqctl_port`` is true, else a free one.
    """

    host = LOOPBACK

    def __init__(self, workdir: Optional[Path] = None, intelmqctl_port: bool = True):
        # Short: Erlang and RabbitMQ put socket-like paths and long node file names below it.
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="rmq", dir="/tmp"))
        self._own_workdir = workdir is None
        self.intelmqctl_port = intelmqctl_port
        self.node = f"nsm{os.getpid()}x{self.workdir.name[-6:].lower()}@localhost"
        self.port = self.dist_port = self.epmd_port = self.management_port = 0
        self.process = None
        self.epmd = None
        self._vhosts: set[str] = set()

    # -- start / stop ------------------------------------------------------------------

    @property
    def mnesia_base(self) -> Path:
        return self.workdir / "mnesia"

    @property
    def pid_file(self) -> Path:
        return self.mnesia_base / f"{self.node}.pid"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    def environment(self) -> dict:
        return {
            "PATH": "/usr/lib/rabbitmq/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.workdir),  # the Erlang cookie lives in $HOME
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "RABBITMQ_MNESIA_BASE": str(self.mnesia_base),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            # Erlang's schedulers spin while idle by default; on a small machine shared with
            # the bots (and, in the test command, with the other tests) they sleep instead.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
            ),
        }

    def _write_config(self) -> None:
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_management].\n", encoding="ascii")
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {LOOPBACK}:{self.port}\n"
            f"management.tcp.ip = {LOOPBACK}\n"
            f"management.tcp.port = {self.management_port}\n"
            # Queue counts in the management API within half a second (default 5 s).
            "collect_statistics_interval = 500\n"
            # A test machine's disk may be small; the default alarm stops all publishers.
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n",
            encoding="ascii",
        )

    def start(self, timeout: float = 120) -> "RabbitMQServer":
        if not rabbitmq_available():
            raise HarnessError(
                f"RabbitMQ is not installed ({RABBITMQ_BIN / 'rabbitmq-server'} and epmd): "
                "install Debian's rabbitmq-server."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        wanted = INTELMQCTL_MANAGEMENT_PORT
        self.management_port = wanted if self.intelmqctl_port and port_is_free(wanted) else free_port()
        self._write_config()
        env = self.environment()
        # epmd first, on loopback and our own port: the node registers with it, and its pid
        # is ours to stop (one started by the node would outlive it).
        self.epmd = subprocess.Popen(
            [epmd_binary(), "-address", LOOPBACK, "-port", str(self.epmd_port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with open(self.log_dir / "server.out", "ab") as out:
            self.process = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # `rabbitmqctl wait` needs the pid file, which the node writes a moment after start.
            wait_for(self._pid_file_written, timeout=timeout, interval=0.1, what=f"RabbitMQ node {self.node}")
            self._wait_running(timeout)
            wait_for(self._management_answers, timeout=timeout, interval=0.2, what="the management API")
        except Exception:
            self.stop()
            raise
        return self

    def _wait_running(self, timeout: float) -> None:
        """``rabbitmqctl wait`` until the node's application runs.

        On a busy machine ``wait`` may find the node up but the application not yet (or no
        longer) booting and give up with rabbit_is_not_running: asked again while the
        server process lives, it goes on waiting.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(5, int(deadline - time.monotonic()))
            try:
                self.ctl("wait", "--timeout", str(remaining), str(self.pid_file), timeout=remaining + 10)
                return
            except HarnessError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def _pid_file_written(self) -> bool:
        if self.process.poll() is not None:
            raise HarnessError(
                f"rabbitmq-server exited with {self.process.returncode}; see {self.log_dir / 'server.out'}."
            )
        return self.pid_file.exists() and self.pid_file.read_text().strip() != ""

    def _management_answers(self) -> bool:
        import requests

        try:
            url = f"http://{self.host}:{self.management_port}/api/overview"
            return requests.get(url, auth=(USER, PASSWORD), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``rabbitmqctl ARGS`` against this node."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise HarnessError(f"rabbitmqctl {' '.join(args)} exited with {result.returncode}: {result.stderr}")
        return result

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the server (a clean shutdown, 6 to 7 s), then the epmd; SIGKILL what stays."""
        for process in (self.process, self.epmd):
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                # The server's shell wrapper, the Erlang VM and its helpers share a session.
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Helpers of the VM (erl_child_setup, inet_gethost) end with it; be sure.
        if self.process is not None:
            self._kill_group(self.process.pid)
        if self.epmd is not None:
            self._kill_group(self.epmd.pid)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_group(self, pgid: int) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # Members that already exited but wait for their parent to reap them (zombies)
            # still belong to the group: done when only such are left.
            if not [pid for pid in self._group_pids({pgid}) if process_alive(pid)]:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.1)

    # -- virtual hosts -----------------------------------------------------------------

    def vhost(self, name: str) -> AmqpBroker:
        """A new, empty virtual host ``name`` for one pipeline (or several sharing it)."""
        broker = AmqpBroker(self.host, self.port, self.management_port, vhost="/")
        quoted = urllib.parse.quote(name, safe="")
        broker._api("PUT", f"vhosts/{quoted}")
        broker._api("PUT", f"permissions/{quoted}/{USER}", json={"configure": ".*", "write": ".*", "read": ".*"})
        self._vhosts.add(name)
        return AmqpBroker(self.host, self.port, self.management_port, vhost=name)

    def delete_vhost(self, name: str) -> None:
        broker = AmqpBroker(self.host, self.port, self.management_port, vhost="/")
        with contextlib.suppress(HarnessError):
            broker._api("DELETE", f"vhosts/{urllib.parse.quote(name, safe='')}")
        self._vhosts.discard(name)

    def listening_addresses(self) -> set:
        """The local addresses the node's processes listen on (to show they are loopback only)."""
        found = set()
        pids = {str(p) for p in self._group_pids()}
        for line in subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout.splitlines():
            if any(f"pid={pid}," in line for pid in pids):
                found.add(line.split()[3])
        return found

    def _group_pids(self, groups: Optional[set] = None) -> list:
        """The processes of the server's and epmd's process groups (zombies included)."""
        if groups is None:
            groups = {p.pid for p in (self.process, self.epmd) if p is not None}
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) in groups:  # field 5 of stat: the process group
                    pids.append(int(stat.parent.name))
        return pids
