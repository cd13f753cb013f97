"""Report parser: one IntelMQ event per finding of an NSM report, nuclei JSONL or DIVD CSV."""

import base64
import binascii
from typing import Optional

from intelmq.bots.experts.taxonomy.expert import TAXONOMY
from intelmq.lib.bot import ParserBot
from intelmq.lib.exceptions import IntelMQException

from intelmq_nsm import event_contract as ec
from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.formats import FORMATS, RecordError, decode_report, detect_format
from intelmq_nsm.formats.case import case_problems, combine
from intelmq_nsm.formats.nuclei import NotAFinding
from intelmq_nsm.formats.reader import RecentFingerprints, fingerprint, open_report

# Failures logged one by one per report; the rest are counted (every one is dumped).
_LOGGED_FAILURES = 10


class NSMReportParserBot(ParserBot):
    """Turn researchers' reports (NSM report, nuclei JSONL, DIVD CSV) into one event per finding with its case."""

    format: str = "auto"
    case: Optional[dict] = None
    evidence_max_length: int = 2000
    duplicate_memory: int = 100000
    max_record_dumps: int = 1000

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
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
            self._start_report(report, opened, first_record - 1)
        except (ValueError, binascii.Error, IntelMQException) as exc:
            self.logger.warning("Report dumped: %s", str(exc).rstrip(".") + ".")
            self._dump_failure(report, None, f"{type(exc).__name__}: {exc}")
            self.acknowledge_message()
            return
        for record in opened.records:
            self._handle(record)
        self._finish_report()
        self.acknowledge_message()

    def _start_report(self, report, opened, offset: int):
        """Per-report state (as ParserBot keeps its tempdata): counters, the duplicate
        memory, the overflowing dumps and the template every event starts from."""
        self._report, self._opened, self._offset = report, opened, offset
        self._seen = RecentFingerprints(self.duplicate_memory)
        self._counts = dict.fromkeys(("sent", "duplicates", "skipped", "failed"), 0)
        self._overflow = []
        # The shared fields are checked once on a probe event.
        probe = self.new_event()
        for key, value in opened.shared.items():
            probe.add(key, value, overwrite=True)
        # The taxonomy follows from the type by IntelMQ's own table (its taxonomy expert's).
        probe.add("classification.taxonomy", TAXONOMY.get(probe["classification.type"], "other"), overwrite=True)
        probe.add(ec.REPORT_FORMAT, opened.format)
        self._shared = dict(probe.items())
        # Every event starts as a copy of this template (feed fields of the report, the
        # shared fields, default_fields where nothing else sets them): building an Event
        # from scratch re-checks all harmonization keys, a quarter of the cost per event.
        self._template = self.new_event(report)
        dict.update(self._template, self._shared)
        for key, value in (self.default_fields or {}).items():
            self._template.add(key, value, overwrite=False)

    def _handle(self, record):
        number = self._offset + record.number
        try:
            if record.error:
                raise record.error
            fields = self._opened.map_record(record.data)
            digest = fingerprint(fields)
            if digest in self._seen:
                self._counts["duplicates"] += 1
                return
            event = self._event(fields, record, number)
            # Remembered only once it became an event: a copy of a failed record fails too.
            self._seen.add(digest)
        except NotAFinding:
            self._counts["skipped"] += 1
            return
        except RecordError as exc:
            self._fail(record, number, exc.field, exc.reason)
            return
        except Exception as exc:
            # Whatever else a record provokes stays with that record: failing the report
            # would make IntelMQ retry it and send its good records twice.
            self.logger.exception("Record %d raised an unexpected error.", number)
            self._fail(record, number, "record", f"raised {type(exc).__name__}: {str(exc)[:200]}")
            return
        self.send_message(event)
        self._counts["sent"] += 1

    def _event(self, fields: dict, record, number: int):
        event = shortcuts.clone(self._template)
        for key, value in combine(self._shared, fields).items():
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
        self._counts["failed"] += 1
        failed = self._counts["failed"]
        message = f"Record {number} of the {self._opened.format} report: field {field!r} {reason}."
        if failed <= _LOGGED_FAILURES:
            self.logger.warning("%s The record is dumped.", message)
        if failed <= self.max_record_dumps:
            self._dump_failure(self._report, record.raw, "intelmq_nsm.formats.RecordError: " + message)
        else:
            # Each IntelMQ dump rewrites the whole dump file: beyond the limit the failed
            # records of this report go into one last dump, still each with its reason.
            self._overflow.append((message, record.raw))

    def _finish_report(self):
        if self._overflow:
            reasons = "\n".join(message for message, _ in self._overflow[:1000])
            if len(self._overflow) > 1000:
                reasons += f"\n… and {len(self._overflow) - 1000} more failed records."
            raw = "".join(raw if raw.endswith("\n") else raw + "\n" for _, raw in self._overflow)
            self._dump_failure(self._report, raw, "intelmq_nsm.formats.RecordError: " + reasons)
        self.logger.info(
            "Parsed a %s report: %d events sent, %d duplicates dropped, %d non-matches skipped, %d records failed.",
            self._opened.format,
            *self._counts.values(),
        )
        self._report = self._opened = self._seen = self._template = self._overflow = None

    def _dump_failure(self, report, raw: Optional[str], message: str):
        dump = report.copy()
        if raw is not None:
            dump.change("raw", raw)
        if self.error_dump_message:
            shortcuts.dump(self, message, dump)
        if self.destination_queues and "_on_error" in self.destination_queues:
            self.send_message(dump, path="_on_error")

    @staticmethod
    def check(parameters: dict):
        parameters = without_empty(NSMReportParserBot, parameters)
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


BOT = NSMReportParserBot
