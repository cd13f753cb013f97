"""IntelMQ messages for tests: a report as the intake collector hands it to the parser."""

import base64


def report_message(raw, **fields) -> dict:
    """A Report of ``raw`` (bytes or text) with the intake's feed fields; ``fields`` add or override."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
    return {
        "__type": "Report",
        "feed.name": "Researcher intake",
        "feed.provider": "DIVD",
        "time.observation": "2024-04-15T09:00:00+00:00",
        "raw": base64.b64encode(data).decode("ascii"),
        **fields,
    }


def raw_of(message: dict) -> str:
    """The text of a message's base64 ``raw``."""
    return base64.b64decode(message["raw"]).decode("utf-8")
