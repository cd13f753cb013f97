"""Replacing a registry with a downloaded one: fetch, validate with the other files, swap.

Plain Python (the HTTP session is handed in); the constituency expert's
``--update-database`` calls :func:`update_registry` once per bot with a ``database_url``
and :func:`update_claims` once per bot with CERTs' ``claims`` (each CERT's file taken or
kept on its own), and the expert's reload check compares :func:`signature` values to
notice changed files.

The swap replaces one *file*: the configured registry file, or ``downloaded.<suffix>``
inside the configured directory. It goes through ``intelmq_nsm.storage.atomic_write``
(temporary file in the same folder, fsync, rename, fsync of the folder), so a running
bot's directory scan sees the old file or the whole new one, and a power loss leaves
one of the two. The download is validated from a private temporary folder before that,
never from inside the registry's folder.
"""

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

from intelmq_nsm.storage import atomic_write

from .claims import ClaimsPolicy, read_status, write_status
from .loader import load_registry
from .model import RegistryError
from .paths import SUFFIXES, database_paths, registry_files
from .registry import Registry

#: The name a download gets inside a registry directory (plus the URL's suffix).
DOWNLOADED = "downloaded"


class UpdateError(ValueError):
    """The registry could not be downloaded or the download is invalid; nothing was changed."""


def signature(database) -> tuple:
    """What a reload depends on: each registry file's name, size and mtime (cheap stat calls)."""
    result = []
    for path in registry_files(database):
        try:
            stat = path.stat()
        except OSError:
            result.append((str(path), None, None))
        else:
            result.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(result)


def download_target(database, url: str) -> Path:
    """The file a download from ``url`` replaces: the database file itself, or
    ``downloaded.<suffix>`` in the database directory (``.yaml`` if the URL names no known suffix)."""
    paths = database_paths(database)
    if len(paths) != 1:
        raise UpdateError("database_url needs the parameter database to be one file or one directory")
    if paths[0].is_dir():
        suffix = Path(url.split("?", 1)[0]).suffix.lower()
        return paths[0] / f"{DOWNLOADED}{suffix if suffix in SUFFIXES else '.yaml'}"
    return paths[0]


def update_registry(session, url: str, database, include_builtin: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` into ``database`` (see :func:`download_target`) if the registry it
    forms with the database's other files is valid; return the file written.

    ``session`` is a ``requests`` session (IntelMQ's ``create_request_session`` in the bot).
    Raises UpdateError, leaving every file as it was, when the download fails or is invalid."""
    target = download_target(database, url)
    content = download(session, url, timeout)
    try:
        _checked(content, target, database, url, lambda candidate: {"include_builtin": include_builtin})
    except UpdateError as exc:
        raise UpdateError(f"the downloaded registry is invalid, {target} is unchanged: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, content)
    return target


def update_claims(session, sources, database, include_builtin: bool = True, timeout: float = 60, now=None) -> list:
    """Download each CERT's claims (``sources``, ``claims.ClaimsSource``) into the hub's
    registry directory ``database``; return ``[(source, status), ...]`` (``claims.write_status``).

    Each download is taken on its own: it replaces the CERT's claims file (atomically) only
    if it was downloaded whole, within the source's size cap, is a valid claims file of the
    constituency that source speaks for, is no older than the claims in use, and forms a
    valid registry with the hub's other files. Otherwise the CERT's claims in use stay, the
    status beside them says why, and the other CERTs' claims are still taken."""
    policy = ClaimsPolicy(sources)
    results = []
    for source in sources:
        try:
            in_use = _take_claims(session, source, policy, database, include_builtin, timeout)
        except (UpdateError, OSError) as exc:
            results.append((source, write_status(source, False, str(exc), now=now)))
        else:
            results.append((source, write_status(source, True, in_use=in_use, now=now)))
    return results


def _take_claims(session, source, policy: ClaimsPolicy, database, include_builtin: bool, timeout: float) -> dict:
    content = download(session, source.url, timeout, source.max_size)

    def options(candidate):
        return {"include_builtin": include_builtin, "claims": policy.reading(source, candidate)}

    registry = _checked(content, source.path, database, source.url, options)
    header = registry.claims[source.key]  # the policy requires a claims header of the source's key
    in_use = (read_status(source.path) or {}).get("in_use") or {}
    if source.path.exists() and in_use.get("exported_at") and _later(in_use["exported_at"], header["exported_at"]):
        raise UpdateError(
            f"the claims were exported at {header['exported_at']}, before the claims in use "
            f"({in_use['exported_at']}): an old file served again is not taken"
        )
    source.path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(source.path, content)
    return {"exported_at": header["exported_at"], "version": header.get("version")}


def _later(first: str, second: str) -> bool:
    """Whether the ISO time ``first`` lies after ``second``."""
    return datetime.fromisoformat(first) > datetime.fromisoformat(second)


def download(session, url: str, timeout: float, max_size: Optional[int] = None) -> bytes:
    """The body at ``url``, whole: a transfer cut short, an HTTP error status, more than
    ``max_size`` bytes or more than ``timeout`` seconds in all raise UpdateError."""
    import requests

    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    try:
        with session.get(url, timeout=timeout, stream=True) as response:
            response.raise_for_status()
            declared = response.headers.get("Content-Length", "")
            if max_size is not None and declared.isdigit() and int(declared) > max_size:
                raise UpdateError(f"{url} is {int(declared)} bytes, more than the cap of {max_size}")
            for chunk in response.iter_content(1 << 16):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise UpdateError(f"{url} is more than the cap of {max_size} bytes")
                if time.monotonic() > deadline:
                    raise UpdateError(f"{url} took more than {timeout:g} s to download")
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise UpdateError(f"cannot download {url}: {exc}") from None
    return b"".join(chunks)


def _checked(content: bytes, target: Path, database, url: str, options) -> Registry:
    """The registry ``content`` forms, as ``target``, with the database's other files;
    checked from a private temporary folder. ``options(candidate path)``: the loader's
    options. Raises UpdateError naming every problem (the download named by its URL)."""
    others = [p for p in registry_files(database) if p.absolute() != target.absolute()]
    with tempfile.TemporaryDirectory(prefix="nsm-registry-") as folder:
        candidate = Path(folder) / target.name  # the suffix tells the loader the format
        candidate.write_bytes(content)
        try:
            return load_registry([*others, candidate], **options(candidate))
        except RegistryError as exc:
            raise UpdateError(str(exc).replace(str(candidate), url)) from None  # the operator knows the URL
