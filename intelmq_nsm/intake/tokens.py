"""Researcher tokens: a file of salted scrypt hashes, never the tokens themselves.

A token looks like ``nsm_<id>_<secret>``: ``id`` (8 hex digits) is not secret and finds
the entry without hashing every entry; ``secret`` (32 random bytes, URL-safe base64) is
checked against the entry's scrypt hash with a constant-time compare. The file is JSON,
or YAML when its name ends in ``.yaml``/``.yml``, and is written atomically (temporary
file, fsync, rename) under an exclusive lock, with mode 0600.
"""

import contextlib
import datetime
import fcntl
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from intelmq_nsm import storage

TOKEN_PATTERN = re.compile(r"^nsm_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
FEED_CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
FILE_VERSION = 1
# scrypt's cost: ~30 ms per check on a small machine. Tokens are random 256-bit secrets,
# so the hash mainly protects a stolen token file; verified tokens are cached in memory.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class TokenFileError(ValueError):
    """The token file cannot be read or does not hold what it should."""


@dataclass
class TokenEntry:
    """One researcher organisation's token, as stored (the hash, not the token)."""

    id: str
    researcher: str
    feed_name: str
    feed_codes: list
    salt: str
    hash: str
    created: str
    revoked: Optional[str] = None
    comment: str = ""
    scrypt: dict = field(default_factory=lambda: dict(_SCRYPT))

    @property
    def active(self) -> bool:
        return self.revoked is None


def _hash(secret: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(
        secret.encode("ascii"), salt=salt, n=params["n"], r=params["r"], p=params["p"], dklen=params["dklen"]
    )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def read_entries(path) -> list:
    """The entries of a token file; a missing file has none."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = yaml.safe_load(text) if _is_yaml(path) else json.loads(text or "{}")
    except (ValueError, yaml.YAMLError) as exc:
        raise TokenFileError(f"The token file {path} cannot be parsed: {exc}.") from None
    data = data or {}
    if not isinstance(data, dict) or not isinstance(data.get("tokens", []), list):
        raise TokenFileError(f"The token file {path} has no list 'tokens'.")
    entries = []
    for number, item in enumerate(data.get("tokens", []), 1):
        try:
            entries.append(TokenEntry(**item))
        except TypeError as exc:
            raise TokenFileError(f"Entry {number} of the token file {path} is not valid: {exc}.") from None
    return entries


def write_entries(path, entries: list) -> None:
    """Replace the token file atomically: readers see the old or the new file, never half.
    A new file gets mode 0600; a file that exists keeps its owner and mode (a file
    rewritten by root stays readable by the bots' user)."""
    path = Path(path)
    data = {"version": FILE_VERSION, "tokens": [asdict(entry) for entry in entries]}
    text = yaml.safe_dump(data, sort_keys=False) if _is_yaml(path) else json.dumps(data, indent=2) + "\n"
    storage.atomic_write(path, text, mode=None if path.exists() else 0o600)


@contextlib.contextmanager
def _locked(path: Path):
    # A lock file beside the token file: two `tokens add` at once must not lose one entry.
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add_token(path, researcher: str, feed_codes: list, feed_name: Optional[str] = None, comment: str = "") -> tuple:
    """Create a token for ``researcher``: returns ``(entry, token)``; the token is shown once."""
    path = Path(path)
    if not researcher.strip():
        raise ValueError("The researcher's name is empty.")
    if not feed_codes:
        raise ValueError("A token needs at least one feed code.")
    for code in feed_codes:
        if not FEED_CODE_PATTERN.match(code):
            raise ValueError(f"Feed code {code!r} is not valid: use lower-case letters, digits, '-' and '_'.")
    with _locked(path):
        entries = read_entries(path)
        taken = {entry.id for entry in entries}
        token_id = secrets.token_hex(4)
        while token_id in taken:
            token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        entry = TokenEntry(
            id=token_id,
            researcher=researcher.strip(),
            feed_name=(feed_name or researcher).strip(),
            feed_codes=list(feed_codes),
            salt=salt.hex(),
            hash=_hash(secret, salt, _SCRYPT).hex(),
            created=_now(),
            comment=comment,
        )
        write_entries(path, [*entries, entry])
    return entry, f"nsm_{token_id}_{secret}"


def revoke_token(path, token_id: str) -> TokenEntry:
    """Mark a token revoked (the entry stays, so that the log's token ids keep their meaning)."""
    path = Path(path)
    with _locked(path):
        entries = read_entries(path)
        for entry in entries:
            if entry.id == token_id:
                if entry.revoked is None:
                    entry.revoked = _now()
                    write_entries(path, entries)
                return entry
    raise KeyError(f"There is no token with id {token_id!r} in {path}.")


class TokenVerifier:
    """Checks bearer tokens against a token file, re-reading it when it changes."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = None
        self._entries = {}
        # Tokens already verified, keyed by an HMAC under a key that lives only in this
        # process: scrypt runs once per token, not once per request.
        self._cache_key = secrets.token_bytes(32)
        self._verified = {}
        self.reload()

    def reload(self) -> None:
        """Read the file again if it changed (by inode, size and modification time)."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp and self._stamp is not None:
                return
            entries = {entry.id: entry for entry in read_entries(self.path)}
            self._entries, self._stamp, self._verified = entries, stamp, {}

    def verify(self, token: Optional[str]) -> tuple:
        """``(entry, None)`` for a valid token, else ``(None, reason)`` with a sentence for the client."""
        if not token:
            return None, "An Authorization header with a Bearer token is required."
        match = TOKEN_PATTERN.match(token)
        if not match:
            return None, "The token is not valid."
        self.reload()
        token_id, secret = match.groups()
        with self._lock:
            entry = self._entries.get(token_id)
            cached = self._verified.get(hmac.new(self._cache_key, token.encode(), "sha256").digest())
        if entry is None:
            return None, "The token is not valid."
        if cached is None:
            expected = bytes.fromhex(entry.hash)
            if not hmac.compare_digest(_hash(secret, bytes.fromhex(entry.salt), entry.scrypt), expected):
                return None, "The token is not valid."
            with self._lock:
                self._verified[hmac.new(self._cache_key, token.encode(), "sha256").digest()] = token_id
        if not entry.active:
            return None, "The token was revoked."
        return entry, None
