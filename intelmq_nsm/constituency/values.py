"""Parsing and normalising the values the registry and events carry: networks, IPs, domains, URLs, ASNs.

Hand-rolled on ``socket.inet_pton`` rather than ``ipaddress`` because the registry loads
a million networks and ``ipaddress`` costs several microseconds per value.
"""

import re
import socket
import time
from datetime import date
from typing import Optional
from urllib.parse import urlsplit

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_V4_MAPPED = (0xFFFF << 32, (1 << 128) - (1 << 32))  # ::ffff:0:0/96 as (start, mask of the prefix)
_ASN = re.compile(r"^(?:as)?(\d{1,10})$", re.IGNORECASE)


def parse_network(text: str):
    """``"192.0.2.0/24"`` → ``(4, start as int, 24)``; raises ValueError naming the problem.

    A bare address is a host network (/32 or /128). Host bits set is an error: it usually
    means a typo, and silently widening or narrowing it would route the wrong systems.
    """
    address, slash, length = text.strip().partition("/")
    if ":" in address:
        family, bits, version = socket.AF_INET6, 128, 6
    else:
        family, bits, version = socket.AF_INET, 32, 4
    try:
        start = int.from_bytes(socket.inet_pton(family, address), "big")
    except OSError:
        raise ValueError(f"{address!r} is not an IPv{version} address") from None
    if slash:
        if not length.isdigit() or int(length) > bits:
            raise ValueError(f"prefix length {length!r} is not a number from 0 to {bits}")
        prefixlen = int(length)
    else:
        prefixlen = bits
    if start & ((1 << (bits - prefixlen)) - 1):
        raise ValueError(f"host bits are set in {text.strip()!r}")
    return version, start, prefixlen


_LENGTHS = {4: {str(n): n for n in range(33)}, 6: {str(n): n for n in range(129)}}
_HOST_BITS = {4: [(1 << (32 - n)) - 1 for n in range(33)], 6: [(1 << (128 - n)) - 1 for n in range(129)]}


def parse_normal_network(text: str):
    """``(4 or 6, start, prefixlen)`` for a network written in normal form (as
    ``format_network`` writes it, with a prefix length), else None.

    The short path for bulk registries: a few C calls, no message. Anything it declines,
    ``parse_network`` reads (or rejects, naming the problem) and ``format_network`` normalises.
    """
    address, _, length = text.partition("/")
    try:
        start, version = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"), 4
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, address)
        except OSError:
            return None
        if socket.inet_ntop(socket.AF_INET6, packed) != address:  # uppercase or not compressed
            return None
        start, version = int.from_bytes(packed, "big"), 6
    prefixlen = _LENGTHS[version].get(length)
    if prefixlen is None or start & _HOST_BITS[version][prefixlen]:
        return None
    return version, start, prefixlen


def format_network(version: int, start: int, prefixlen: int) -> str:
    if version == 4:
        return f"{socket.inet_ntop(socket.AF_INET, start.to_bytes(4, 'big'))}/{prefixlen}"
    return f"{socket.inet_ntop(socket.AF_INET6, start.to_bytes(16, 'big'))}/{prefixlen}"


def parse_ip(text: str):
    """An event's IP → ``(4 or 6, int)``, or None if it is not an address.

    IPv4-mapped IPv6 (``::ffff:192.0.2.1``) is looked up as the IPv4 address it carries.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text.partition("%")[0]), "big")
    except OSError:
        return None
    if value & _V4_MAPPED[1] == _V4_MAPPED[0]:
        return 4, value & 0xFFFFFFFF
    return 6, value


def normalise_domain(text: str) -> str:
    """Lowercase, no trailing dot, IDNA (punycode) form; raises ValueError if it is no domain name."""
    name = text.strip().rstrip(".").lower()
    if not name:
        raise ValueError("the domain name is empty")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"{text!r} is not a valid internationalised domain name: {exc}") from None
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{text!r} is not a valid domain name")
    return name


def parents(name: str):
    """The domains above ``name``, nearest first: ``a.b.example`` → ``b.example``, ``example``."""
    dot = name.find(".")
    while dot >= 0:
        yield name[dot + 1 :]
        dot = name.find(".", dot + 1)


def url_host(url: str) -> Optional[str]:
    """The host of a URL, without userinfo, port or brackets; None if there is none."""
    text = url.strip()
    if "//" not in text:
        text = "//" + text  # IntelMQ accepts URLs without a scheme in some feeds
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    return host or None


def parse_asn(value) -> int:
    """``64496``, ``"64496"`` or ``"AS64496"`` → 64496; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an AS number")
    if isinstance(value, int):
        number = value
    else:
        match = _ASN.match(str(value).strip())
        if not match:
            raise ValueError(f"{value!r} is not an AS number")
        number = int(match.group(1))
    if not 0 < number < 2**32:
        raise ValueError(f"AS number {number} is out of range")
    return number


_EPOCH = date(1970, 1, 1).toordinal()


def utc_today() -> date:
    """Today in UTC, the day ``valid_from`` and ``valid_until`` are compared with.

    One clock for loading and routing, whatever the host's time zone; and cheap (no time
    zone look-up), as the expert asks for every event.
    """
    return date.fromordinal(_EPOCH + int(time.time()) // 86400)
