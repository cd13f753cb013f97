"""The characters that act instead of showing, in text that comes from outside.

Owners' comments, organisation names, ids, URLs and report fields reach operators'
terminals and web pages. There, C0 and C1 controls and DEL move the cursor, clear the
screen or forge a line; the bidi marks, embeddings, overrides and isolates (U+200E/F,
U+061C, U+202A-U+202E, U+2066-U+2069) reorder what follows them (an override shows
"exe.pdf" for "fdp.exe"); the line and paragraph separators (U+2028/9) break lines. Every
place that shows outside text shows these as escapes (``\\x1b``, ``\\u202e``): the
commands (:mod:`intelmq_nsm.cli.terminal`) and the feedback service's pages
(:mod:`intelmq_nsm.feedback.shown`). A leaf: it imports nothing of the package.
"""

C0 = range(0x20)
DEL = 0x7F
C1 = range(0x80, 0xA0)
#: Bidi marks, embeddings, overrides and isolates; line and paragraph separators.
INVISIBLE = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)
#: C0's named escapes.
NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_of(code: int) -> str:
    """How the character ``code`` is shown: its Python-style escape."""
    character = chr(code)
    if character in NAMED:
        return NAMED[character]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: Every character above: the code points a ``str.translate`` table needs.
ACTING = (*C0, DEL, *C1, *INVISIBLE)
