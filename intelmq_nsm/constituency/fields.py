"""How the fields of a registry record are read: one reader per kind of value.

A field of ``Organisation`` or ``Constituency`` (``model.py``) that a registry document
sets is declared with :func:`record_field`, which names its reader; ``records.py`` reads
every such field the same way. So a new field of an organisation is one line in
``Organisation``, with a reader from here (or a new one beside them).

A reader takes the value as YAML or JSON gave it and returns the field's value, or raises
ValueError whose message completes "field 'x' ..." in the operator's error.
"""

from dataclasses import MISSING, field
from datetime import date, datetime


def record_field(reader, default=MISSING, keys: tuple = (), factory=None, whole_record: bool = False):
    """A dataclass field read from a registry record by ``reader``.

    ``keys``: the record's keys that may hold it (default: the field's name), the first one
    present wins. A field without ``default`` (or ``factory``, which makes a fresh default
    each time) is required: a record without it is left out with an error. ``default``s are
    immutable (tuples, not lists): they are shared.

    ``whole_record``: the field gathers several keys (``keys`` names them); ``reader`` takes
    the whole record and the folder of its file (for relative paths), and a ValueError it
    raises may name the key at fault (its ``field`` and ``reason``).
    """
    metadata = {"reader": reader, "keys": keys, "whole_record": whole_record}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(metadata=metadata) if default is MISSING else field(default=default, metadata=metadata)


def text(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    return value


def one_of(*choices):
    """A reader that accepts exactly one of ``choices``."""

    def reader(value):
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return reader


def boolean(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def day(value) -> date:
    """A date: YAML's own, or text in ISO form (YYYY-MM-DD)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def addresses(value) -> tuple:
    """Contact addresses: one, or a list."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a list of addresses")
    return tuple(v.strip() for v in value)


def identifiers(value) -> tuple:
    """Organisation ids (checked against the registry once every file is read)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of organisation ids")
    return tuple(value)
