"""IntelMQ events from an opened report: the one path from a report's records to events,
for the report parser bot and ``intelmq-nsm check-report`` alike.

The formats (:mod:`intelmq_nsm.formats`) read records and map each to IntelMQ fields
without IntelMQ; this module checks those fields with IntelMQ's harmonization, adds what
every event of the report shares, the finding id and the result, and says per record
what became of it (an event, a duplicate, a skipped non-finding or a failure naming its
field). The caller decides what to do with each: send and dump, or count.
"""

from dataclasses import dataclass
from typing import Optional

from intelmq.bots.experts.taxonomy.expert import TAXONOMY
from intelmq.lib.exceptions import IntelMQException

from intelmq_nsm import event_contract as ec
from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.finding_id import MissingField, finding_id
from intelmq_nsm.formats import VULNERABLE, NotAFinding, OpenedReport, Record, RecordError, ReportError
from intelmq_nsm.formats.case import combine
from intelmq_nsm.formats.reader import RecentFingerprints, fingerprint

EVENT = "event"
DUPLICATE = "duplicate"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass
class Outcome:
    """What one record became. ``number`` counts within the submission; ``raw`` is the
    record as a report of its own (a CSV row with its header)."""

    kind: str
    number: int
    record: Record
    raw: str
    event: Optional[object] = None
    field: str = ""
    reason: str = ""
    #: an unexpected exception the record raised (the caller logs it with its traceback).
    exception: Optional[BaseException] = None


class ReportEvents:
    """Iterate over an opened report's records as :class:`Outcome`\\ s.

    ``base`` is the event every event starts from (the parser's ``new_event(report)``,
    carrying the report's feed fields); the shared fields of the report are checked on it
    once, here, and a value IntelMQ refuses raises ReportError before any record is read.
    ``defaults`` (the bot's ``default_fields``) fill in what nothing else sets. Events are
    copies of that template (building an Event from scratch re-checks all harmonization
    keys, a quarter of the cost per event).
    """

    def __init__(
        self,
        opened: OpenedReport,
        base,
        duplicate_memory: int = 100000,
        offset: int = 0,
        defaults: Optional[dict] = None,
    ):
        self.opened, self.offset = opened, offset
        self._seen = RecentFingerprints(duplicate_memory)
        added = list(opened.shared)
        for key, value in opened.shared.items():
            try:
                base.add(key, value, overwrite=True)
            except (IntelMQException, ValueError, TypeError) as exc:
                raise ReportError(f"The report's {key} {_shown(value)} is not accepted by IntelMQ: {exc}") from None
        # The taxonomy follows from the type by IntelMQ's own table (its taxonomy expert's).
        base.add("classification.taxonomy", TAXONOMY.get(base["classification.type"], "other"), overwrite=True)
        base.add(ec.REPORT_FORMAT, opened.format, overwrite=True)
        added += ["classification.taxonomy", ec.REPORT_FORMAT]
        #: The report's shared fields as IntelMQ keeps them.
        self.shared = {key: shortcuts.get(base, key) for key in added if key in base}
        for key, value in (defaults or {}).items():
            base.add(key, value, overwrite=False)
        self._template = base

    def __iter__(self):
        for record in self.opened.records:
            yield self.outcome(record)

    def outcome(self, record: Record) -> Outcome:
        number = self.offset + record.number
        raw = self.opened.raw_prefix + record.raw
        try:
            if record.error:
                raise record.error
            fields = self.opened.map_record(record.data)
            digest = fingerprint(fields)
            if digest in self._seen:
                return Outcome(DUPLICATE, number, record, raw)
            event = self._event(fields, raw, number)
            # Remembered only once it became an event: a copy of a failed record fails too.
            self._seen.add(digest)
        except NotAFinding:
            return Outcome(SKIPPED, number, record, raw)
        except RecordError as exc:
            return Outcome(FAILED, number, record, raw, field=exc.field, reason=exc.reason)
        except Exception as exc:
            # Whatever else a record provokes stays with that record: failing the report
            # would make IntelMQ retry it and send its good records twice.
            reason = f"raised {type(exc).__name__}: {str(exc)[:200]}"
            return Outcome(FAILED, number, record, raw, field="record", reason=reason, exception=exc)
        return Outcome(EVENT, number, record, raw, event)

    def _event(self, fields: dict, raw: str, number: int):
        result = fields.pop(ec.RESULT, VULNERABLE)
        event = shortcuts.clone(self._template)
        for key, value in combine(self.shared, fields).items():
            try:
                event.add(key, value, overwrite=True)
            except (IntelMQException, ValueError, TypeError):
                raise RecordError(key, f"{_shown(value)} is not a valid value for {key}") from None
        try:
            # From the harmonised values (normal-form address, lower-case host name).
            identity = finding_id(shortcuts.as_dict(event), harmonised=True)
        except MissingField as exc:
            raise RecordError(exc.field, exc.reason) from None
        # Both values are plain strings of fixed form under extra.nsm.* names.
        shortcuts.put(event, ec.FINDING_ID, identity)
        shortcuts.put(event, ec.RESULT, result)
        event.add(ec.RECORD, number)
        event.add("raw", raw)
        return event


def _shown(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:80] + "…"
