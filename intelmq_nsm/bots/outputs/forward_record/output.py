"""Forward-record output: the hub's ledger record of each finding forwarded to a sectoral CERT.

At the hub, a CERT's constituency path (``ibd``) leads to two queues: IntelMQ's AMQP output
(``intelmq.bots.outputs.amqptopic.output``), which publishes every event to the CERT's
virtual host, and this output, which records each finding in the hub's ledger as
forwarded to that CERT (state ``forwarded``, organisation ``cert:<constituency>``):
intelmq_nsm.federation.record. Nothing is delivered from here; the CERT's own instance
notifies its constituents, and what it reports back (the return leg) changes the record.

A bot of its own rather than a mode of the digest output: it keeps no spool, runs no
delivery thread and has no channel, so none of the digest output's delivery parameters
would mean anything here; it shares the ledger (the same ``ledger_url``/``ledger_name``)
and the wait for an unreachable ledger (intelmq_nsm.bots.ledgered).
"""

import os
import time
from typing import Optional

from intelmq import VAR_STATE_PATH
from intelmq.lib.bot import OutputBot
from intelmq.lib.exceptions import InvalidValue

from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.ledgered import until_reachable
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.digest.event_findings import FindingError
from intelmq_nsm.federation import record

LEDGER_SCHEMES = ("sqlite:", "postgresql:", "postgresql+psycopg:")


class NSMForwardRecordOutputBot(OutputBot):
    """Record in the hub's ledger each finding forwarded to a sectoral CERT (forwarded, cert:<constituency>)"""

    constituency: Optional[str] = None
    ledger_file: Optional[str] = None
    ledger_url: Optional[str] = None
    ledger_name: Optional[str] = None
    ledger_retry_delay: float = 10.0

    _ledger = None

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
        from intelmq_nsm.digest.ledger import Ledger

        url, name = self.url(), self.ledger_name or self.bot_id
        self._ledger = until_reachable(lambda: Ledger(url, name=name), self.logger, self.ledger_retry_delay)
        where = self._ledger.engine.url.render_as_string()
        self.logger.info("Recording forwarded findings in the ledger %r of %s.", name, where)

    def url(self) -> str:
        """The ledger's URL: ``ledger_url``, else the SQLite file ``ledger_file`` (by default
        one of the bot's own in IntelMQ's state folder)."""
        from intelmq_nsm.digest.ledger import sqlite_url

        path = self.ledger_file or os.path.join(VAR_STATE_PATH, f"{self.bot_id}.ledger.sqlite")
        return self.ledger_url or sqlite_url(path)

    def process(self):
        event = self.receive_message()
        fields = shortcuts.as_dict(event)
        try:
            # Committed before the acknowledgement; a repeat after a crash counts once.
            until_reachable(
                lambda: record.record(fields, self._ledger, time.time(), self.constituency),
                self.logger,
                self.ledger_retry_delay,
            )
        except FindingError as exc:
            raise InvalidValue(exc.field, exc.value, exc.reason) from exc
        self.acknowledge_message()

    def shutdown(self):
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    @staticmethod
    def check(parameters: dict):
        parameters = without_empty(NSMForwardRecordOutputBot, parameters)
        results = []
        url = parameters.get("ledger_url")
        if url and not str(url).startswith(LEDGER_SCHEMES):
            results.append(["error", "Parameter ledger_url must be a sqlite:/// or postgresql:// URL."])
        if not parameters.get("constituency"):
            results.append(
                [
                    "warning",
                    "Parameter constituency is not set: events of any constituency are recorded as "
                    "forwarded to that constituency's CERT.",
                ]
            )
        return results or None


BOT = NSMForwardRecordOutputBot
