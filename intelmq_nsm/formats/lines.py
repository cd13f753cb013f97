"""Lazy line iteration over a report's text: no list of all lines, no copy of the text."""

from collections.abc import Iterator


def iter_lines(text: str) -> Iterator:
    """Yield the lines of ``text`` with their line ending ("\\n" or "\\r\\n") kept."""
    start, end = 0, len(text)
    while start < end:
        newline = text.find("\n", start)
        stop = end if newline < 0 else newline + 1
        yield text[start:stop]
        start = stop


class LineTap:
    """An iterator over lines that remembers the lines consumed since the last ``take()``,
    so that a reader pulling lines (the csv module, for a quoted field with newlines)
    can be asked for the exact raw text of the record it just returned."""

    def __init__(self, lines: Iterator):
        self._lines = lines
        self._taken = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        return line

    def take(self) -> str:
        raw, self._taken = "".join(self._taken), []
        return raw
