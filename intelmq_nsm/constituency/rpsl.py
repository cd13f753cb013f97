"""Reading RPSL objects from the RIPE database's split dumps, one object at a time.

The dumps (``ripe.db.inetnum.gz`` and its siblings) hold millions of objects separated
by blank lines. Each object is a list of ``name: value`` attributes; a value may go on
over continuation lines (starting with a space, a tab or ``+``); lines starting with
``#`` or ``%`` are comments; attributes repeat (``descr``, ``remarks``, ``country``).

The file is read in large blocks and split at blank lines, and each object's attributes
are taken with one regular expression, so the cost per object is a few C calls rather
than a Python step per line: the whole database streams through in constant memory.
"""

import gzip
import ipaddress
import re
from pathlib import Path

_BLOCK = 1 << 22
# An attribute: its name at the start of a line, its value, and any continuation lines.
_ATTRIBUTE = re.compile(r"^([A-Za-z0-9_-]+):[ \t]*([^\n]*(?:\n[ \t+][^\n]*)*)", re.MULTILINE)
_CONTINUATION = re.compile(r"[ \t]*\n[ \t+]?[ \t]*")


class RpslError(ValueError):
    """A value of an RPSL object that cannot be read; names the object, attribute and reason."""

    def __init__(self, key: str, attribute: str, reason: str):
        self.key, self.attribute, self.reason = key, attribute, reason
        super().__init__(f"{key}: attribute {attribute!r}: {reason}")


def open_dump(path):
    """A binary stream of a dump file, decompressed if it is gzip (by its magic bytes, not its name)."""
    path = Path(path)
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _decode(raw: bytes) -> str:
    # The database is UTF-8 today; objects from before its conversion may still be Latin-1.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def object_texts(stream):
    """The raw text (bytes) of each object of a binary stream, comments included."""
    rest = b""
    for block in iter(lambda: stream.read(_BLOCK), b""):
        block = rest + block
        cut = block.rfind(b"\n\n")
        if cut < 0:
            rest = block
            continue
        rest = block[cut + 2 :]
        yield from block[:cut].split(b"\n\n")
    if rest.strip():
        yield rest


def parse_object(raw: bytes) -> list:
    """``[(attribute name in lowercase, value), ...]`` of one object, in order; [] if it holds none.

    A continued value is joined with single spaces, as the RIPE database shows it.
    """
    attributes = []
    for name, value in _ATTRIBUTE.findall(_decode(raw).replace("\r\n", "\n")):
        if "\n" in value:
            value = _CONTINUATION.sub(" ", value)
        attributes.append((name.lower(), value.strip()))
    return attributes


def read_objects(stream, classes=None):
    """Each object of a binary stream as its attribute list; only objects of ``classes``
    (a set of first-attribute names such as ``{"inetnum"}``) if given."""
    wanted = None if classes is None else tuple(f"{c}:".encode() for c in classes)
    for raw in object_texts(stream):
        if wanted is not None:
            start = raw.lstrip()
            while start[:1] in (b"#", b"%"):  # comment lines before the object
                start = start.partition(b"\n")[2].lstrip()
            if not start.lower().startswith(wanted):
                continue
        attributes = parse_object(raw)
        if attributes:
            yield attributes


def strip_comment(value: str) -> str:
    """A value without its end-of-line comment (``RIPE # Filtered`` → ``RIPE``)."""
    return value.partition("#")[0].strip()


def inetnum_networks(key: str, value: str) -> list:
    """The minimal list of CIDR networks of an ``inetnum`` range ``a - b`` (or a CIDR)."""
    text = strip_comment(value)
    first, dash, last = text.partition("-")
    try:
        if not dash:
            return [ipaddress.IPv4Network(text)]
        start, end = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
    except ValueError as exc:
        raise RpslError(key, "inetnum", f"{text!r} is not an IPv4 range: {exc}") from None
    if end < start:
        raise RpslError(key, "inetnum", f"the range {text!r} ends before it starts")
    return list(ipaddress.summarize_address_range(start, end))


def inet6num_network(key: str, value: str) -> ipaddress.IPv6Network:
    text = strip_comment(value)
    try:
        return ipaddress.IPv6Network(text)
    except ValueError as exc:
        raise RpslError(key, "inet6num", f"{text!r} is not an IPv6 prefix: {exc}") from None
