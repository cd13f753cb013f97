"""Report parser: one IntelMQ event per finding of an NSM report, nuclei JSONL or DIVD CSV."""

import base64
import binascii
from typing import Optional

from intelmq.bots.experts.taxonomy.expert import TAXONOMY
from intelmq.lib.bot import ParserBot
from intelmq.lib.exceptions import IntelMQException
from intelmq.lib.message import Event

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats import FORMATS, RecordError, decode_report, detect_format
from intelmq_nsm.formats.case import case_problems, combine
from intelmq_nsm.formats.nuclei import NotAFinding
from intelmq_nsm.formats.reader import RecentFingerprints, fingerprint, open_report

# Failures logged one by one per report; the rest are counted (every one is dumped).
_LOGGED_FAILURES = 10


class ReportParserBot(ParserBot):
    """Turn researchers' reports (NSM report, nuclei JSONL, DIVD CSV) into one event per finding with its case."""

    format: str = "auto"
    case: Optional[dict] = None
    evidence_max_length: int = 2000
    duplicate_memory: int = 100000
    max_record_dumps: int = 1000

    def init(self):
        if self.format != "auto" and self.format not in FORMATS:
            raise ValueError(f"Parameter format is {self.format!r}; use auto or one of {', '.join(FORMATS)}.")
        problems = case_problems(self.case or {}, require=False)
        if problems:
            raise ValueError(f"Parameter case is not valid: {problems[0][0]} {problems[0][1]}.")

    def process(self):
        # ParserBot.process collects all failures before dumping and dumps CSV lines
        # character-split; this loop dumps each failed record with its own raw text.
        report = self.receive_message()
        if "raw" not in report:
            self.logger.warning("Report without raw field received; nothing to parse.")
            self.acknowledge_message()
            return
        try:
            first_record = report.get(ec.FIRST_RECORD, 1)
            if not isinstance(first_record, int) or isinstance(first_record, bool) or first_record < 1:
                raise ValueError(f"The report's {ec.FIRST_RECORD} is {first_record!r}, not a positive integer.")
            text = decode_report(base64.b64decode(report["raw"]))
            fmt = detect_format(text) if self.format == "auto" else self.format
            opened = open_report(fmt, text, report.get(ec.CASE), self.case, self.evidence_max_length)
            # The shared fields are checked here, before any event is sent.
            run = _Run(self, report, opened, first_record - 1)
        except (ValueError, binascii.Error, IntelMQException) as exc:
            self.logger.warning("Report dumped: %s", str(exc).rstrip(".") + ".")
            self._dump_failure(report, None, f"{type(exc).__name__}: {exc}")
            self.acknowledge_message()
            return
        for record in opened.records:
            run.handle(record)
        run.finish()
        self.acknowledge_message()

    def _dump_failure(self, report, raw: Optional[str], message: str):
        dump = report.copy()
        if raw is not None:
            dump.change("raw", raw)
        if self.error_dump_message:
            self._dump_message(message, dump)
        if self.destination_queues and "_on_error" in self.destination_queues:
            self.send_message(dump, path="_on_error")

    @staticmethod
    def check(parameters: dict):
        messages = []
        fmt = parameters.get("format", "auto")
        if fmt != "auto" and fmt not in FORMATS:
            messages.append(["error", f"Parameter format is {fmt!r}; use auto or one of {', '.join(FORMATS)}."])
        case = parameters.get("case")
        if case is not None and not isinstance(case, dict):
            messages.append(["error", "Parameter case must be an object with the keys of the NSM report's case block."])
        elif case:
            for path, reason in case_problems(case, require=False):
                messages.append(["error", f"Parameter case is not valid: {path} {reason}."])
        return messages or None


class _Run:
    """The state of parsing one report: counters, duplicate memory, overflowing dumps."""

    def __init__(self, bot: ReportParserBot, report, opened, offset: int):
        self.bot, self.report, self.opened, self.offset = bot, report, opened, offset
        self.seen = RecentFingerprints(bot.duplicate_memory)
        self.sent = self.duplicates = self.skipped = self.failed = 0
        self.overflow = []
        # The shared fields are checked once here on a probe event; each event then takes
        # them without checking again (they are the same for every finding of the report).
        probe = bot.new_event()
        for key, value in opened.shared.items():
            probe.add(key, value, overwrite=True)
        # The taxonomy follows from the type by IntelMQ's own table (its taxonomy expert's).
        probe.add("classification.taxonomy", TAXONOMY.get(probe["classification.type"], "other"), overwrite=True)
        probe.add(ec.REPORT_FORMAT, opened.format)
        self.shared = dict(probe.items())
        # Every event starts as a copy of this template (feed fields of the report, the
        # shared fields, default_fields where nothing else sets them): building an Event
        # from scratch re-checks all harmonization keys, a quarter of the cost per event.
        self.template = bot.new_event(report)
        dict.update(self.template, self.shared)
        for key, value in (bot.default_fields or {}).items():
            self.template.add(key, value, overwrite=False)

    def handle(self, record):
        number = self.offset + record.number
        try:
            if record.error:
                raise record.error
            fields = self.opened.map_record(record.data)
            digest = fingerprint(fields)
            if digest in self.seen:
                self.duplicates += 1
                return
            event = self._event(fields, record, number)
            # Remembered only once it became an event: a copy of a failed record fails too.
            self.seen.add(digest)
        except NotAFinding:
            self.skipped += 1
            return
        except RecordError as exc:
            self._fail(record, number, exc.field, exc.reason)
            return
        except Exception as exc:
            # Whatever else a record provokes stays with that record: failing the report
            # would make IntelMQ retry it and send its good records twice.
            self.bot.logger.exception("Record %d raised an unexpected error.", number)
            self._fail(record, number, "record", f"raised {type(exc).__name__}: {str(exc)[:200]}")
            return
        self.bot.send_message(event)
        self.sent += 1

    def _event(self, fields: dict, record, number: int):
        event = _clone(self.template)
        for key, value in combine(self.shared, fields).items():
            try:
                event.add(key, value, overwrite=True)
            except (IntelMQException, ValueError, TypeError):
                shown = repr(value)
                shown = shown if len(shown) <= 80 else shown[:80] + "…"
                raise RecordError(key, f"{shown} is not a valid value for {key}") from None
        event.add(ec.RECORD, number)
        event.add("raw", record.raw)
        return event

    def _fail(self, record, number: int, field: str, reason: str):
        self.failed += 1
        message = f"Record {number} of the {self.opened.format} report: field {field!r} {reason}."
        if self.failed <= _LOGGED_FAILURES:
            self.bot.logger.warning("%s The record is dumped.", message)
        if self.failed <= self.bot.max_record_dumps:
            self.bot._dump_failure(self.report, record.raw, "intelmq_nsm.formats.RecordError: " + message)
        else:
            # Each IntelMQ dump rewrites the whole dump file: beyond the limit the failed
            # records of this report go into one last dump, still each with its reason.
            self.overflow.append((message, record.raw))

    def finish(self):
        if self.overflow:
            reasons = "\n".join(message for message, _ in self.overflow[:1000])
            more = len(self.overflow) - 1000
            if more > 0:
                reasons += f"\n… and {more} more failed records."
            raw = "".join(raw if raw.endswith("\n") else raw + "\n" for _, raw in self.overflow)
            self.bot._dump_failure(self.report, raw, "intelmq_nsm.formats.RecordError: " + reasons)
        self.bot.logger.info(
            "Parsed a %s report: %d events sent, %d duplicates dropped, %d non-matches skipped, %d records failed.",
            self.opened.format,
            self.sent,
            self.duplicates,
            self.skipped,
            self.failed,
        )


def _clone(template: Event) -> Event:
    """A copy of an Event whose values are already checked, without checking them again.

    An Event is a dict plus its harmonization (``Message.__init__`` sets
    ``harmonization_config`` and ``iterable``); ``Message.copy()`` would re-run the checks.
    """
    event = Event.__new__(Event)
    event.harmonization_config = template.harmonization_config
    event.iterable = {}
    dict.update(event, template)
    return event


BOT = ReportParserBot
