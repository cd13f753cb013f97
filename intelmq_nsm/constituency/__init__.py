"""The constituency registry: who owns which network, domain and ASN, and where an event goes.

Plain Python, no IntelMQ needed: ``load_registry(paths)`` reads and validates the registry
files and builds the index; ``registry.index.decide([(field, value), ...])`` routes.
"""

from .builtin import builtin_municipalities
from .loader import load_registry
from .model import Asset, Constituency, Issue, Match, Organisation, RegistryError, Route
from .paths import registry_files
from .registry import Registry

__all__ = [
    "Asset",
    "Constituency",
    "Issue",
    "Match",
    "Organisation",
    "Registry",
    "RegistryError",
    "Route",
    "builtin_municipalities",
    "load_registry",
    "registry_files",
]
