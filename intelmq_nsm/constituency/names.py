"""Recognising the registry's organisations in the free-text names of the RIPE database.

Names are compared as sequences of words: lowercase, without diacritics, apostrophes or
punctuation (``Súdwest-Fryslân`` → ``sudwest fryslan``, ``'s-Gravenhage`` →
``s gravenhage``). A municipality is recognised only where the text says it is one
("Gemeente X", "Gem. X", "Municipality of X", "X Municipality", ``GEMEENTE-X``) and only
when the words that follow the marker are the whole of a known name: the longest known
name wins, and a name never matches as a part of a word or of a longer name (Ede is not
found in "Gemeente Edam-Volendam").
"""

import re
import unicodedata
from dataclasses import dataclass

#: Words that say the name after them is a municipality's ("Gemeente Ede", "Gem. Ede").
PREFIXES = (("gemeente",), ("gem",), ("municipality", "of"), ("gemeentebestuur",), ("city", "of"))
#: Words that say the name before them is a municipality's ("Ede Municipality").
SUFFIXES = (("municipality",), ("gemeente",))
#: Other names in use for municipalities, by their official name in gemeenten.csv.
ALIASES = {
    "'s-Gravenhage": ("Den Haag", "The Hague"),
    "'s-Hertogenbosch": ("Den Bosch",),
    "Nuenen, Gerwen en Nederwetten": ("Nuenen", "Nuenen c.a."),
    "Súdwest-Fryslân": ("Sudwest Friesland", "Súdwest Fryslân"),
    "Noardeast-Fryslân": ("Noordoost-Friesland",),
    "Hengelo (O.)": ("Hengelo",),
    "Middelburg (Z.)": ("Middelburg",),
    "Rijswijk (ZH.)": ("Rijswijk",),
}
# Apostrophes of every kind vanish; any other character that is no letter or digit parts words.
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2019\u2018`\u00b4"), None)
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def words(text: str) -> tuple:
    """``"Gem. 's-Gravenhage"`` → ``("gem", "s", "gravenhage")``."""
    if text.isascii():
        plain = text.translate(_APOSTROPHES).lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
        plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return tuple(word for word in _NOT_WORD.split(plain) if word)


@dataclass(frozen=True)
class Found:
    """An organisation recognised in a text: ``whole`` if the text names nothing else."""

    organisation: str
    whole: bool
    phrase: str


class NameMatcher:
    """Finds the registry's organisations in texts.

    ``municipalities``: ``[(id, official name)]``, recognised after a municipal marker.
    ``others``: ``[(id, name)]`` of the operator's other organisations (shared services),
    recognised by their full name only.
    """

    def __init__(self, municipalities=(), others=()):
        self.municipal = {}  # words of a name → organisation id
        self.joined = {}  # the words written together ("edamvolendam"), for GEMEENTEEDAM netnames
        for ident, name in municipalities:
            for variant in (name, *ALIASES.get(name, ())):
                key = words(variant)
                if key:
                    self.municipal.setdefault(key, ident)
                    self.joined.setdefault("".join(key), ident)
        self.longest = max(map(len, self.municipal), default=0)
        self.named = {}
        for ident, name in others:
            key = words(name)
            if len(key) >= 2 or (key and len(key[0]) >= 6):  # one short word says too little
                self.named.setdefault(key, ident)

    def _name_at(self, text_words: tuple, start: int):
        """The longest municipal name starting at ``start``: ``(id, end)`` or None."""
        for end in range(min(len(text_words), start + self.longest), start, -1):
            ident = self.municipal.get(text_words[start:end])
            if ident is not None:
                return ident, end
        return None

    def find(self, text: str) -> list:
        """Every organisation named in ``text``, at most once each, in order of appearance."""
        found, seen = [], set()
        text_words = words(text)
        if not text_words:
            return found

        def add(ident, whole, first, last):
            if ident not in seen:
                seen.add(ident)
                found.append(Found(ident, whole, " ".join(text_words[first:last])))

        ident = self.named.get(text_words)
        if ident is not None:
            add(ident, True, 0, len(text_words))
        for position, word in enumerate(text_words):
            for prefix in PREFIXES:
                if text_words[position : position + len(prefix)] != prefix:
                    continue
                hit = self._name_at(text_words, position + len(prefix))
                if hit is not None:
                    ident, end = hit
                    add(ident, position == 0 and end == len(text_words), position, end)
            if word.startswith("gemeente") and len(word) > len("gemeente"):
                ident = self.joined.get(word[len("gemeente") :])  # GEMEENTEEDE: the whole rest, never a part
                if ident is not None:
                    add(ident, len(text_words) == 1, position, position + 1)
        for suffix in SUFFIXES:  # "Ede Municipality": the name must be all that comes before
            if len(text_words) > len(suffix) and text_words[-len(suffix) :] == suffix:
                ident = self.municipal.get(text_words[: -len(suffix)])
                if ident is not None:
                    add(ident, True, 0, len(text_words))
        return found
