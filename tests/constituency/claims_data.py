"""CERTs' claims files for the tests: documentation address space and .example names only."""

import json
from pathlib import Path

from intelmq_nsm.constituency.claims import ClaimsPolicy, ClaimsSource, claims_file

EXPORTED_AT = "2026-11-30T08:00:00+00:00"
NAMES = {"ibd": "IBD", "surf": "SURFcert", "zcert": "Z-CERT"}


def claims(key, assets=(), organisations=(), exclusions=(), exported_at=EXPORTED_AT, share_names=False, **extra):
    """A claims file of constituency ``key`` as a mapping; ``assets`` are records or plain
    networks (``"192.0.2.0/24"``, the constituency's own)."""
    records = [{"network": asset} if isinstance(asset, str) else dict(asset) for asset in assets]
    document = {
        "claims": {
            "constituency": key, "exported_at": exported_at, "assets": len(records), "exclusions": len(exclusions),
        },
        "version": f"{key}-test",
        "constituencies": [{"key": key, "name": NAMES.get(key, key), "share_names": share_names}],
        "assets": records,
        "exclusions": [dict(e) for e in exclusions],
    }  # fmt: skip
    if organisations:
        document["organisations"] = [dict(o) for o in organisations]
    document.update(extra)
    return document


def write_claims(directory: Path, document: dict, name=None) -> Path:
    """Write ``document`` as the hub keeps it: ``claims-<key>.json`` in ``directory``."""
    path = Path(directory) / (name or f"claims-{document['claims']['constituency']}.json")
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def policy(directory: Path, *keys, builtin=("ibd",), base_url="https://claims.example") -> ClaimsPolicy:
    """A hub's policy for the CERTs ``keys``, each file kept in ``directory``."""
    sources = []
    for key in keys:
        url = f"{base_url}/{key}.json"
        sources.append(ClaimsSource(key, url, claims_file(directory, key, url), key in builtin))
    return ClaimsPolicy(sources)
