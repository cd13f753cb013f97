"""A synthetic RIPE database split dump for the import benchmark (never sent anywhere).

Objects in the real dumps' shape: header comments, dummified personal attributes, the
"THIS OBJECT IS MODIFIED" remarks block on a third of the objects, repeated ``descr``,
continuation lines, ``inetnum`` ranges that are not one CIDR, ``inet6num`` prefixes. The
addresses cover the whole address space (the documentation ranges are far too small).
One resource in 1,000 refers to an organisation of a municipality, one in 2,000 names a
municipality in its ``descr`` or ``remarks``; the rest match nothing, as in the real
database, where the constituency holds a tiny share of all resources.
"""

import gzip
import random
import socket
from pathlib import Path

from intelmq_nsm.constituency import builtin_municipalities

HEADER = (
    "#\n# The contents of this file are subject to\n# RIPE Database Terms and Conditions\n#\n"
    "# http://www.ripe.net/db/support/db-terms-conditions.pdf\n#\n\n"
)
DUMMY = (
    "remarks:        ****************************\n"
    "remarks:        * THIS OBJECT IS MODIFIED\n"
    "remarks:        * Please note that all data that is generally regarded as personal\n"
    "remarks:        * data has been removed from this object.\n"
    "remarks:        * To view the original object, please query the RIPE Database at:\n"
    "remarks:        * http://www.ripe.net/whois\n"
    "remarks:        ****************************\n"
)
COUNTRIES = ("NL", "DE", "GB", "FR", "RU", "IT", "ES", "PL", "SE", "UA")
WORDS = ("Network management", "Customer LAN", "Broadband pool", "Hosting", "Datacenter", "Office", "Backbone")


def _v4(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))


def _v6(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def write_dumps(directory: Path, objects: int, seed: int = 1, ipv6_share: float = 0.2, level: int = 1) -> dict:
    """Write ``ripe.db.organisation.gz``, ``ripe.db.inetnum.gz`` and ``ripe.db.inet6num.gz``
    with ``objects`` resources in all; return the counts."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    municipalities = builtin_municipalities()
    organisations = max(1000, objects // 50)
    with gzip.open(directory / "ripe.db.organisation.gz", "wt", encoding="utf-8", compresslevel=level) as out:
        out.write(HEADER)
        for number in range(organisations):
            if number < len(municipalities):
                name = f"Gemeente {municipalities[number][1]}"
            else:
                name = f"Example Company {number} B.V."
            out.write(
                f"organisation:   ORG-E{number}-RIPE\norg-name:       {name}\norg-type:       OTHER\n"
                f"address:        Dummy address for ORG-E{number}-RIPE\ne-mail:         unread@ripe.net\n"
                f"mnt-ref:        EXAMPLE{number % 997}-MNT\nmnt-by:         EXAMPLE{number % 997}-MNT\n"
                "created:        2004-04-17T11:56:24Z\nlast-modified:  2021-06-01T08:03:21Z\n"
                "source:         RIPE # Filtered\n\n"
            )
    counts = {"organisation": organisations, "inetnum": 0, "inet6num": 0}
    files = {
        "inetnum": gzip.open(directory / "ripe.db.inetnum.gz", "wt", encoding="utf-8", compresslevel=level),
        "inet6num": gzip.open(directory / "ripe.db.inet6num.gz", "wt", encoding="utf-8", compresslevel=level),
    }
    buffers = {"inetnum": [HEADER], "inet6num": [HEADER]}
    for number in range(objects):
        cls = "inet6num" if rng.random() < ipv6_share else "inetnum"
        if cls == "inetnum":
            length = rng.choice((20, 22, 24, 24, 25, 26, 27, 28, 29))
            start = rng.getrandbits(32) >> (32 - length) << (32 - length)
            end = start + (1 << (32 - length)) - 1
            if rng.random() < 0.2:  # a range that is not one CIDR
                end = min(0xFFFFFFFF, end + (1 << (32 - length - 1)))
            key = f"{_v4(start)} - {_v4(end)}"
        else:
            length = rng.choice((32, 40, 44, 48, 48, 56, 64))
            key = f"{_v6((0x2000 << 112 | rng.getrandbits(125)) >> (128 - length) << (128 - length))}/{length}"
        draw = rng.random()
        if draw < 0.001:
            org = f"org:            ORG-E{rng.randrange(len(municipalities))}-RIPE\n"
        else:
            org = f"org:            ORG-E{rng.randrange(organisations)}-RIPE\n" if draw < 0.6 else ""
        descr = f"descr:          {rng.choice(WORDS)} {number}\n"
        if 0.001 <= draw < 0.0015:
            descr += f"descr:          Gemeente {rng.choice(municipalities)[1]}\n"
        elif draw > 0.9:
            descr += f"descr:          {rng.choice(WORDS)}\n                continued on a second line\n"
        buffers[cls].append(
            f"{cls}:{' ' * (16 - len(cls) - 1)}{key}\nnetname:        NET-{number:X}\n{descr}"
            f"country:        {rng.choice(COUNTRIES)}\n{org}admin-c:        DUMY-RIPE\ntech-c:         DUMY-RIPE\n"
            f"status:         ASSIGNED PA\nmnt-by:         EXAMPLE{number % 997}-MNT\n"
            "created:        2012-01-01T00:00:00Z\nlast-modified:  2024-01-01T00:00:00Z\n"
            f"source:         RIPE # Filtered\n{DUMMY if number % 3 == 0 else ''}\n"
        )
        counts[cls] += 1
        if len(buffers[cls]) >= 10000:
            files[cls].write("".join(buffers[cls]))
            buffers[cls] = []
    for cls, out in files.items():
        out.write("".join(buffers[cls]))
        out.close()
    return counts
