"""Synthetic load for the example runtime: many findings in the example registry's networks.

The chain benchmark and the chaos test submit these reports instead of the example's own.
"""

import ipaddress
import json
import shutil
from pathlib import Path

import yaml


def ipv6_owners(example: Path) -> dict:
    """The example registry's IPv6 networks and the organisation of each."""
    registry = yaml.safe_load((example / "registry" / "registry.yaml").read_text(encoding="utf-8"))
    return {
        ipaddress.ip_network(asset["network"]): asset["organisation"]
        for asset in registry["assets"]
        if "network" in asset and ":" in asset["network"]
    }


def synthetic_example(example: Path, target: Path, findings: int, per_report: int) -> tuple:
    """A copy of ``example`` whose reports hold ``findings`` distinct findings, spread over
    the registry's IPv6 networks in NSM reports of ``per_report`` findings each.

    Returns ``(example folder, {address: owning organisation id})``.
    """
    shutil.copytree(example, target, ignore=shutil.ignore_patterns("reports"))
    (target / "reports").mkdir()
    owners = ipv6_owners(example)
    networks = sorted(owners, key=str)
    expected = {}
    for number, first in enumerate(range(0, findings, per_report)):
        records = []
        for i in range(first, min(first + per_report, findings)):
            network = networks[i % len(networks)]
            address = str(network[i + 1])
            expected[address] = owners[network]
            records.append({"ip": address, "port": 443, "protocol": "https", "observed": "2026-11-01T12:00:00Z"})
        report = {
            "schema": "nsm-report/1",
            "case": {"id": f"SYNTH-2026-{number:05d}", "title": "Synthetic load", "severity": "high"},
            "reporter": {"organisation": "DIVD"},
            "findings": records,
        }
        (target / "reports" / f"synthetic-{number:05d}.json").write_text(json.dumps(report), encoding="utf-8")
    return target, expected
