"""The pump from the submission spool into the pipeline, and the state both sides share.

The HTTP side only stores submissions and sets :attr:`PipelineState.work`; one thread
alone (the bot's main loop: IntelMQ's pipeline is not thread-safe) runs
:meth:`Pump.pump`, which sends spooled reports until the spool is empty or the pipeline
refuses, and tells waiting requests what happened.
"""

import logging
import threading
import time
from typing import Callable, Optional

#: Reports moved from the spool into the pipeline per round.
BATCH = 100


def drain(spool, send: Callable, limit: int = BATCH) -> int:
    """Send up to ``limit`` spooled reports with ``send(item)``; each is forgotten once sent.
    Returns how many were sent; ``send``'s exception propagates (the rest stays)."""
    count = 0
    for item in spool.pending(limit):
        send(item)
        spool.sent(item)
        count += 1
    return count


class PipelineState:
    """What the pump knows about the pipeline, and the signals between the two sides."""

    def __init__(self):
        #: Set when the spool has new work for the pump.
        self.work = threading.Event()
        #: Notified by the pump after each attempt to send.
        self.changed = threading.Condition()
        #: None until the first attempt, then whether the pipeline took the reports.
        self.ok: Optional[bool] = None

    def notify_changed(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Wait up to ``timeout`` seconds until ``done()`` is true, re-checking after each attempt."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.changed.wait(min(remaining, 0.5))


class Pump:
    """Moves reports from the spool with ``send``; ``refused`` are the exceptions by which the
    pipeline says no (the reports stay spooled and are sent when it takes them again)."""

    def __init__(self, spool, send: Callable, state: PipelineState, logger: logging.Logger, refused=()):
        self.spool, self.send, self.state, self.logger = spool, send, state, logger
        self.refused = tuple(refused)

    def wait_for_work(self, timeout: float) -> None:
        self.state.work.wait(timeout)
        self.state.work.clear()

    def run(self, stop, interval: float = 0.2) -> None:
        """Pump whenever there is work until ``stop`` (a threading.Event) is set: the bot's
        main loop, for a thread of its own (the tests' intake and the benchmarks')."""
        while not stop.is_set():
            self.wait_for_work(interval)
            self.pump()

    def pump(self) -> int:
        """Send until the spool is empty or the pipeline refuses; returns the reports sent."""
        total = 0
        while True:
            try:
                sent = drain(self.spool, self.send, BATCH)
            except self.refused as exc:
                if self.state.ok is not False:
                    self.logger.warning(
                        "The pipeline refused a report (%s); reports stay in the spool until it takes them.", exc
                    )
                self.state.ok = False
                self.spool.mark_spooled()
                self.state.notify_changed()
                return total
            total += sent
            if sent:
                if self.state.ok is False:
                    self.logger.info("The pipeline takes reports again; the spool is being sent.")
                self.state.ok = True
                self.state.notify_changed()
            if sent < BATCH:
                return total
