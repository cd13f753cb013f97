"""Report parser: one IntelMQ event per finding of an NSM report, nuclei JSONL or DIVD CSV."""

import base64
import binascii
from typing import Optional

from intelmq.lib.bot import ParserBot
from intelmq.lib.exceptions import IntelMQException

from intelmq_nsm import event_contract as ec
from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.bots.parsers.report.events import DUPLICATE, EVENT, FAILED, SKIPPED, ReportEvents
from intelmq_nsm.formats import FORMATS, decode_report, detect_format, open_report
from intelmq_nsm.formats.case import case_problems

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
            base = self.new_event(report)
            # Who speaks for the findings: the case's owner, as the intake knew it.
            owner = report.get(ec.CASE_OWNER)
            if owner:
                base.add(ec.CASE_OWNER, owner, overwrite=True)
            # The shared fields are checked here, before any event is sent.
            events = ReportEvents(opened, base, self.duplicate_memory, first_record - 1, self.default_fields)
        except (ValueError, binascii.Error, IntelMQException) as exc:
            self.logger.warning("Report dumped: %s", str(exc).rstrip(".") + ".")
            self._dump_failure(report, None, f"{type(exc).__name__}: {exc}")
            self.acknowledge_message()
            return
        self._report, self._format, self._overflow = report, opened.format, []
        counts = dict.fromkeys(("sent", "duplicates", "skipped", "failed"), 0)
        kinds = {EVENT: "sent", DUPLICATE: "duplicates", SKIPPED: "skipped", FAILED: "failed"}
        for outcome in events:
            counts[kinds[outcome.kind]] += 1
            if outcome.kind == EVENT:
                self.send_message(outcome.event)
            elif outcome.kind == FAILED:
                if outcome.exception is not None:
                    self.logger.error(
                        "Record %d raised an unexpected error.", outcome.number, exc_info=outcome.exception
                    )
                self._fail(outcome, counts["failed"])
        self._finish_report(counts)
        self.acknowledge_message()

    def _fail(self, outcome, failed: int):
        message = f"Record {outcome.number} of the {self._format} report: field {outcome.field!r} {outcome.reason}."
        if failed <= _LOGGED_FAILURES:
            self.logger.warning("%s The record is dumped.", message)
        if failed <= self.max_record_dumps:
            self._dump_failure(self._report, outcome.raw, "intelmq_nsm.formats.RecordError: " + message)
        else:
            # Each IntelMQ dump rewrites the whole dump file: beyond the limit the failed
            # records of this report go into one last dump, still each with its reason.
            self._overflow.append((message, outcome.raw))

    def _finish_report(self, counts: dict):
        if self._overflow:
            reasons = "\n".join(message for message, _ in self._overflow[:1000])
            if len(self._overflow) > 1000:
                reasons += f"\n… and {len(self._overflow) - 1000} more failed records."
            raw = "".join(raw if raw.endswith("\n") else raw + "\n" for _, raw in self._overflow)
            self._dump_failure(self._report, raw, "intelmq_nsm.formats.RecordError: " + reasons)
        self.logger.info(
            "Parsed a %s report: %d events sent, %d duplicates dropped, %d non-matches skipped, %d records failed.",
            self._format,
            *counts.values(),
        )
        self._report = self._format = self._overflow = None

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
