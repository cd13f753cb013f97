"""Researcher tokens: a file of salted scrypt hashes, never the tokens themselves.

A token looks like ``nsm_<id>_<secret>``: ``id`` (8 hex digits) is not secret and finds
the entry without hashing every entry; ``secret`` (32 random bytes, URL-safe base64) is
checked against the entry's scrypt hash with a constant-time compare; an unknown id is
checked against a dummy hash of the same cost, so that the time taken tells nothing
about which ids exist. A token may carry an expiry. The file is JSON, or YAML when its
name ends in ``.yaml``/``.yml``, and is written atomically (temporary file, fsync,
rename) under an exclusive lock: a new file with mode 0600, an existing one keeping its
owner and mode.
"""

import concurrent.futures
import contextlib
import datetime
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import yaml

from intelmq_nsm import storage

TOKEN_PATTERN = re.compile(r"^nsm_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
FEED_CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: A constituency key a CERT's token is bound to (a hub's ``POST /v1/outcomes``).
CONSTITUENCY_PATTERN = FEED_CODE_PATTERN
FILE_VERSION = 1
# scrypt's cost: ~30 ms per check on a small machine. Tokens are random 256-bit secrets,
# so the hash mainly protects a stolen token file; verified tokens are cached in memory.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class TokenFileError(ValueError):
    """The token file cannot be read or does not hold what it should."""


class VerifierBusy(RuntimeError):
    """Too many token checks wait for the hash: the request should be tried again later."""


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
    #: ISO 8601 time from which the token is no longer accepted (None: no expiry).
    expires: Optional[str] = None
    #: A downstream CERT's token at a hub: the constituency key it speaks for (``ibd``); it
    #: may report changes only of the findings the hub forwarded to that constituency.
    constituency: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.revoked is None and not self.expired()

    def expired(self, now: Optional[datetime.datetime] = None) -> bool:
        if self.expires is None:
            return False
        return (now or datetime.datetime.now(datetime.timezone.utc)) >= parse_time(self.expires)


_KEYS = {f.name for f in fields(TokenEntry)}


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 date or time; a date means its start, a time without zone means UTC."""
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _hash(secret: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(
        secret.encode("ascii"), salt=salt, n=params["n"], r=params["r"], p=params["p"], dklen=params["dklen"]
    )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def _entry(path: Path, number: int, item) -> TokenEntry:
    where = f"Entry {number} of the token file {path}"
    if not isinstance(item, dict):
        raise TokenFileError(f"{where} is not a mapping.")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise TokenFileError(f"{where} has unknown key(s) {', '.join(unknown)}: is it from a newer version?")
    try:
        entry = TokenEntry(**item)
    except TypeError as exc:
        raise TokenFileError(f"{where} is not valid: {exc}.") from None
    if entry.expires is not None:
        try:
            parse_time(str(entry.expires))
        except ValueError:
            raise TokenFileError(f"{where} has an expiry that is not an ISO 8601 time: {entry.expires!r}.") from None
        entry.expires = str(entry.expires)
    if entry.constituency is not None and not CONSTITUENCY_PATTERN.match(str(entry.constituency)):
        raise TokenFileError(f"{where} has a constituency that is not a constituency key: {entry.constituency!r}.")
    return entry


def read_entries(path) -> list:
    """The entries of a token file; a missing file has none."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TokenFileError(f"The token file {path} cannot be read: {reason}.") from None
    try:
        data = yaml.safe_load(text) if _is_yaml(path) else json.loads(text or "{}")
    except (ValueError, yaml.YAMLError) as exc:
        raise TokenFileError(f"The token file {path} cannot be parsed: {exc}.") from None
    data = data or {}
    if not isinstance(data, dict) or not isinstance(data.get("tokens", []), list):
        raise TokenFileError(f"The token file {path} has no list 'tokens'.")
    return [_entry(path, number, item) for number, item in enumerate(data.get("tokens", []), 1)]


def write_entries(path, entries: list) -> None:
    """Replace the token file atomically: readers see the old or the new file, never half.
    A new file gets mode 0600; a file that exists keeps its owner and mode (a file
    rewritten by root stays readable by the bots' user)."""
    path = Path(path)
    data = {"version": FILE_VERSION, "tokens": [_stored(entry) for entry in entries]}
    text = yaml.safe_dump(data, sort_keys=False) if _is_yaml(path) else json.dumps(data, indent=2) + "\n"
    storage.atomic_write(path, text, mode=None if path.exists() else 0o600)


def _stored(entry: TokenEntry) -> dict:
    # No expiry (constituency), no key: a file without them stays readable by versions before them.
    data = asdict(entry)
    for key in ("expires", "constituency"):
        if data[key] is None:
            del data[key]
    return data


@contextlib.contextmanager
def _locked(path: Path):
    # A lock file beside the token file: two `tokens add` at once must not lose one entry.
    # Created by root for a file of the bots' user, it goes to that user too.
    lock_path = path.with_name(path.name + ".lock")
    created = not lock_path.exists()
    with open(lock_path, "a") as lock:
        if created and path.exists() and os.geteuid() == 0:
            owner = path.stat()
            with contextlib.suppress(OSError):
                os.chown(lock_path, owner.st_uid, owner.st_gid)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add_token(
    path,
    researcher: str,
    feed_codes: list,
    feed_name: Optional[str] = None,
    comment: str = "",
    expires: Optional[str] = None,
    constituency: Optional[str] = None,
) -> tuple:
    """Create a token for ``researcher``: returns ``(entry, token)``; the token is shown once.
    With ``constituency``, a downstream CERT's token at a hub, bound to that constituency key
    (its feed codes default to the key)."""
    path = Path(path)
    if not researcher.strip():
        raise ValueError("The researcher's name is empty.")
    if constituency is not None:
        if not CONSTITUENCY_PATTERN.match(constituency):
            raise ValueError(
                f"Constituency {constituency!r} is not a key: use lower-case letters, digits, '-' and '_'."
            )
        feed_codes = list(feed_codes or [constituency])
    if not feed_codes:
        raise ValueError("A token needs at least one feed code.")
    for code in feed_codes:
        if not FEED_CODE_PATTERN.match(code):
            raise ValueError(f"Feed code {code!r} is not valid: use lower-case letters, digits, '-' and '_'.")
    if expires is not None:
        try:
            expires = parse_time(expires).isoformat()
        except ValueError:
            raise ValueError(f"The expiry {expires!r} is not an ISO 8601 date or time (e.g. 2027-01-31).") from None
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
            expires=expires,
            constituency=constituency,
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
    """Checks bearer tokens against a token file, re-reading it when it changes.

    A file that cannot be read or holds something wrong makes :attr:`problem` say why and
    :meth:`verify` raise :class:`TokenFileError` until it is mended: no token is accepted
    from a file that may have lost a revocation. At most ``max_hashing`` hashes run at
    once; a check that waits longer than ``hash_wait`` seconds raises :class:`VerifierBusy`.
    """

    def __init__(self, path, max_hashing: int = 2, hash_wait: float = 10.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = None
        self._entries = {}
        self.problem: Optional[str] = None
        # Tokens already verified, keyed by an HMAC under a key that lives only in this
        # process: scrypt runs once per token, not once per request.
        self._cache_key = secrets.token_bytes(32)
        self._verified = {}
        # Hashes run in threads of their own: scrypt's 16 MiB come from these threads'
        # allocator arenas only, and at most ``max_hashing`` of them are in use at once.
        self._hashing = concurrent.futures.ThreadPoolExecutor(max(1, max_hashing), thread_name_prefix="nsm-token-hash")
        self._hash_wait = hash_wait
        # An unknown id costs the same hash as a real entry (with a salt of its own); what
        # the hash is compared with cannot match, so none is computed in advance.
        self._dummy_salt = secrets.token_bytes(16)
        self.reload()

    def reload(self) -> None:
        """Read the file again if it changed (by inode, size and modification time)."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            stamp = ("error", str(exc))
        with self._lock:
            if stamp == self._stamp and self._stamp is not None:
                return
            try:
                entries = {entry.id: entry for entry in read_entries(self.path)}
            except TokenFileError as exc:
                self._entries, self._stamp, self._verified, self.problem = {}, stamp, {}, str(exc)
                return
            # Verified tokens stay verified while their entry's hash is the same.
            verified = {
                key: token_id
                for key, token_id in self._verified.items()
                if token_id in entries
                and token_id in self._entries
                and entries[token_id].hash == self._entries[token_id].hash
            }
            self._entries, self._stamp, self._verified, self.problem = entries, stamp, verified, None

    def check_file(self) -> Optional[str]:
        """The token file's problem after re-reading it if it changed, None when it is fine."""
        self.reload()
        return self.problem

    def is_verified(self, token: Optional[str]) -> bool:
        """Whether ``token`` was verified before (no hash needed); quick, never blocks for long."""
        if not token or not TOKEN_PATTERN.match(token):
            return False
        cache_key = hmac.new(self._cache_key, token.encode(), "sha256").digest()
        with self._lock:
            return cache_key in self._verified

    @staticmethod
    def token_id(token: Optional[str]) -> Optional[str]:
        """The id part of a well-formed token (not secret), else None."""
        match = TOKEN_PATTERN.match(token or "")
        return match.group(1) if match else None

    def standing(self, token_id: str) -> tuple:
        """``(entry, None)`` while the token ``token_id`` is valid, by the file as it is now
        (re-read if it changed); else ``(None, reason)``. For what outlives one request (an
        operator's session): the secret was checked when it began, its standing is checked
        on every request. Raises TokenFileError while the file cannot be used."""
        problem = self.check_file()
        if problem:
            raise TokenFileError(problem)
        with self._lock:
            entry = self._entries.get(token_id)
        if entry is None:
            return None, "The token is no longer in the token file."
        if entry.revoked is not None:
            return None, "The token was revoked."
        if entry.expired():
            return None, "The token has expired."
        return entry, None

    def verify(self, token: Optional[str], admit=None) -> tuple:
        """``(entry, None)`` for a valid token, else ``(None, reason)`` with a sentence for the
        client. ``admit(token_id)`` is called before a hash is computed and may refuse."""
        if not token:
            return None, "An Authorization header with a Bearer token is required."
        match = TOKEN_PATTERN.match(token)
        if not match:
            return None, "The token is not valid."
        problem = self.check_file()
        if problem:
            raise TokenFileError(problem)
        token_id, secret = match.groups()
        cache_key = hmac.new(self._cache_key, token.encode(), "sha256").digest()
        with self._lock:
            entry = self._entries.get(token_id)
            cached = self._verified.get(cache_key)
        if cached is None or entry is None:
            if admit is not None:
                admit(token_id)
            if entry is None:
                salt, params, expected = self._dummy_salt, _SCRYPT, b""
            else:
                salt, params, expected = bytes.fromhex(entry.salt), entry.scrypt, bytes.fromhex(entry.hash)
            future = self._hashing.submit(_hash, secret, salt, params)
            try:
                matches = hmac.compare_digest(future.result(timeout=self._hash_wait), expected)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise VerifierBusy("Too many token checks at once.") from None
            if entry is None or not matches:
                return None, "The token is not valid."
            with self._lock:
                self._verified[cache_key] = token_id
        if entry.revoked is not None:
            return None, "The token was revoked."
        if entry.expired():
            return None, "The token has expired."
        return entry, None
