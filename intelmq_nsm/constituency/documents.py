"""Registry documents in YAML or JSON: parsed, and their sections read record by record.

A document is a mapping of the sections ``version``, ``constituencies``,
``organisations``, ``assets`` and ``exclusions`` (``harmonization/constituency-db.md``);
a CERT's claims file adds its ``claims`` header (``harmonization/claims.md``), and its
records are read under the rules of its claims (``records.RecordReader.begin_document``).
YAML records carry the line they start on, so that every issue names it; JSON records
are named by their path (``assets[3]``).
"""

import json

import yaml

from .claims import HEADER
from .records import LINE, RecordReader

SECTIONS = ("constituencies", "organisations", "assets", "exclusions")
_DOC_KEYS = {"version", HEADER, *SECTIONS}


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that records the line of every mapping, for error messages."""


def _construct_mapping(loader, node, deep=False):
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# Dates stay strings until validated: PyYAML raises a bare ValueError for 2025-13-01.
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def read_document_file(path, data: bytes, records: RecordReader) -> None:
    """Parse one YAML or JSON file's bytes and read its records into ``records``'s registry."""
    registry = records.registry
    registry.files.append(str(path))
    registry.digest.update(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        records.issue("error", path, f"byte {exc.start}", "", "is not UTF-8")
        return
    del data
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 (a SafeLoader)
    except json.JSONDecodeError as exc:
        records.issue("error", path, f"line {exc.lineno}", "", f"is not valid JSON: {exc.msg}")
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        records.issue("error", path, where, "", f"is not valid YAML: {getattr(exc, 'problem', exc)}")
        return
    read_document(path, document, records)


def read_document(path, document, records: RecordReader) -> None:
    """Read a parsed document's sections, record by record."""
    if document is None:
        document = {}  # an empty file: no records, but a claims file must not be empty
    if not isinstance(document, dict):
        records.issue("error", path, "line 1", "", "the document must be a mapping with registry sections")
        return
    for key in sorted(set(document) - _DOC_KEYS - {LINE}):
        records.issue("error", path, _where(document, key), key, f"unknown section {key!r}")
    version = None if document.get("version") is None else str(document["version"])
    if version is not None:
        records.registry.versions.append(version)
    header = document.get(HEADER)
    where = _where(header, HEADER) if HEADER in document else "line 1"
    if HEADER in document and header is None:
        header = {}  # an empty header is a claims header without any of its keys
    if isinstance(header, dict):
        header = {key: value for key, value in header.items() if key != LINE}
    counts = {section: len(entries) for section in SECTIONS if isinstance(entries := document.get(section), list)}
    if not records.begin_document(path, where, header, counts, version):
        return
    for section, read in zip(
        SECTIONS, (records.constituency, records.organisation, records.asset_record, records.exclusion_record)
    ):
        entries = document.get(section) or []
        if not isinstance(entries, list):
            records.issue("error", path, _where(document, section), section, "must be a list")
            continue
        for number, record in enumerate(entries):
            location = _where(record, f"{section}[{number}]")
            if not isinstance(record, dict):
                records.issue("error", path, location, section, "each entry must be a mapping")
                continue
            read(path, location, record)
    records.end_document(path, where)


def _where(record, fallback: str) -> str:
    if isinstance(record, dict) and LINE in record:
        return f"line {record[LINE]}"
    return fallback
