"""Loading a constituency registry from YAML, JSON and CSV files: the order of the work.

A registry may be split over several files; they are read in the order given and form
one registry. ``load_registry`` either returns a complete, valid ``Registry`` or raises
``RegistryError`` listing every problem with its file, line (or row, or JSON path),
field and reason, so that a broken file can never replace a good registry in memory.

Which files (``paths.py``), how a file is parsed (``documents.py``, ``csv_file.py``),
how a record is checked (``records.py``), what records say of each other
(``references.py``) and what a registry holds (``registry.py``) each have their module.
A hub reads its CERTs' claims files among its registry files, under its ``ClaimsPolicy``
(``claims.py``): which file is whose claims, and what each may claim.
"""

import contextlib
import gc
from datetime import date
from pathlib import Path
from typing import Optional

from .builtin import add_builtin
from .claims import ClaimsPolicy
from .csv_file import read_csv_file
from .documents import read_document_file
from .model import Issues, RegistryError
from .paths import registry_files
from .records import RecordReader
from .references import check_references, check_shared
from .registry import Registry
from .values import utc_today


def load_registry(
    paths, include_builtin: bool = True, today: Optional[date] = None, claims: Optional[ClaimsPolicy] = None
) -> Registry:
    """Read, validate and index the registry in ``paths`` (files or directories).

    ``include_builtin`` adds the 342 municipalities to the ``ibd`` constituency. ``claims``:
    a hub's claims sources; without it a claims file speaks for the constituency it
    declares. Returns the Registry (its ``issues`` holds the warnings); raises
    RegistryError on any error.
    """
    with _collector_paused():
        return _load(paths, include_builtin, today or utc_today(), claims)


@contextlib.contextmanager
def _collector_paused():
    """Loading makes millions of objects that live on and no reference cycles; with the
    garbage collector on, its full collections would walk the growing registry over and
    over (a quarter of the load time of a million networks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(paths, include_builtin: bool, today: date, claims: Optional[ClaimsPolicy]) -> Registry:
    registry, issues = Registry(), Issues()
    if include_builtin:
        add_builtin(registry)
    records = RecordReader(registry, issues, claims)
    files = registry_files(paths)
    if not files:
        issues.add("error", "", "", "", "no registry files were given")
    for path in files:
        _read_file(path, records)
    check_references(registry, issues, today)
    # Indexed even when there are errors already: the index finds the assets claimed twice,
    # and the operator gets every problem of the files at once.
    check_shared(registry.build_index(), issues)
    if issues.errors:
        raise RegistryError(issues)
    registry.issues = issues
    return registry


def _read_file(path: Path, records: RecordReader) -> None:
    try:
        if path.suffix.lower() == ".csv":
            source = records.claims_source(path)
            if source is not None:
                records.issue("error", path, "", "", f"the claims of {source.key!r} are a YAML or JSON document")
                return
            read_csv_file(path, records)
        else:
            read_document_file(path, path.read_bytes(), records)
    except OSError as exc:
        records.issue("error", path, "", "", f"cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        records.issue("error", path, "", "", f"is not UTF-8 (byte {exc.start} of a block)")
