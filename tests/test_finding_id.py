"""The finding id: stable across rescans, different for another case, host, port or transport."""

import hashlib

import pytest

from intelmq_nsm import event_contract as ec
from intelmq_nsm.finding_id import MissingField, existing_or_computed, finding_id

BASE = {ec.CASE_ID: "DIVD-2024-00012", "source.ip": "192.0.2.10", "source.port": 443}


def test_the_definition_as_documented():
    expected = hashlib.sha256(
        b"\x00".join([b"nsm-finding/1", b"case:DIVD-2024-00012", b"192.0.2.10", b"443", b"tcp"])
    ).hexdigest()[:32]
    assert finding_id(BASE) == "nf1-" + expected


def test_rescans_of_one_system_share_the_id():
    rescan = {**BASE, "time.source": "2026-03-10T00:00:00+00:00", "feed.provider": "Another researcher"}
    assert finding_id(rescan) == finding_id(BASE)
    assert finding_id({**BASE, "protocol.transport": "TCP"}) == finding_id(BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"source.port": 8443},
        {ec.CASE_ID: "DIVD-2024-00031"},
        {"source.ip": "192.0.2.11"},
        {"protocol.transport": "udp"},
    ],
)
def test_another_port_case_host_or_transport_is_another_finding(change):
    assert finding_id({**BASE, **change}) != finding_id(BASE)


def test_without_a_case_the_sorted_cves_scope_the_finding():
    one = {"product.vulnerabilities": "cve-2024-3400;cve-2023-1234", "source.fqdn": "VPN.Gemeente.example."}
    two = {"product.vulnerabilities": "cve-2023-1234;cve-2024-3400", "source.fqdn": "vpn.gemeente.example"}
    assert finding_id(one) == finding_id(two)


def test_a_url_gives_host_and_default_port():
    by_url = {ec.CASE_ID: "X-1", "source.url": "https://Portal.example/login"}
    by_fields = {ec.CASE_ID: "X-1", "source.fqdn": "portal.example", "source.port": 443}
    assert finding_id(by_url) == finding_id(by_fields)


def test_ipv6_in_normal_form():
    assert finding_id({**BASE, "source.ip": "2001:0db8:0:0::1"}) == finding_id({**BASE, "source.ip": "2001:db8::1"})


def test_missing_scope_or_target_names_the_field():
    with pytest.raises(MissingField) as raised:
        finding_id({"source.ip": "192.0.2.10"})
    assert raised.value.field == ec.CASE_ID
    with pytest.raises(MissingField) as raised:
        finding_id({ec.CASE_ID: "X-1", "source.port": 443})
    assert raised.value.field == "source.ip"


def test_an_existing_id_is_kept():
    assert existing_or_computed({**BASE, ec.FINDING_ID: "nf1-given"}) == ("nf1-given", False)
    assert existing_or_computed(BASE) == (finding_id(BASE), True)


@pytest.mark.parametrize("address", ["192.0.2.10", "2001:db8::10", "2001:db8:0:0:1::1", "::ffff:192.0.2.1"])
def test_an_address_harmonised_by_intelmq_needs_no_second_normalisation(address):
    from intelmq.lib.message import Event

    event = Event()
    event.add("source.ip", address)
    event.add("source.port", 443)
    event.add(ec.CASE_ID, "DIVD-2024-00012")
    plain = dict(event)
    assert finding_id(plain, harmonised=True) == finding_id(plain) == finding_id({**plain, "source.ip": address})
