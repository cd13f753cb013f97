"""Registry files in CSV, one asset or exclusion a row: bulk exports of up to a million rows.

Columns ``type,value,organisation,source,note,exact`` (the first three required; ``type``
is network, domain, asn or exclusion). Rows whose network or domain is already in normal
form take a short path, without a mapping per row or an object per network; every other
row, and any row with a problem, is read as a record (``records.py``), which names the
problem.
"""

import csv
import itertools
import re

from .model import MANUAL, Asset
from .records import ASSET_KINDS, RecordReader
from .registry import NetworkRows
from .values import parse_normal_network

CSV_COLUMNS = ("type", "value", "organisation", "source", "note", "exact")
#: Networks of the short path enter the registry in blocks of this many rows.
BLOCK = 1 << 12
# A domain already in normal form (lowercase ASCII labels, no trailing dot) needs no IDNA.
_NORMAL_DOMAIN = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")


def read_csv_file(path, records: RecordReader) -> None:
    """Read one CSV file into ``records``'s registry; OSError and UnicodeDecodeError are the caller's."""
    registry = records.registry
    # Streamed: a bulk export is large, and its text need not sit in memory twice.
    quoted = False
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            registry.digest.update(chunk)
            quoted = quoted or b'"' in chunk
    registry.files.append(str(path))
    # Without a quote character a CSV row is its line split at commas: read so, in half
    # the time of the csv module (which reads any other file).
    with open(path, encoding="utf-8-sig", newline="" if quoted else None) as stream:
        read_rows(path, csv.reader(stream) if quoted else _split_at_commas(stream), records)


def read_rows(path, rows, records: RecordReader) -> None:
    """Read the rows (lists of fields, the header first) of one CSV file."""
    header = next(rows, None)
    if header is None:
        return
    header = [column.strip().lower() for column in header]
    missing = [c for c in ("type", "value", "organisation") if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        reason = f"the header must name the columns {', '.join(CSV_COLUMNS)} (at least type, value, organisation)"
        records.issue("error", path, "line 1", ", ".join(missing + unknown), reason)
        return
    columns = {name: header.index(name) for name in header}
    width = len(header)
    file = str(path)
    # Bulk exports run to a million rows: the short path below is the load's inner loop.
    # Its networks are gathered column by column and handed to Registry.add_networks, the
    # one way networks enter a registry, a block at a time.
    type_column, value_column, organisation_column = columns["type"], columns["value"], columns["organisation"]
    source_column, note_column = columns.get("source"), columns.get("note")
    exact_column = columns.get("exact")
    normal_network, normal_domain = parse_normal_network, _NORMAL_DOMAIN.fullmatch
    shared_string = records.strings.setdefault
    registry = records.registry
    networks = NetworkRows(file)
    values = networks.values
    add_value, add_organisation = values.append, networks.organisations.append
    add_source, add_note, add_line = networks.sources.append, networks.notes.append, networks.lines.append
    add_parsed = networks.parsed.append
    room = BLOCK  # rows left in the block
    source, note = MANUAL, ""  # the last seen; an export repeats the same few on every row
    shared_source, shared_note = source, note
    assets = registry.assets
    for line, row in enumerate(rows, start=2):
        if len(row) != width:
            if row and (len(row) > 1 or row[0].strip()):
                records.issue("error", path, f"line {line}", "", f"has {len(row)} columns, the header {width}")
            continue
        kind, value, organisation = row[type_column], row[value_column], row[organisation_column]
        if organisation and (exact_column is None or not row[exact_column]):
            if kind == "network":
                network = normal_network(value)
                if network is not None:
                    add_value(value)
                    add_organisation(shared_string(organisation, organisation))
                    if source_column is not None and row[source_column] != source:
                        source = row[source_column]
                        shared_source = shared_string(source or MANUAL, source or MANUAL)
                    add_source(shared_source)
                    if note_column is not None and row[note_column] != note:
                        note = row[note_column]
                        shared_note = shared_string(note, note)
                    add_note(shared_note)
                    add_line(line)
                    add_parsed(network)
                    room -= 1
                    if not room:
                        registry.add_networks(networks)
                        networks.clear()
                        room = BLOCK
                    continue
            elif kind == "domain" and len(value) <= 253 and normal_domain(value):
                domain_source = row[source_column] if source_column is not None else MANUAL
                domain_note = row[note_column] if note_column is not None else ""
                assets.append(
                    Asset(
                        "domain", value, shared_string(organisation, organisation),
                        shared_string(domain_source, domain_source), shared_string(domain_note, domain_note),
                        False, file, line,
                    )
                )  # fmt: skip
                continue
        record = {name: row[i] for name, i in columns.items()}
        kind = kind.strip().lower()
        if kind == "exclusion":
            value = record["value"].strip()
            kind = "network" if _looks_like_network(value) else "domain"
            records.exclusion(path, f"line {line}", kind, value, record)
        elif kind in ASSET_KINDS:
            if kind == "network" and values:  # the networks before it first: rows stay in file order
                registry.add_networks(networks)
                networks.clear()
                room = BLOCK
            records.asset(path, line, kind, record["value"], record)
        else:
            reason = f"{kind!r} is not one of network, domain, asn, exclusion"
            records.issue("error", path, f"line {line}", "type", reason)
    if values:
        registry.add_networks(networks)


def _split_at_commas(stream):
    """The rows of a CSV text stream that holds no quote character, read in large blocks."""
    rest = ""
    for block in iter(lambda: stream.read(1 << 22), ""):
        lines = (rest + block).split("\n")
        rest = lines.pop()
        yield from map(str.split, lines, itertools.repeat(","))
    if rest:
        yield rest.split(",")


def _looks_like_network(value: str) -> bool:
    return ":" in value or value.replace(".", "").replace("/", "").isdigit()
