"""The Traffic Light Protocol 2.0 (FIRST, 2022): its labels, their order, what each allows.

IntelMQ 3.5's ``tlp`` field knows the TLP 1.0 names only (WHITE, GREEN, AMBER, RED), so a
finding carries both: ``tlp`` in 1.0 for IntelMQ's own bots, and ``extra.nsm.tlp`` with the
2.0 name, which keeps CLEAR and AMBER+STRICT apart from WHITE and AMBER. Everything
intelmq-nsm shows a person (digests: subject, text, JSON, CSV name) uses the 2.0 name.
See ``harmonization/tlp.md``.
"""

from collections.abc import Iterable
from typing import Optional

#: The TLP 2.0 labels from the least to the most restrictive.
LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
#: What a finding without a TLP of its own is, unless an output says otherwise.
DEFAULT = "AMBER"
#: The 2.0 label of each 1.0 name that differs (IntelMQ's field speaks 1.0).
FROM_1_0 = {"WHITE": "CLEAR"}
#: IntelMQ's 1.0 name of each 2.0 label that differs. AMBER+STRICT has no 1.0 name: TLP 1.0's
#: AMBER (sharing limited to the recipients' organisations) is what it became in 2.0.
TO_1_0 = {"CLEAR": "WHITE", "AMBER+STRICT": "AMBER"}

#: One sentence per label and language: what a receiver may do with what it got (FIRST's
#: definitions, shortened).
ALLOWS = {
    "en": {
        "CLEAR": "Recipients may share this information without limit.",
        "GREEN": "Recipients may share this within their community (peers and partner organisations),"
        " not through publicly accessible channels.",
        "AMBER": "Recipients may share this only on a need-to-know basis within their own organisation"
        " and with its clients who need it to protect themselves.",
        "AMBER+STRICT": "Recipients may share this only on a need-to-know basis within their own organisation.",
        "RED": "For the named recipients only: do not share this with anyone else.",
    },
    "nl": {
        "CLEAR": "Ontvangers mogen deze informatie onbeperkt delen.",
        "GREEN": "Ontvangers mogen dit delen binnen hun gemeenschap (vakgenoten en partnerorganisaties),"
        " niet via openbare kanalen.",
        "AMBER": "Ontvangers mogen dit alleen delen met wie het moet weten binnen hun eigen organisatie"
        " en met haar klanten die het nodig hebben om zich te beschermen.",
        "AMBER+STRICT": "Ontvangers mogen dit alleen delen met wie het moet weten binnen hun eigen organisatie.",
        "RED": "Alleen voor de genoemde ontvangers: deel dit met niemand anders.",
    },
}


def normalise(value) -> str:
    """The 2.0 label of ``value`` (``amber``, ``TLP:AMBER``, ``tlp:amber+strict``, the 1.0
    ``WHITE``); raises ValueError naming the value for anything else."""
    text = str(value or "").strip().upper()
    if text.startswith("TLP:"):
        text = text[4:].strip()
    text = FROM_1_0.get(text, text)
    if text not in LEVELS:
        raise ValueError(f"{value!r} is not a TLP label (one of {', '.join(LEVELS)}, or WHITE)")
    return text


def to_intelmq(value) -> str:
    """IntelMQ's 1.0 name for a label (CLEAR → WHITE, AMBER+STRICT → AMBER)."""
    label = normalise(value)
    return TO_1_0.get(label, label)


def strictest(values: Iterable, default: str = DEFAULT) -> str:
    """The most restrictive of ``values`` (2.0 or 1.0 names); ``default`` if there are none."""
    labels = [normalise(v) for v in values if v]
    return max(labels, key=LEVELS.index) if labels else normalise(default)


def of(tlp_2: Optional[str], tlp_1: Optional[str], default: str = DEFAULT) -> str:
    """A finding's label: its 2.0 name if it has one, else its IntelMQ (1.0) ``tlp``, else ``default``."""
    for value in (tlp_2, tlp_1):
        if value:
            return normalise(value)
    return normalise(default)


def label(value) -> str:
    """``TLP:AMBER``: how the label is written in a subject, a first line, a file name."""
    return f"TLP:{normalise(value)}"


def sentence(value, language: str) -> str:
    """What the label allows, in ``language`` (nl or en)."""
    return ALLOWS[language][normalise(value)]
