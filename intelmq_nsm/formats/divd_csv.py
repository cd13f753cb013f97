"""DIVD's enriched host CSV: ``ip,abuse,prefix,asn,holder,country,city,abuse_source``.

One row per vulnerable address; the case it belongs to is not in the file (see
:mod:`intelmq_nsm.formats.case` for where it comes from). Columns may come in any order,
and any subset that includes ``ip`` is accepted; unknown columns make the report unknown.
"""

import csv
from collections.abc import Iterator

from intelmq_nsm import event_contract as ec
from intelmq_nsm.formats.lines import LineTap, iter_lines
from intelmq_nsm.formats.record import Record, RecordError

#: The columns of DIVD's enriched host CSV, in DIVD's order.
DIVD_CSV_COLUMNS = ("ip", "abuse", "prefix", "asn", "holder", "country", "city", "abuse_source")

_FIELDS = {
    "ip": "source.ip",
    "abuse": "source.abuse_contact",
    "prefix": "source.network",
    "asn": "source.asn",
    "holder": "source.as_name",
    "country": "source.geolocation.cc",
    "city": "source.geolocation.city",
    "abuse_source": ec.ABUSE_SOURCE,
}


class HeaderError(ValueError):
    """The CSV's header is not DIVD's."""


def read_csv(text: str) -> tuple:
    """Open a DIVD CSV: ``(header_line, records)``. The header is read and checked at once
    (a wrong one raises HeaderError); ``header_line`` is its raw text ending in a line
    break. ``records`` yields one :class:`Record` per data row; ``data`` is a dict column →
    value and ``raw`` the row's own lines, without the header (whoever needs a one-row CSV
    that can be fed again puts ``header_line`` before it). Blank lines are skipped and not
    counted."""
    tap = LineTap(iter_lines(text.lstrip("\ufeff")))
    reader = csv.reader(tap, strict=False)
    try:
        header_row = next(reader)
    except StopIteration:
        raise HeaderError("The CSV report is empty.") from None
    except csv.Error as exc:
        raise HeaderError(f"The CSV report's header cannot be read: {exc}.") from None
    header_line = tap.take()
    if not header_line.endswith("\n"):
        header_line += "\n"
    header = [column.strip().lower() for column in header_row]
    unknown = [column for column in header if column not in DIVD_CSV_COLUMNS]
    if unknown or "ip" not in header or len(set(header)) != len(header):
        raise HeaderError(
            f"The CSV header {','.join(header)[:200]!r} is not DIVD's ({','.join(DIVD_CSV_COLUMNS)}): "
            "it needs an ip column, known columns only, each once."
        )
    return header_line, _rows(reader, tap, header)


def iter_records(text: str) -> Iterator:
    """The records of :func:`read_csv` alone."""
    return read_csv(text)[1]


def _rows(reader, tap: LineTap, header: list) -> Iterator:
    number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield Record(number, tap.take(), error=RecordError("row", f"is not valid CSV: {exc}"))
            continue
        raw = tap.take()
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        number += 1
        if len(row) != len(header):
            yield Record(number, raw, error=RecordError("row", f"has {len(row)} fields, the header has {len(header)}"))
            continue
        yield Record(number, raw, dict(zip(header, row)))


def map_record(row: dict) -> dict:
    """One row → IntelMQ fields. Values are taken as they are (a formula-like holder
    stays text: whoever exports events to a spreadsheet must neutralise it)."""
    fields = {}
    for column, value in row.items():
        value = value.strip()
        if not value:
            continue
        if column == "asn":
            value = value[2:] if value[:2].lower() == "as" else value
            if not value.isdigit():
                raise RecordError("asn", f"{value[:40]!r} is not an AS number")
            value = int(value)
        fields[_FIELDS[column]] = value
    if "source.ip" not in fields:
        raise RecordError("ip", "is empty: every row needs the vulnerable address")
    return fields
