"""Forwarded-event parser: at a sectoral CERT's instance, the events a hub forwarded.

IntelMQ's AMQP collector (``intelmq.bots.collectors.amqp.collector_amqp`` with
``expect_intelmq_message: false``) takes each message from the CERT's queue as a report
whose raw is the hub's event; this parser makes it an event of the CERT's own, treating
it as untrusted input (intelmq_nsm.federation.forwarded): schema-checked, every value
checked by IntelMQ's harmonization, the hub's routing decision dropped (the CERT's own
constituency expert routes it by the CERT's registry), ``feed.*`` the connection's (the
collector's ``name``/``provider``/``code``), the hub's provenance in
``extra.nsm.upstream`` and the CERT's own finding id. A forged or malformed event is
dumped with a message naming the field; each message is a report of its own, so the
other events of a batch go on.
"""

import base64
import binascii
from typing import Optional

from intelmq.lib.bot import ParserBot
from intelmq.lib.exceptions import IntelMQException

from intelmq_nsm import event_contract as ec
from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.digest.event_findings import FindingError, kind_of_abuse
from intelmq_nsm.federation import forwarded
from intelmq_nsm.finding_id import MissingField
from intelmq_nsm.finding_id import identity as finding_identity

ERROR = "intelmq_nsm.federation.ForwardedEventError"


class NSMForwardedParserBot(ParserBot):
    """Check a hub's forwarded events (AMQP collector) as untrusted input; keep the hub's provenance"""

    upstream_instance: Optional[str] = None
    max_event_size: int = forwarded.MAX_BYTES

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
        if not self.upstream_instance:
            raise ValueError("Parameter upstream_instance (the hub's instance name) is not set.")

    def process(self):
        report = self.receive_message()
        try:
            event = self.event_of(report)
        except forwarded.ForwardedEventError as exc:
            self.logger.warning("Forwarded event dumped: %s.", exc)
            if self.error_dump_message:
                shortcuts.dump(self, f"{ERROR}: {exc}.", report)
            if self.destination_queues and "_on_error" in self.destination_queues:
                self.send_message(report, path="_on_error")
        else:
            self.send_message(event)
        self.acknowledge_message()

    def event_of(self, report):
        """The CERT's event of one forwarded message; raises ForwardedEventError."""
        if "raw" not in report:
            raise forwarded.ForwardedEventError("raw", "is missing: the report carries no message")
        try:
            body = base64.b64decode(report["raw"])
        except (binascii.Error, ValueError):
            raise forwarded.ForwardedEventError("raw", "is not base64") from None
        hub = forwarded.read(body, self.max_event_size)
        # From the report: the connection's feed.* and when the collector took the message.
        event = self.new_event(report)
        received = report.get("time.observation")
        for key, value in forwarded.kept_fields(hub).items():
            try:
                event.add(key, value, overwrite=True)
            except (IntelMQException, ValueError, TypeError):
                reason = f"{forwarded.shown(value)} is not a valid value for {key} in IntelMQ's harmonization"
                raise forwarded.ForwardedEventError(key, reason) from None
        # As any parser's event: the input it came from, here the message as it came over
        # the connection (the hub's whole event, its routing decision included).
        shortcuts.put(event, "raw", report["raw"])
        fields = shortcuts.as_dict(event)
        try:
            # The CERT's own, from the harmonised values (never the hub's), by the rule of the
            # event's kind of abuse: the rule the hub's forward record names it by, so that a
            # feed's finding the hub sent without an id is known by the same id at both ends.
            identity = finding_identity(fields, kind_of_abuse(fields), harmonised=True)[0]
        except (MissingField, FindingError) as exc:
            raise forwarded.ForwardedEventError(exc.field, exc.reason) from None
        shortcuts.put(event, ec.FINDING_ID, identity)
        event.add(ec.UPSTREAM, forwarded.upstream(hub, self.upstream_instance, received, identity))
        return event

    @staticmethod
    def check(parameters: dict):
        parameters = without_empty(NSMForwardedParserBot, parameters)
        messages = []
        if not parameters.get("upstream_instance"):
            messages.append(
                [
                    "error",
                    "Parameter upstream_instance is not set: name the hub whose events this parser takes "
                    "(its instance name, kept in extra.nsm.upstream for the return leg).",
                ]
            )
        size = parameters.get("max_event_size", forwarded.MAX_BYTES)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            messages.append(["error", f"Parameter max_event_size is {size!r}; it must be a positive integer."])
        return messages or None


BOT = NSMForwardedParserBot
