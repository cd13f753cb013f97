"""A private PostgreSQL server for the ledger's tests, benchmarks and rehearsals.

Debian's server programs (``initdb``, ``pg_ctl``) run as the calling (unprivileged) user
on a data folder of its own, listening on 127.0.0.1 and a free port only; trust
authentication, because nothing but this process's user can reach the folder's socket
and loopback is all it listens on. The folder's path is short on purpose: the Unix socket
path must stay under 107 bytes.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Optional


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` (or PG_BIN)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresUnavailable("No PostgreSQL server programs (Debian package postgresql) are installed.")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``start()``, ``url(database)``, ``create_database(name)``, ``stop()``, ``close()``."""

    def __init__(self, directory: Optional[Path] = None):
        self.bin = bin_dir()
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
        self.port = free_port()
        self.running = False
        self._initialised = False

    def _run(self, program: str, *args, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(
            [str(self.bin / program), *args], env=env, check=check, capture_output=True, text=True, timeout=60
        )

    def start(self) -> "PostgresServer":
        if not self._initialised:
            self._run(
                "initdb",
                "-D",
                str(self.dir / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            )
            self._initialised = True
        options = f"-k {self.dir} -p {self.port} -h 127.0.0.1 -F"
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )
        self.running = True
        return self

    def stop(self) -> None:
        """Stop the server (``-m fast``: clients are disconnected); ``start()`` again later."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
            self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if new) and return its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name, check=False)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._run("dropdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "--force", name, check=False)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
