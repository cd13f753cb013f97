"""Which files form a registry: the ``database`` parameter's files and directories, expanded."""

from pathlib import Path

#: The suffixes of registry files (YAML, JSON, CSV); other files in a registry directory are ignored.
SUFFIXES = (".yaml", ".yml", ".json", ".csv")


def database_paths(database) -> list:
    """The registry's paths as a list of Paths: ``database`` is one file or directory (a str
    or Path, as the bot's ``database`` parameter gives it) or a list of them."""
    if isinstance(database, (str, Path)):
        return [Path(database)]
    return [Path(p) for p in database or ()]


def registry_files(paths) -> list:
    """The files ``paths`` names (see :func:`database_paths`): files as given, directories
    expanded to their registry files."""
    files = []
    for path in database_paths(paths):
        if path.is_dir():
            # Hidden files are skipped: a download in progress is written under a hidden name.
            files += sorted(
                p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        else:
            files.append(path)
    return files
