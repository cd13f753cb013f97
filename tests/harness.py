"""The pipeline harness of the end-to-end tests, and the helpers they share.

The mechanism is the test bed's private pipeline (``intelmq_nsm.testbed.pipeline``, which
the demo and the benchmarks run too); what only tests do with a pipeline (put messages in,
wait for outputs and dumps, read logs, stop, reload, kill and restart single bots) is added
here, with ``archived`` and ``mailed`` (what an archive digest output wrote, what the SMTP
sink received). tests/conftest.py wraps the
pipeline in fixtures that always stop what they started.
"""

import csv
import io
import json
import os
import random
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from intelmq_nsm.testbed.pipeline import *  # noqa: F403  (the harness is the private pipeline)
from intelmq_nsm.testbed.pipeline import HarnessError, Pipeline, RedisServer, wait_for  # noqa: F401  (named for readers)


class HarnessPipeline(Pipeline):
    """The private pipeline with the tests' ways in and out."""

    def reload(self, *bot_ids: str) -> None:
        for bot_id in bot_ids or self.bot_ids:
            self.ctl("reload", bot_id, check=True, timeout=60)

    def kill(self, bot_id: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a running bot (the chaos tests' SIGKILL)."""
        pid = self.pid(bot_id)
        if pid is None:
            raise HarnessError(f"{bot_id} has no pid file.")
        os.kill(pid, sig)

    def kill_and_restart(self, bot_id: str) -> None:
        """SIGKILL a running bot, wait until it is gone, start it again (the chaos tests' blow)."""
        busy = {queue: n for queue, n in self.queue_sizes().items() if n}
        print(f"SIGKILL {bot_id} while queued: {busy}")
        self.kill(bot_id)
        self.restart_killed(bot_id)

    def restart_killed(self, bot_id: str, while_dead=None) -> None:
        """Wait until the killed ``bot_id`` is gone, run ``while_dead()``, start it again."""
        wait_for(lambda: self.status(bot_id) != "running", timeout=30, what=f"{bot_id} to die")
        if while_dead is not None:
            while_dead()
        self.ctl("start", bot_id, check=True, timeout=60)
        wait_for(lambda: self.status(bot_id) == "running", timeout=30, what=f"{bot_id} to run again")

    def kill_part_way(self, bot_id: str, part_way, while_dead=None, at=None) -> None:
        """Start ``bot_id``, SIGKILL it once ``part_way()`` says it is working through its
        batch, and start it again; ``while_dead()`` runs between the blow and the new start.
        The blow falls while intelmqctl may still be starting it: on an idle machine some
        bots work through a whole batch before intelmqctl reports them running.

        ``at()``: a point of a message's handling the blow must fall at (say, its record
        committed and the message not yet acknowledged). It is asked with the bot stopped
        (SIGSTOP); where it does not hold, the bot goes on (SIGCONT) for a moment and is
        stopped and asked again, until it does."""
        starting = threading.Thread(target=self.ctl, args=("start", bot_id), kwargs={"timeout": 60})
        starting.start()
        try:
            wait_for(part_way, timeout=120, interval=0.005, what=f"{bot_id} part way through its batch")
            pid = wait_for(lambda: self.pid(bot_id), timeout=30, what=f"{bot_id}'s pid file")
            if at is not None:
                wait_for(lambda: stopped_at(pid, at), timeout=60, interval=0, what=f"{bot_id} stopped where asked")
            os.kill(pid, signal.SIGKILL)
        finally:
            starting.join()
        self.restart_killed(bot_id, while_dead)

    def waiting(self, bot_id: str) -> int:
        """Messages in ``bot_id``'s source queue (on Redis, a list: cheap to ask often)."""
        return self.redis.client().llen(self.queue(bot_id))

    def in_hand(self, bot_id: str) -> list:
        """The messages ``bot_id`` took and has not acknowledged (its internal queue on
        Redis), as dicts: after a SIGKILL, the one it is handed again when it starts."""
        client = self.redis.client()
        return [json.loads(m) for m in client.lrange(f"{self.queue(bot_id)}-internal", 0, -1)]

    def push(self, bot_id: str, *messages) -> None:
        """Put messages (dicts or JSON strings) into ``bot_id``'s source queue."""
        if self.broker is not None:  # RabbitMQ: published as IntelMQ's AMQP pipeline would
            self.broker.publish(self.queue(bot_id), *[m if isinstance(m, str) else json.dumps(m) for m in messages])
            return
        client = self.redis.client()
        for message in messages:
            client.lpush(self.queue(bot_id), message if isinstance(message, str) else json.dumps(message))

    def wait_drained(self, timeout: float = 60.0, settle: float = 0.3) -> None:
        """Wait until every queue, internal ones included, stayed empty for ``settle`` seconds."""
        deadline = time.monotonic() + timeout
        empty_since = None
        while True:
            busy = {k: v for k, v in self.queue_sizes().items() if v}
            now = time.monotonic()
            if busy:
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= settle:
                return
            if now > deadline:
                raise HarnessError(f"Queues not drained after {timeout} s: {busy}.")
            time.sleep(0.05)

    def log(self, bot_id: str) -> str:
        path = self.log_dir / f"{bot_id}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def log_lines(self, bot_ids: Iterable = (), level: str = "ERROR") -> list:
        """Log lines of the given level (all bots if none are given)."""
        lines = []
        for bot_id in bot_ids or self.bot_ids:
            lines += [line for line in self.log(bot_id).splitlines() if f" - {level} - " in line]
        return lines

    def wait_for_file_output(self, path: Path, count: int, timeout: float = 60.0) -> list:
        """Wait until a file output holds at least ``count`` events; return them all."""
        return wait_for(
            lambda: (events := self.read_file_output(path)) and len(events) >= count and events,
            timeout=timeout,
            what=f"{count} events in {path}",
        )

    def wait_for_dumps(self, bot_id: str, count: int = 1, timeout: float = 30.0) -> list:
        """Wait until ``bot_id`` dumped at least ``count`` messages; return the dump entries."""
        return wait_for(
            lambda: len(entries := self.dumps().get(bot_id, [])) >= count and entries,
            timeout=timeout,
            what=f"{count} dumped messages of {bot_id}",
        )


def stopped_at(pid: int, at) -> bool:
    """Stop the process ``pid`` (SIGSTOP) and ask ``at()``: True leaves it stopped, False
    lets it go on for up to a few milliseconds (a random while, so that the next stop falls
    at another point of its work)."""
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: process_state(pid) == "T", timeout=5, interval=0.0005, what=f"process {pid} to stop")
    time.sleep(0.005)  # what it sent before it stopped reaches Redis and the database first
    there = False
    try:
        there = bool(at())
    finally:
        if not there:  # also when at() failed: never leave the bot stopped
            os.kill(pid, signal.SIGCONT)
    if not there:
        time.sleep(random.uniform(0, 0.004))
    return there


def process_state(pid: int) -> str:
    """The state letter of ``/proc/<pid>/stat`` (``T``: stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    return stat.rsplit(")", 1)[1].split()[0]


def by_ip_and_owner(digest: dict, finding: dict) -> tuple:
    return finding["ip"], (digest["id"], digest["organisation"]["id"])


def archived(directory: Path, key=by_ip_and_owner) -> dict:
    """What the digest files an archive output wrote into ``directory`` hold: ``key(digest,
    finding)`` gives ``(name, value)`` for each finding; name → the set of its values. By
    default finding address → {(digest id, organisation)}."""
    seen = defaultdict(set)
    for path in Path(directory).glob("*.json"):
        digest = json.loads(path.read_text(encoding="utf-8"))
        for finding in digest["findings"]:
            name, value = key(digest, finding)
            seen[name].add(value)
    return seen


def csv_attachment(message) -> str:
    """The text of a digest mail's CSV attachment, signed (PGP/MIME: inside the signed part)
    or not."""
    [attachment] = [part for part in message.walk() if part.get_content_type() == "text/csv"]
    return attachment.get_content()


def mailed(messages, key=lambda row: row["ip"]) -> dict:
    """What the digest mails an SMTP sink received hold: ``key(row)`` of each row of a
    mail's CSV attachment → the set of digest ids (``X-NSM-Digest-Id``) that carried it."""
    seen = defaultdict(set)
    for _, _, message in messages:
        for row in csv.DictReader(io.StringIO(csv_attachment(message))):
            seen[key(row)].add(message["X-NSM-Digest-Id"])
    return seen
