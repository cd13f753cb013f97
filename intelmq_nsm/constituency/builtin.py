"""What ships with the package: the 342 municipalities, the IBD's constituency."""

import csv
import io
from importlib import resources

from .model import DEFAULT_CONSTITUENCY, Constituency, Organisation

#: The origin of what ships with the package, in place of a file and location.
BUILT_IN = ("built-in", "")


def builtin_municipalities():
    """The 342 municipalities shipped with the package: ``[(cbs_code, name), ...]``."""
    text = resources.files(__package__).joinpath("data/gemeenten.csv").read_text(encoding="utf-8")
    return [(row["cbs_code"], row["name"]) for row in csv.DictReader(io.StringIO(text))]


def add_builtin(registry) -> None:
    """Add the IBD's constituency and the municipalities to ``registry``; a registry file
    may declare them again to complete them (contacts, dates)."""
    registry.constituencies[DEFAULT_CONSTITUENCY] = Constituency(
        DEFAULT_CONSTITUENCY, "IBD (Informatiebeveiligingsdienst voor gemeenten)"
    )
    for code, name in builtin_municipalities():
        registry.organisations[code] = Organisation(code, name, "municipality", DEFAULT_CONSTITUENCY, origin=BUILT_IN)
