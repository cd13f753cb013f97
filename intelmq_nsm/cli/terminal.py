"""What the ``intelmq-nsm`` commands print: text from outside is shown, never acted on.

Owners' comments, organisation names, ids, URLs, registry values, report fields and error
messages quoting them reach an operator's terminal. Printed raw, an escape sequence (ESC,
or C1's one-byte CSI and OSC) clears the screen or sets the window's title, a newline forges
a line of output ("(scan) notified -> fixed-verified"), and a bidi override shows
"exe.pdf" for "fdp.exe". Every command prints through this module, which writes control
characters (C0, DEL, C1), the bidi marks, embeddings, overrides and isolates (U+200E/F,
U+061C, U+202A-U+202E, U+2066-U+2069) and the line and paragraph separators (U+2028/9) as
escapes: ``\\x1b``, ``\\n``, ``\\u202e``.

JSON stays JSON: ``json.dumps`` escapes C0 itself, and the others become ``\\uXXXX``
escapes, which a JSON reader turns back into the same text. CSV cells are escaped as text
and kept formula-safe (:func:`intelmq_nsm.digest.render.neutralise`).
"""

import csv
import io
import json
import sys

from intelmq_nsm.controls import ACTING, C0, escape_of
from intelmq_nsm.digest.render import neutralise

#: ``str.translate`` tables: for text, every character that acts (:mod:`intelmq_nsm.controls`);
#: for JSON text (whose C0 characters outside strings are its own layout), all but C0, as
#: JSON's own ``\\uXXXX`` escapes.
_TEXT = {code: escape_of(code) for code in ACTING}
_JSON = {code: f"\\u{code:04x}" for code in ACTING if code not in C0}


def inert(value) -> str:
    """``value`` as text a terminal shows as it is: one line, no control or bidi characters."""
    return ("" if value is None else str(value)).translate(_TEXT)


def say(line="", file=None, flush: bool = False) -> None:
    """Print one line (a line break in it is shown as ``\\n``)."""
    print(inert(line), file=file or sys.stdout, flush=flush)


def warn(line) -> None:
    """Print one line to standard error."""
    say(line, file=sys.stderr)


def say_lines(text: str, file=None) -> None:
    """Print a text the package made of several lines (a digest, a summary), each line inert."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        say(line, file)


def say_json(value, **options) -> None:
    """Print ``value`` as JSON (``options`` go to ``json.dumps``; indent 2 unless given)."""
    options.setdefault("indent", 2)
    print(json.dumps(value, **options).translate(_JSON))


def say_csv(rows) -> None:
    """Write CSV, each cell inert and formula-safe: ``rows`` are lists of cells, or CSV
    text as the package renders it (a digest's, the answers')."""
    if isinstance(rows, str):
        rows = csv.reader(io.StringIO(rows, newline=""))
    out = csv.writer(sys.stdout, lineterminator="\r\n")
    for row in rows:
        out.writerow([neutralise(inert(cell)) for cell in row])


def fail(message) -> SystemExit:
    """The exit with ``message`` on standard error, inert: ``raise fail(...)``."""
    return SystemExit(inert(message))
