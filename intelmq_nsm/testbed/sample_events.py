"""Events as the constituency expert emits them: sample input for the digest output's tests and benchmarks."""

import json

from intelmq_nsm.constituency.builtin import builtin_municipalities


def municipalities() -> list:
    """The 342 municipalities (CBS code, name) that ship with the package."""
    return builtin_municipalities()


def organisation(code: str, name: str, kind: str = "municipality") -> dict:
    return {"id": code, "name": name, "kind": kind, "contacts": [f"security@{code.lower()}.example"]}


def network_match(org_id: str, network: str, source: str = "ripe-import", note: str = "") -> str:
    """``extra.nsm.matches`` (as the ledger keeps it: JSON) of a finding routed to ``org_id`` by ``network``."""
    match = {
        "field": "source.ip",
        "value": network.split("/")[0],
        "kind": "network",
        "matched": network,
        "organisation": org_id,
        "source": source,
        "note": note,
    }
    return json.dumps([match])


def event(n: int, organisations: list, constituency: str = "ibd", case: str = "DIVD-2024-00012", **extra) -> dict:
    """A vulnerability finding; ``n`` makes it unique and picks an address from the doc ranges."""
    ip = f"{('192.0.2', '198.51.100', '203.0.113')[n % 3]}.{n % 250 + 1}"
    result = {
        "__type": "Event",
        "feed.name": "DIVD",
        "time.observation": "2024-05-01T10:00:00+00:00",
        "time.source": f"2024-05-01T09:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "classification.taxonomy": "vulnerable",
        "classification.type": "vulnerable-system",
        "classification.identifier": "citrix-bleed",
        "severity": "high",
        "source.ip": ip,
        "source.port": 443,
        "source.fqdn": f"host{n}.gemeente.example",
        "product.vendor": "Citrix",
        "product.name": "NetScaler ADC",
        "product.version": "13.1-48.47",
        "product.vulnerabilities": "cve-2023-4966",
        "event_description.url": f"https://csirt.divd.example/cases/{case}",
        "event_description.text": "Session token leak.",
        "constituency": constituency,
        "extra.nsm.case_id": case,
        "extra.nsm.case_title": "Citrix Bleed",
        "extra.nsm.recommendation": "Update to 13.1-49.15 and kill all sessions.",
        "extra.nsm.organisations": organisations,
        "extra.nsm.record": n,
    }
    result.update(extra)
    return result


#: The example registry's municipal networks: one /29 each in 192.0.2.0/24 up to .239
#: (runtime-examples/nsm-ibd/registry), and their CBS codes in that order.
EXAMPLE_MUNICIPAL_HOSTS = 240


def hub_event(n: int, constituency: str = "ibd", case: str = "DIVD-2024-00012", vulnerable: bool = True) -> dict:
    """A finding as a hub's constituency expert sends it on a CERT's path: its address in
    one of the example registry's municipal networks (so the CERT's own registry routes
    it), the hub's routing decision, feed and finding id."""
    from intelmq_nsm.finding_id import finding_id

    ip = f"192.0.2.{n % EXAMPLE_MUNICIPAL_HOSTS}"
    fields = {
        "source.ip": ip,
        "source.port": 443 + n // EXAMPLE_MUNICIPAL_HOSTS,
        "source.fqdn": f"host{n}.gemeente.example",
        "feed.name": "DIVD researchers",
        "feed.provider": "DIVD",
        "feed.code": "divd",
        "feed.accuracy": 100.0,
        "extra.nsm.result": "vulnerable" if vulnerable else "not-vulnerable",
        "extra.nsm.matches": [{"field": "source.ip", "value": ip, "kind": "network", "matched": "192.0.2.0/24"}],
        "extra.nsm.registry_version": "hub-claims-1",
    }
    result = event(
        n,
        [{"id": f"claim:{constituency}", "name": "Claimed by the CERT", "kind": "other"}],
        constituency,
        case,
        **fields,
    )
    result["extra.nsm.finding_id"] = finding_id(result)
    return result
