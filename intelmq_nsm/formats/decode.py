"""Bytes of a report → text, whatever encoding the researcher's tool wrote."""

import codecs


def decode_report(data: bytes) -> str:
    """Bytes of a report → text. A byte-order mark decides (UTF-8, UTF-16, UTF-32); without
    one UTF-8 is tried and Latin-1 is the fallback, which decodes any byte sequence, so
    that a spreadsheet's export loses no record to its encoding."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
