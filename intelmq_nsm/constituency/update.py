"""Replacing a registry with a downloaded one: fetch, validate with the other files, swap.

Plain Python (the HTTP session is handed in); the constituency expert's
``--update-database`` calls :func:`update_registry` once per bot, and the expert's reload
check compares :func:`signature` values to notice changed files.

The swap replaces one *file*: the configured registry file, or ``downloaded.<suffix>``
inside the configured directory. It goes through ``intelmq_nsm.storage.atomic_write``
(temporary file in the same folder, fsync, rename, fsync of the folder), so a running
bot's directory scan sees the old file or the whole new one, and a power loss leaves
one of the two. The download is validated from a private temporary folder before that,
never from inside the registry's folder.
"""

import tempfile
from pathlib import Path

from intelmq_nsm.storage import atomic_write

from .loader import load_registry
from .model import RegistryError
from .paths import SUFFIXES, database_paths, registry_files

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
    import requests

    target = download_target(database, url)
    try:
        response = session.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise UpdateError(f"cannot download {url}: {exc}") from None
    content = response.content
    others = [p for p in registry_files(database) if p != target]
    with tempfile.TemporaryDirectory(prefix="nsm-registry-") as folder:
        candidate = Path(folder) / target.name  # the suffix tells the loader the format
        candidate.write_bytes(content)
        try:
            load_registry([*others, candidate], include_builtin=include_builtin)
        except RegistryError as exc:
            reason = str(exc).replace(str(candidate), url)  # the operator knows the URL, not the folder
            raise UpdateError(f"the downloaded registry is invalid, {target} is unchanged: {reason}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, content)
    return target
