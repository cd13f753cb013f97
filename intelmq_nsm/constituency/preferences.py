"""What an organisation asks of its digests: language, channel, pace and OpenPGP key.

Registry entries may carry them (``harmonization/constituency-db.md``); the constituency
expert passes them on in ``extra.nsm.organisations`` beside the contacts, and the digest
output follows them, its own parameters being the defaults. One set of rules reads them
in both places: :func:`parse` returns the normal form and raises :class:`PreferenceError`
naming the field and the reason.
"""

import re
import zoneinfo
from pathlib import Path
from typing import Optional

LANGUAGES = ("nl", "en")
#: The channels an organisation may ask for (``mail`` is the output's ``smtp`` channel).
CHANNELS = ("mail", "rest", "file")
#: IntelMQ 3.5's severities from the lowest; ``immediate`` names the lowest that goes at once.
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_TIMEZONE = "Europe/Amsterdam"
#: The keys an organisation's entry (and its ``extra.nsm.organisations`` object) may carry.
KEYS = ("language", "channel", "pace", "openpgp")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")


class PreferenceError(ValueError):
    """``field`` of an organisation's entry is wrong for ``reason``."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def parse(record: dict, base: Optional[Path] = None, check_files: bool = True) -> dict:
    """The preferences of one organisation's entry (or its event object), in normal form;
    only the keys it sets. ``base``: the directory a relative ``openpgp.key_file`` is read
    from (the registry file's); without it the path must be absolute. ``check_files``:
    whether the key file must exist now (the registry checks; an output checks when it
    uses the key)."""
    result = {}
    if record.get("language") is not None:
        result["language"] = _choice(record["language"], "language", LANGUAGES)
    if record.get("channel") is not None:
        channel = str(record["channel"]).strip().lower()
        result["channel"] = _choice("mail" if channel == "smtp" else channel, "channel", CHANNELS)
    if record.get("pace") is not None:
        result["pace"] = pace(record["pace"])
    if record.get("openpgp") is not None:
        result["openpgp"] = openpgp(record["openpgp"], base, check_files)
    return result


def _choice(value, field: str, choices) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise PreferenceError(field, f"{value!r} is not one of {', '.join(choices)}")
    return text


def pace(value) -> dict:
    """``{"max_age": seconds}`` or ``{"daily_at": "HH:MM", "timezone": …}``, each with an
    optional ``immediate`` severity: findings of that severity or higher form digests of
    their own that go at once."""
    if not isinstance(value, dict):
        raise PreferenceError("pace", "must be a mapping such as {daily_at: '08:00', immediate: critical}")
    unknown = sorted(set(value) - {"max_age", "daily_at", "timezone", "immediate", "__line__"})
    if unknown:
        raise PreferenceError("pace", f"unknown key(s) {', '.join(unknown)}")
    if ("max_age" in value) == ("daily_at" in value):
        raise PreferenceError("pace", "give exactly one of max_age (seconds) and daily_at (HH:MM)")
    result = {}
    if "max_age" in value:
        max_age = value["max_age"]
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise PreferenceError("pace.max_age", f"{max_age!r} is not a number of seconds")
        result["max_age"] = max_age
        if "timezone" in value:
            raise PreferenceError("pace.timezone", "only goes with daily_at")
    else:
        match = _TIME.match(str(value["daily_at"]).strip())
        if not match:
            raise PreferenceError("pace.daily_at", f"{value['daily_at']!r} is not a time of day HH:MM")
        result["daily_at"] = match.group(0)
        zone = str(value.get("timezone") or DEFAULT_TIMEZONE)
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise PreferenceError("pace.timezone", f"{zone!r} is not a time zone such as Europe/Amsterdam") from None
        result["timezone"] = zone
    if value.get("immediate") is not None:
        result["immediate"] = _choice(value["immediate"], "pace.immediate", SEVERITIES)
    return result


def openpgp(value, base: Optional[Path] = None, check_files: bool = True) -> dict:
    """``{"fingerprint": 40 hex digits, "key_file": absolute path}``: the organisation's public
    key, to which its mail digests are encrypted. The file must exist; that it holds the key
    of that fingerprint is checked where the key is used (by gpg, in the digest output)."""
    if not isinstance(value, dict):
        raise PreferenceError("openpgp", "must be a mapping {fingerprint: …, key_file: …}")
    fingerprint = re.sub(r"\s+", "", str(value.get("fingerprint") or "")).upper()
    if not _FINGERPRINT.match(fingerprint):
        raise PreferenceError("openpgp.fingerprint", f"{value.get('fingerprint')!r} is not a 40-digit fingerprint")
    key_file = value.get("key_file")
    if not isinstance(key_file, str) or not key_file.strip():
        raise PreferenceError("openpgp.key_file", "names the file with the organisation's public key")
    path = Path(key_file.strip())
    if not path.is_absolute():
        if base is None:
            raise PreferenceError("openpgp.key_file", f"{key_file!r} must be an absolute path here")
        path = base / path
    if check_files and not path.is_file():
        raise PreferenceError("openpgp.key_file", f"{str(path)!r} is not a readable file")
    return {"fingerprint": fingerprint, "key_file": str(path.resolve() if check_files else path)}
