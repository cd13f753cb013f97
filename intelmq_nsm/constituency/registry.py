"""What a registry holds once read: constituencies, organisations, assets, exclusions, its index.

``loader.load_registry`` fills a ``Registry`` (through the readers of ``documents.py``,
``csv_file.py`` and ``records.py``) and hands it out only when it is valid. Networks
enter by :meth:`Registry.add_networks` alone, which stores them (``NetworkAssets``) and
keys them for the index (``NetworkTables``) in one step.
"""

import hashlib
from collections import Counter

from .index import Index, NetworkTables
from .model import NetworkAssets


class NetworkRows:
    """Networks in normal form on their way into a registry, column by column: row ``i``
    is ``values[i]`` of ``organisations[i]``, ..., at ``lines[i]`` of ``file``, and
    ``parsed[i]`` is its ``(version, start, prefixlen)``."""

    __slots__ = ("file", "lines", "notes", "organisations", "parsed", "sources", "values")

    def __init__(self, file: str, values=(), organisations=(), sources=(), notes=(), lines=(), parsed=()):
        self.file = file
        self.values, self.organisations = list(values), list(organisations)
        self.sources, self.notes, self.lines, self.parsed = list(sources), list(notes), list(lines), list(parsed)

    def clear(self) -> None:
        """Empty the columns in place (a reader may hold their ``append`` methods)."""
        for column in (self.values, self.organisations, self.sources, self.notes, self.lines, self.parsed):
            del column[:]

    def __len__(self) -> int:
        return len(self.values)


class Registry:
    """A validated registry: constituencies, organisations, assets, exclusions, and its index."""

    def __init__(self):
        self.constituencies = {}
        self.organisations = {}
        self.networks = NetworkAssets()
        self.assets = []  # domains and ASNs
        self.exclusions = []  # (kind, normalised value, note, origin)
        #: Constituency key → what its claims file says of itself (file, exported_at, version).
        self.claims = {}
        #: Domains a constituency's claims leave out of its own claims only: (key, domain, note, origin).
        self.claim_exclusions = []
        self.files = []
        self.versions = []
        self.digest = hashlib.sha256()
        self._version = None  # computed once all files are read
        self.issues = []  # warnings of a registry that loaded
        self.index = None
        self._network_tables = NetworkTables(self.networks.asset)  # until the index is built

    def add_networks(self, rows: NetworkRows) -> None:
        """Store the networks of ``rows`` and key them for the index: the one way in."""
        first = self.networks.extend(rows.file, rows.values, rows.organisations, rows.sources, rows.notes, rows.lines)
        self._network_tables.add(first, rows.parsed)

    def build_index(self) -> Index:
        """The index of everything added; the tables filled while reading are freed."""
        self.index = Index(self, self._network_tables)
        self._network_tables = None
        return self.index

    @property
    def version(self) -> str:
        """The documents' declared versions, else ``sha256:`` and the first 12 hex digits of the content."""
        if self._version is None:
            content = f"sha256:{self.digest.hexdigest()[:12]}"
            self._version = f"{'+'.join(self.versions)} ({content})" if self.versions else content
        return self._version

    @property
    def asset_count(self) -> int:
        return len(self.networks) + len(self.assets)

    def all_assets(self):
        """Every asset: the networks (made for the iteration), then domains and ASNs."""
        yield from self.networks
        yield from self.assets

    def stats(self) -> dict:
        counts = Counter(asset.kind for asset in self.assets)
        counts["network"] = len(self.networks)
        owners = {asset.organisation for asset in self.assets}.union(self.networks.organisations)
        return {
            "version": self.version,
            "files": list(self.files),
            "constituencies": len(self.constituencies),
            "organisations": len(self.organisations),
            "organisations_with_assets": len(owners),
            "networks": counts["network"],
            "domains": counts["domain"],
            "asns": counts["asn"],
            "exclusions": len(self.exclusions) + len(self.claim_exclusions),
            "claims": [f"{key} (exported {claims['exported_at']})" for key, claims in sorted(self.claims.items())],
        }
