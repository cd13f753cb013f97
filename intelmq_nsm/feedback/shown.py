"""Outside text on the service's pages: shown, never acted on, never setting the layout.

What comes from outside (an owner's comment, organisation names, targets, case ids, the
digest's facts, delivery errors) goes through the templates' ``shown`` filter:

- escaped as all HTML of the service is (autoescape): markup stays text;
- each character that acts instead of showing (:mod:`intelmq_nsm.controls`: C0, DEL, C1,
  bidi marks, embeddings, overrides, isolates, line and paragraph separators) is shown as
  its escape in a ``<span class="control">`` (``\\u202e``): a right-to-left override shows
  as what it is and reorders nothing; tab, line feed and carriage return stay (on a page
  they are white space);
- the whole value in a ``<bdi>``, so that right-to-left text of its own (an Arabic or
  Hebrew name) keeps its order without turning the text around it.

Long unbroken words wrap by the stylesheet (``overflow-wrap: anywhere``). For attribute
values, where no markup can stand, ``shown_text`` gives the escapes without the markup.
"""

import re

import markupsafe

from intelmq_nsm.controls import ACTING, NAMED, escape_of

#: Characters of the value that are replaced (tab, LF and CR stay: white space on a page).
_REPLACED = "".join(chr(code) for code in ACTING if chr(code) not in NAMED)
_SPLIT = re.compile(f"([{re.escape(_REPLACED)}])")
_AS_TEXT = str.maketrans({c: escape_of(ord(c)) for c in _REPLACED})
_CONTROL = markupsafe.Markup('<span class="control">{}</span>')
_ISOLATED = markupsafe.Markup("<bdi>{}</bdi>")


def shown(value) -> markupsafe.Markup:
    """``value`` as inert HTML, isolated in a ``<bdi>`` (None or "": nothing)."""
    if value is None or value == "":
        return markupsafe.Markup()
    # Split at the acting characters: the text between is escaped, each of them is shown.
    pieces = _SPLIT.split(str(value))
    parts = [_CONTROL.format(escape_of(ord(piece))) if n % 2 else piece for n, piece in enumerate(pieces) if piece]
    return _ISOLATED.format(markupsafe.Markup().join(parts))


def shown_text(value) -> str:
    """``value`` for an attribute: the acting characters as escapes (autoescape does the rest)."""
    return "" if value is None else str(value).translate(_AS_TEXT)
