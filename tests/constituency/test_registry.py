"""The registry and its index, without IntelMQ: loading, validation, precedence, routing."""

import ipaddress
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intelmq_nsm.constituency import RegistryError, builtin_municipalities, load_registry
from intelmq_nsm.constituency.index import RangeTable
from intelmq_nsm.constituency.values import normalise_domain, parse_ip, parse_network, parse_normal_network, url_host

DATA = Path(__file__).parent / "data"
TODAY = date(2025, 6, 1)


@pytest.fixture(scope="module")
def registry():
    return load_registry([DATA], today=TODAY)


def route(registry, *values, **kwargs):
    """``[(constituency, [organisation ids], tie)]`` for the event values given."""
    return [
        (r.constituency, [o.id for o in r.organisations], r.tie)
        for r in registry.index.decide(list(values), day=TODAY, **kwargs)
    ]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(paths, **kwargs):
    with pytest.raises(RegistryError) as caught:
        load_registry(paths, today=TODAY, **kwargs)
    return [i for i in caught.value.issues if i.level == "error"]


# -- loading ------------------------------------------------------------------------------


def test_the_342_municipalities_ship_with_the_package():
    municipalities = builtin_municipalities()
    assert len(municipalities) == 342
    assert ("GM0363", "Amsterdam") in municipalities
    assert len({code for code, _ in municipalities}) == 342


def test_yaml_and_csv_files_form_one_registry(registry):
    stats = registry.stats()
    assert stats["organisations"] == 342 + 3  # the built-in list plus GM9001, SSC-DRECHT, SURF-UNI1
    assert (stats["networks"], stats["domains"], stats["asns"], stats["exclusions"]) == (15, 6, 2, 3)
    assert registry.organisations["GM0363"].contacts == ("ciso@amsterdam.example",)
    assert registry.organisations["GM0363"].name == "Amsterdam"  # name from the built-in list
    assert registry.version.startswith("test-1 (sha256:")


def test_json_documents_load_like_yaml(tmp_path):
    path = write(
        tmp_path,
        "r.json",
        json.dumps({"assets": [{"network": "192.0.2.0/24", "organisation": "GM0014"}]}),
    )
    registry = load_registry([path], today=TODAY)
    assert route(registry, ("source.ip", "192.0.2.77")) == [("ibd", ["GM0014"], [])]


def test_the_version_is_a_content_hash_when_none_is_declared(tmp_path):
    path = write(tmp_path, "r.csv", "type,value,organisation\nnetwork,192.0.2.0/24,GM0014\n")
    first = load_registry([path], today=TODAY).version
    path.write_text("type,value,organisation\nnetwork,192.0.2.0/25,GM0014\n", encoding="utf-8")
    assert first.startswith("sha256:") and load_registry([path], today=TODAY).version != first


# -- validation -----------------------------------------------------------------------------


def test_malformed_prefix_and_host_bits_are_errors_with_file_line_and_field(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        "type,value,organisation\nnetwork,192.0.2.0/24,GM0014\nnetwork,192.0.2.1/24,GM0014\nnetwork,192.0.2.300/32,GM0014\n",
    )
    first, second = errors_of([path])
    assert (first.file, first.location, first.field) == (str(path), "line 3", "network")
    assert "host bits are set" in first.reason
    assert second.location == "line 4" and "not an IPv4 address" in second.reason
    assert str(path) in str(first) and "line 3" in str(first)


CSV_ROWS = (
    "type,value,organisation,source,note\n"
    "network,192.0.2.0/24,GM0014,export,\n"
    "network,2001:db8:14::/48,GM0014,export,\n"
    "domain,gemeente.example,GM0014,export,\n"
    "network,192.0.2.0/24,GM0034,export,{note}\n"
    "network,198.51.100.0/24,GM9999,export,\n"
    "domain,GM.Example.,GM9999,export,\n"
)


@pytest.mark.parametrize("note", ["", '"shared, by contract"'], ids=["split-at-commas", "csv-module"])
def test_csv_rows_name_their_line_in_errors_however_the_file_is_read(tmp_path, note):
    # Without any quote character the loader splits lines at commas; with one it reads
    # the file with the csv module. Both must report the same problems at the same lines.
    path = write(tmp_path, "r.csv", CSV_ROWS.format(note=note))
    issues = {(i.location, i.field, i.reason.split(";")[0]) for i in errors_of([path])}
    expected = {
        ("line 2", "note", "192.0.2.0/24 is also claimed by GM0034"),  # a shared network needs notes
        ("line 6", "organisation", "unknown organisation 'GM9999'"),
        ("line 7", "organisation", "unknown organisation 'GM9999'"),
    }
    if not note:
        expected.add(("line 5", "note", "192.0.2.0/24 is also claimed by GM0014"))
    assert issues == expected


def test_csv_rows_in_normal_form_and_not_load_alike(tmp_path):
    normal = write(
        tmp_path, "a.csv", "type,value,organisation\nnetwork,2001:db8:14::/48,GM0014\ndomain,a.example,GM0014\n"
    )
    other = write(
        tmp_path, "b.csv", "type,value,organisation\nnetwork,2001:DB8:14:0::/48,GM0014\ndomain,A.Example.,GM0014\n"
    )
    first, second = load_registry([normal], today=TODAY), load_registry([other], today=TODAY)
    assert [a.value for a in first.all_assets()] == [a.value for a in second.all_assets()]
    assert [a.origin for a in first.all_assets()] == [(str(normal), "line 2"), (str(normal), "line 3")]
    for registry in (first, second):
        assert route(registry, ("source.ip", "2001:db8:14::1"), ("source.fqdn", "www.a.example")) == [
            ("ibd", ["GM0014"], [])
        ]


def test_a_csv_file_longer_than_a_block_keeps_its_rows_in_order_and_its_repeated_networks(tmp_path):
    # The short path hands networks over a block at a time; a row the general path reads
    # (not in normal form) and a network repeated in a later block must come out as if
    # every row had been added on its own.
    from intelmq_nsm.constituency.csv_file import BLOCK

    networks = [f"10.{n >> 8}.{n & 255}.0/24" for n in range(BLOCK + 10)]
    networks[100] = "2001:DB8::/48"  # the general path, between short-path rows of the first block
    networks[BLOCK + 5] = networks[3]  # claimed again in the second block
    rows = "".join(f"network,{network},GM0014\n" for network in networks)
    path = write(tmp_path, "r.csv", "type,value,organisation\n" + rows)
    registry = load_registry([path], today=TODAY)
    assert [a.value for a in registry.all_assets()][99:102] == [networks[99], "2001:db8::/48", networks[101]]
    assert [a.origin[1] for a in registry.all_assets()][-1] == f"line {BLOCK + 11}"
    [entry] = registry.index.shared
    assert [a.origin[1] for a in entry.assets] == ["line 5", f"line {BLOCK + 7}"]
    assert [str(i).split(": ", 2)[2] for i in registry.issues] == [f"{networks[3]} is listed more than once"]


def test_unknown_organisation_and_section_are_errors_with_yaml_lines(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "assets:\n  - network: 192.0.2.0/24\n    organisation: GM9999\nnetworks: []\n",
    )
    issues = errors_of([path])
    assert {(i.location, i.field) for i in issues} == {("line 2", "organisation"), ("line 1", "networks")}
    assert any("unknown organisation 'GM9999'" in i.reason for i in issues)


def test_one_asset_of_two_organisations_needs_a_note(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "assets:\n"
        "  - {network: 192.0.2.0/24, organisation: GM0014}\n"
        "  - {network: 192.0.2.0/24, organisation: GM0034, note: shared on purpose}\n",
    )
    [issue] = errors_of([path])
    assert (issue.location, issue.field) == ("line 2", "note")
    assert "also claimed by GM0034" in issue.reason


def test_assets_of_an_organisation_that_ended_without_successor_are_an_error(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "organisations:\n  - {id: GM0014, valid_until: 2024-12-31}\n"
        "assets:\n  - {domain: groningen.example, organisation: GM0014}\n",
    )
    [issue] = errors_of([path])
    assert (issue.location, issue.field) == ("line 2", "valid_until")
    assert "without a successor" in issue.reason


def test_other_record_errors_name_their_field(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "organisations:\n"
        "  - {id: X1, name: A, kind: ministry}\n"
        "  - {id: X2, name: B, successor: X3}\n"
        "  - {id: GM0014, valid_from: 2025-13-01}\n"
        "  - {id: X4, name: D, kind: shared-service, members: [GM0000]}\n"
        "  - {id: X5, name: E, constituency: nowhere}\n"
        "assets:\n"
        "  - {domain: 'bad domain.example', organisation: GM0014}\n"
        "  - {asn: AS-X, organisation: GM0014}\n"
        "  - {network: 192.0.2.0/24, domain: x.example, organisation: GM0014}\n"
        "  - {network: 192.0.2.0/24, organisation: GM0014, exact: true}\n",
    )
    found = {(i.location, i.field) for i in errors_of([path])}
    assert found == {
        ("line 2", "kind"),
        ("line 3", "successor"),
        ("line 4", "valid_from"),
        ("line 5", "members"),
        ("line 6", "constituency"),
        ("line 8", "domain"),
        ("line 9", "asn"),
        ("line 10", ""),
        ("line 11", "exact"),
    }


def test_unreadable_and_unparsable_files_are_errors(tmp_path):
    broken = write(tmp_path, "broken.yaml", "assets: [\n")
    missing = tmp_path / "missing.yaml"
    issues = errors_of([broken, missing])
    assert [(Path(i.file).name, i.location != "" or "read" in i.reason) for i in issues] == [
        ("broken.yaml", True),
        ("missing.yaml", True),
    ]
    assert "not valid YAML" in issues[0].reason and "cannot be read" in issues[1].reason


def test_an_organisation_declared_twice_across_files_is_an_error(tmp_path):
    first = write(tmp_path, "a.yaml", "organisations:\n  - {id: X1, name: A}\n")
    second = write(tmp_path, "b.yaml", "organisations:\n  - {id: X1, name: B}\n")
    [issue] = errors_of([first, second])
    assert issue.file == str(second) and "already declared" in issue.reason and str(first) in issue.reason


def test_validation_can_look_ahead_to_a_merger_date(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "organisations:\n  - {id: GM0014, valid_until: 2025-12-31}\nassets:\n  - {asn: 64496, organisation: GM0014}\n",
    )
    assert load_registry([path], today=date(2025, 12, 31)).stats()["asns"] == 1
    with pytest.raises(RegistryError):
        load_registry([path], today=date(2026, 1, 1))


# -- values -----------------------------------------------------------------------------------


def test_values_are_normalised():
    assert parse_network("2001:DB8::/32") == (6, 0x20010DB8 << 96, 32)
    assert parse_ip("::ffff:192.0.2.1") == (4, 0xC0000201)
    assert parse_ip("[2001:db8::1]") == (6, (0x20010DB8 << 96) + 1)
    assert parse_ip("gemeente.example") is None
    assert normalise_domain("WWW.Bürgerportal.TEST.") == "www.xn--brgerportal-thb.test"
    assert url_host("https://user:secret@[2001:db8::1]:8443/path") == "2001:db8::1"
    assert url_host("HTTP://Portal.Gemeente.Example:8080/x?y") == "portal.gemeente.example"


def test_the_short_path_takes_networks_in_normal_form_only():
    assert parse_normal_network("192.0.2.0/24") == parse_network("192.0.2.0/24")
    assert parse_normal_network("2001:db8::/32") == parse_network("2001:db8::/32")
    for other in ("2001:DB8::/32", "2001:db8:0::/32", "192.0.2.0/024", "192.0.2.1/24", "192.0.2.0", " 192.0.2.0/24"):
        assert parse_normal_network(other) is None, other  # the general parser's to read or reject


# -- precedence and routing ----------------------------------------------------------------------


def test_longest_prefix_wins_and_exclusions_never_match(registry):
    assert route(registry, ("source.ip", "192.0.2.5")) == [("ibd", ["GM0363"], [])]
    assert route(registry, ("source.ip", "192.0.2.130")) == [("ibd", ["GM0518"], [])]
    assert route(registry, ("source.ip", "192.0.2.200")) == []  # the hoster's range inside the block


def test_ipv6_and_ipv4_mapped_addresses(registry):
    assert route(registry, ("source.ip", "2001:db8:518::25")) == [("ibd", ["GM0518"], [])]
    assert route(registry, ("source.ip", "::ffff:192.0.2.9")) == [("ibd", ["GM0363"], [])]
    assert route(registry, ("source.ip", "2001:db8:599:ffff::1")) == []  # excluded, from the CSV file
    assert route(registry, ("source.ip", "2001:db8:599::1")) == [("ibd", ["GM0599"], [])]


def roles(registry, *values, **kwargs):
    """``[(constituency, {organisation id: role})]`` for the event values given."""
    return [
        (r.constituency, {o.id: r.role_of(o.id) for o in r.organisations})
        for r in registry.index.decide(list(values), day=TODAY, **kwargs)
    ]


def test_most_specific_domain_beats_network_and_network_beats_asn(registry):
    values = [("source.ip", "192.0.2.130"), ("source.fqdn", "www.amsterdam.example"), ("source.asn", 64497)]
    assert route(registry, *values, match_asn=True, owners="most-specific") == [("ibd", ["GM0363"], [])]
    assert route(
        registry, ("source.asn", 64497), ("source.ip", "192.0.2.5"), match_asn=True, owners="most-specific"
    ) == [("ibd", ["GM0363"], [])]
    assert route(registry, ("source.asn", "AS64497"), match_asn=True) == [("ibd", ["GM0599"], [])]
    assert route(registry, ("source.asn", 64497)) == []  # ASN matching is off unless asked for


def test_all_owners_tags_the_service_and_the_network_owner_and_the_asn_owner_only_without_both(registry):
    values = [("source.ip", "192.0.2.130"), ("source.fqdn", "www.amsterdam.example"), ("source.asn", 64497)]
    assert roles(registry, *values, match_asn=True) == [("ibd", {"GM0363": "service", "GM0518": "network"})]
    [decision] = registry.index.decide(values, match_asn=True, day=TODAY)
    assert [(m.field, m.matched, m.organisation.id) for m in decision.matches] == [
        ("source.fqdn", "amsterdam.example", "GM0363"),
        ("source.ip", "192.0.2.128/25", "GM0518"),
    ]
    assert roles(registry, ("source.asn", 64497), ("source.ip", "192.0.2.5"), match_asn=True) == [
        ("ibd", {"GM0363": "network"})
    ]
    assert roles(registry, ("source.asn", 64497), ("source.fqdn", "nobody.test"), match_asn=True) == [
        ("ibd", {"GM0599": "asn"})
    ]
    # One organisation owning both the service and the network: tagged once, as the service owner.
    assert roles(registry, ("source.fqdn", "amsterdam.example"), ("source.ip", "192.0.2.5")) == [
        ("ibd", {"GM0363": "service"})
    ]


def test_the_owners_of_two_constituencies_get_one_route_each_with_their_roles(registry):
    values = [("source.fqdn", "vpn.denhaag.example"), ("source.ip", "203.0.113.5")]
    assert roles(registry, *values) == [
        ("ibd", {"GM0363": "network", "GM0518": "service"}),
        ("surf", {"SURF-UNI1": "network"}),
    ]
    assert roles(registry, *values, owners="most-specific") == [("ibd", {"GM0518": "service"})]


def test_an_exclusion_on_the_network_leaves_the_service_owner_and_one_on_the_domain_the_network_owner(registry):
    assert roles(registry, ("source.fqdn", "denhaag.example"), ("source.ip", "192.0.2.200")) == [
        ("ibd", {"GM0518": "service"})
    ]
    assert roles(registry, ("source.fqdn", "x.hosting.amsterdam.example"), ("source.ip", "192.0.2.130")) == [
        ("ibd", {"GM0518": "network"})
    ]


def test_a_tie_within_one_kind_stays_a_tie_and_the_other_kind_is_no_part_of_it(registry):
    values = [("source.fqdn", "amsterdam.example"), ("source.ip", "198.51.100.130")]
    assert route(registry, *values) == [("ibd", ["GM0363", "GM0518", "GM0599"], ["GM0518", "GM0599"])]


def test_owners_must_be_all_or_most_specific(registry):
    with pytest.raises(ValueError, match="owners must be one of all, most-specific"):
        registry.index.decide([("source.ip", "192.0.2.5")], owners="first")


def test_the_most_specific_domain_wins_and_exact_domains_cover_no_subdomains(registry):
    assert route(registry, ("source.fqdn", "www.rotterdam.example")) == [("ibd", ["GM0599"], [])]
    [decision] = registry.index.decide([("source.fqdn", "a.www.rotterdam.example")], day=TODAY)
    assert decision.matches[0].matched == "rotterdam.example"  # not the exact www entry
    assert route(registry, ("source.fqdn", "x.hosting.amsterdam.example")) == []  # excluded zone


def test_url_hosts_idn_uppercase_trailing_dots_ports_and_userinfo(registry):
    assert route(registry, ("source.url", "https://admin:pw@WWW.AMSTERDAM.example.:8443/login")) == [
        ("ibd", ["GM0363"], [])
    ]
    assert route(registry, ("source.url", "http://[2001:db8:363::1]:80/")) == [("ibd", ["GM0363"], [])]
    assert route(registry, ("source.fqdn", "mail.bürgerportal.test")) == [("ibd", ["GM0642"], [])]
    assert route(registry, ("source.fqdn", "xn--brgerportal-thb.test.")) == [("ibd", ["GM0642"], [])]


def test_manual_entries_beat_imported_ones_at_equal_specificity(registry):
    [decision] = registry.index.decide([("source.ip", "198.51.100.70")], day=TODAY)
    assert [o.id for o in decision.organisations] == ["GM0363"]
    assert decision.matches[0].asset.source == "manual"


def test_a_real_tie_is_reported_not_guessed(registry):
    assert route(registry, ("source.ip", "198.51.100.130")) == [("ibd", ["GM0518", "GM0599"], ["GM0518", "GM0599"])]


def test_a_shared_service_organisation_and_its_member_are_both_tagged(registry):
    assert route(registry, ("source.ip", "198.51.100.10")) == [("ibd", ["GM0505", "SSC-DRECHT"], [])]


def test_the_shared_service_organisation_behind_a_municipal_domain_is_tagged_too(registry):
    # The domain decides (Papendrecht); the address is the shared-service organisation's,
    # which works for Papendrecht: both are told. Dordrecht, which shares that network
    # with the shared-service organisation, has nothing to do with Papendrecht's system.
    # With owners="all", both owners of that network are told as network owners, Dordrecht too.
    values = [("source.fqdn", "bürgerportal.test"), ("source.ip", "198.51.100.10")]
    assert route(registry, *values, owners="most-specific") == [("ibd", ["GM0642", "SSC-DRECHT"], [])]
    [decision] = registry.index.decide(values, day=TODAY, owners="most-specific")
    assert [(m.field, m.organisation.id) for m in decision.matches] == [
        ("source.fqdn", "GM0642"),
        ("source.ip", "SSC-DRECHT"),
    ]
    assert [(decision.role_of("GM0642"), decision.role_of("SSC-DRECHT"))] == [("service", "network")]
    assert roles(registry, *values) == [("ibd", {"GM0505": "network", "GM0642": "service", "SSC-DRECHT": "network"})]


def test_a_shared_service_organisation_matched_by_asn_joins_its_member_under_either_rule(tmp_path):
    registry = load_registry(
        [
            write(
                tmp_path,
                "r.yaml",
                """
organisations:
  - {id: SSC-X, name: SSC X, kind: shared-service, members: [GM0363]}
assets:
  - {domain: amsterdam.example, organisation: GM0363}
  - {network: 192.0.2.0/24, organisation: GM0518}
  - {asn: 64500, organisation: SSC-X}
  - {asn: 64501, organisation: GM0599}
""",
            )
        ],
        today=TODAY,
    )
    values = [("source.fqdn", "amsterdam.example"), ("source.ip", "192.0.2.5"), ("source.asn", 64500)]
    assert roles(registry, *values, match_asn=True) == [
        ("ibd", {"GM0363": "service", "GM0518": "network", "SSC-X": "asn"})
    ]
    assert roles(registry, *values, match_asn=True, owners="most-specific") == [
        ("ibd", {"GM0363": "service", "SSC-X": "asn"})
    ]
    unrelated = [("source.fqdn", "amsterdam.example"), ("source.asn", 64501)]
    assert roles(registry, *unrelated, match_asn=True) == [("ibd", {"GM0363": "service"})]


def test_an_unrelated_organisation_behind_a_domain_is_tagged_as_network_owner_only_under_all(registry):
    values = [("source.fqdn", "ssc.test"), ("source.ip", "192.0.2.5")]
    assert route(registry, *values, owners="most-specific") == [("ibd", ["SSC-DRECHT"], [])]
    assert roles(registry, *values) == [("ibd", {"GM0363": "network", "SSC-DRECHT": "service"})]
    assert route(
        registry, ("source.fqdn", "amsterdam.example"), ("source.ip", "198.51.100.10"), owners="most-specific"
    ) == [("ibd", ["GM0363"], [])]


def test_an_asset_of_two_constituencies_gives_one_route_each(registry):
    assert route(registry, ("source.ip", "203.0.113.5")) == [("ibd", ["GM0363"], []), ("surf", ["SURF-UNI1"], [])]


def test_an_ended_organisation_routes_to_its_successor(registry):
    assert route(registry, ("source.ip", "203.0.113.130")) == [("ibd", ["GM0363"], [])]
    [decision] = registry.index.decide([("source.ip", "203.0.113.130")], day=date(2022, 6, 1))
    assert [o.id for o in decision.organisations] == ["GM9001"]


def test_values_that_are_no_address_or_domain_match_nothing(registry):
    assert route(registry, ("source.ip", "not-an-ip"), ("source.fqdn", "-bad-.example"), ("source.url", "::")) == []


# -- the range table against ipaddress ----------------------------------------------------------


def prefixes(bits: int):
    network = ipaddress.IPv4Network if bits == 32 else ipaddress.IPv6Network
    return st.lists(
        st.tuples(st.integers(0, 2**bits - 1), st.integers(0, bits)).map(
            lambda t: network((t[0] >> (bits - t[1]) << (bits - t[1]), t[1]))
        ),
        max_size=40,
    )


@pytest.mark.parametrize("bits", [32, 128])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_range_table_is_longest_prefix_match(bits, data):
    networks = data.draw(prefixes(bits))
    addresses = data.draw(st.lists(st.integers(0, 2**bits - 1), min_size=1, max_size=20))
    # Nested networks make the flattening interesting: add some inside the drawn ones.
    networks += [
        n for parent in networks[:10] for n in list(parent.subnets(prefixlen_diff=min(3, bits - parent.prefixlen)))[:2]
    ]
    entries = {int(n.network_address) << 8 | n.prefixlen: str(n) for n in networks}
    table = RangeTable(bits, entries)
    edges = [int(n.network_address) for n in networks] + [int(n.broadcast_address) for n in networks]
    edges += [e + 1 for e in edges if e + 1 < 2**bits] + [e - 1 for e in edges if e > 0]
    for address in addresses + edges:
        ip = ipaddress.IPv4Address(address) if bits == 32 else ipaddress.IPv6Address(address)
        covering = [n for n in networks if ip in n]
        expected = str(max(covering, key=lambda n: n.prefixlen)) if covering else None
        assert table.lookup(address) == expected


# -- the documented schema -------------------------------------------------------------------


def test_the_schema_accepts_the_sample_registry_and_rejects_a_malformed_one():
    import jsonschema
    import yaml

    schema_file = Path(__file__).resolve().parents[2] / "harmonization" / "constituency-db.schema.json"
    schema = json.loads(schema_file.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    sample = yaml.safe_load((DATA / "registry.yaml").read_text("utf-8"))
    sample = json.loads(json.dumps(sample, default=str))  # dates as the strings they are in JSON
    jsonschema.validate(sample, schema)
    with pytest.raises(jsonschema.ValidationError):
        two_kinds = {"network": "192.0.2.0/24", "domain": "x.example", "organisation": "A"}
        jsonschema.validate({"assets": [two_kinds]}, schema)


def test_the_runtime_example_registry_is_valid():
    example = Path(__file__).resolve().parents[2] / "runtime-examples" / "registry-sample"
    registry = load_registry([example], today=TODAY)
    assert route(registry, ("source.ip", "192.0.2.5")) == [("ibd", ["GM0363"], [])]


def test_csv_networks_in_any_valid_form_are_normalised(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        "type,value,organisation\n"
        "network,192.0.2.7,GM0014\nnetwork, 198.51.100.0/24 ,GM0034\nnetwork,2001:DB8::/32,GM0037\n",
    )
    registry = load_registry([path], today=TODAY)
    assert [a.value for a in registry.all_assets()] == ["192.0.2.7/32", "198.51.100.0/24", "2001:db8::/32"]
    assert route(registry, ("source.ip", "192.0.2.7")) == [("ibd", ["GM0014"], [])]
    assert route(registry, ("source.ip", "192.0.2.8")) == []
    assert route(registry, ("source.ip", "198.51.100.99")) == [("ibd", ["GM0034"], [])]


def test_the_schema_names_every_field_a_record_may_set():
    # Organisation and Constituency (model.py) are where a field is added, reader and
    # default with it; the documented schema must follow, and this says when it does not.
    from dataclasses import fields

    from intelmq_nsm.constituency import Constituency, Organisation

    schema_file = Path(__file__).resolve().parents[2] / "harmonization" / "constituency-db.schema.json"
    definitions = json.loads(schema_file.read_text("utf-8"))["$defs"]
    for cls, name, identity in ((Organisation, "organisation", "id"), (Constituency, "constituency", "key")):
        keys = {identity}
        for field in fields(cls):
            if "reader" in field.metadata:
                keys.update(field.metadata["keys"] or (field.name,))
        assert set(definitions[name]["properties"]) == keys, name


def test_a_new_organisation_field_is_read_checked_and_defaulted_from_its_declaration_alone():
    # What adding a field to Organisation (model.py) gives: its line names the reader and
    # the default, and records.py reads it with every other field.
    from dataclasses import dataclass

    from intelmq_nsm.constituency import Organisation
    from intelmq_nsm.constituency.fields import one_of, record_field
    from intelmq_nsm.constituency.records import read_fields

    @dataclass
    class WithQueue(Organisation):
        queue: str = record_field(one_of("security", "general"), "security")

    problems = []

    def report(field, reason):
        problems.append((field, reason))

    assert read_fields(WithQueue, {"name": "A", "queue": "general"}, {}, report)["queue"] == "general"
    assert read_fields(WithQueue, {"name": "A"}, {}, report)["queue"] == "security"
    assert read_fields(WithQueue, {"name": "A", "queue": "spam"}, {}, report)["queue"] == "security"
    assert problems == [("queue", "'spam' is not one of security, general")]
    assert read_fields(WithQueue, {"queue": "general"}, {"name": "Amsterdam"}, report)["name"] == "Amsterdam"
    assert read_fields(WithQueue, {"kind": "other"}, {}, report) is None  # no name: no organisation
    assert problems[-1] == ("name", "is required")
    # The wishes of the digest output are one field read as a whole, keys named by their rules.
    values = read_fields(WithQueue, {"name": "A", "language": "en", "pace": {"max_age": 60}}, {}, report)
    assert values["preferences"] == {"language": "en", "pace": {"max_age": 60}}
    read_fields(WithQueue, {"name": "A", "pace": {"daily_at": "25:00"}}, {}, report)
    assert problems[-1] == ("pace.daily_at", "'25:00' is not a time of day HH:MM")
