"""CERTs' claims: read by the registry's loader, refused where they overreach, unioned at a hub,
and exported from a CERT's full registry so that the hub routes as the CERT would."""

import copy
import ipaddress
import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from intelmq_nsm.constituency import RegistryError, load_registry
from intelmq_nsm.constituency.export import claims_document, claims_json
from tests.constituency.claims_data import claims, policy, write_claims

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd" / "registry"
TODAY = date(2025, 6, 1)


def routes(registry, *values, **options):
    """``[(constituency, [organisation ids], tie, [sources of the matches])]``."""
    return [
        (r.constituency, [o.id for o in r.organisations], r.tie, [m.asset.source for m in r.matches])
        for r in registry.index.decide(list(values), day=TODAY, **options)
    ]


def hub(tmp_path, *documents, keys=None, builtin=("ibd",), extra=()):
    """The hub's registry: the claims ``documents`` (each a document, kept as the claims of
    the constituency it names, or ``(key, document)``) in a directory with the ``extra``
    files, read under the policy for ``keys`` (default: the documents' keys)."""
    folder = tmp_path / "hub"
    folder.mkdir(exist_ok=True)
    named = [d if isinstance(d, tuple) else (d["claims"]["constituency"], d) for d in documents]
    for key, document in named:
        write_claims(folder, document, f"claims-{key}.json")
    for name, text in extra:
        (folder / name).write_text(text, encoding="utf-8")
    keys = keys or [key for key, _ in named]
    return load_registry([folder], today=TODAY, claims=policy(folder, *keys, builtin=builtin))


def refusals(tmp_path, *documents, **options):
    with pytest.raises(RegistryError) as caught:
        hub(tmp_path, *documents, **options)
    return [(i.location, i.field, i.reason) for i in caught.value.issues if i.level == "error"]


IBD = claims("ibd", ["192.0.2.0/24", {"domain": "gemeente.example"}, {"asn": 64496}], share_names=False)
SURF = claims("surf", ["198.51.100.0/24", {"domain": "universiteit.example"}], share_names=True)


# -- a claims file is a registry file ----------------------------------------------------------


def test_a_claims_file_alone_is_a_registry_whose_assets_are_its_constituencys_own(tmp_path):
    path = write_claims(tmp_path, SURF)
    registry = load_registry([path], include_builtin=False, today=TODAY)
    assert registry.stats()["claims"] == ["surf (exported 2026-11-30T08:00:00+00:00)"]
    assert registry.claims["surf"]["version"] == "surf-test"
    surf = registry.constituencies["surf"]
    assert (surf.name, surf.share_names, surf.contacts) == ("SURFcert", True, ())
    cert = registry.organisations["cert:surf"]
    assert (cert.name, cert.constituency, cert.contacts, cert.preferences) == ("SURFcert", "surf", (), {})
    assert routes(registry, ("source.ip", "198.51.100.7")) == [("surf", ["cert:surf"], [], ["claims:surf"])]
    assert routes(registry, ("source.fqdn", "www.universiteit.example")) == [
        ("surf", ["cert:surf"], [], ["claims:surf"])
    ]


def test_the_hub_routes_each_certs_claims_to_its_constituency_and_nothing_else_anywhere(tmp_path):
    registry = hub(tmp_path, IBD, SURF)
    assert routes(registry, ("source.ip", "192.0.2.77")) == [("ibd", ["cert:ibd"], [], ["claims:ibd"])]
    assert routes(registry, ("source.ip", "198.51.100.7")) == [("surf", ["cert:surf"], [], ["claims:surf"])]
    assert routes(registry, ("source.url", "https://portal.gemeente.example/login")) == [
        ("ibd", ["cert:ibd"], [], ["claims:ibd"])
    ]
    assert routes(registry, ("source.asn", 64496), match_asn=True) == [("ibd", ["cert:ibd"], [], ["claims:ibd"])]
    assert routes(registry, ("source.ip", "203.0.113.9")) == []  # unclaimed: _default
    assert registry.issues == []


def test_two_certs_claiming_one_network_is_a_tie_on_each_copy_and_reported_at_load(tmp_path):
    ibd = claims("ibd", ["192.0.2.0/24", "203.0.113.0/25"])
    surf = claims("surf", ["203.0.113.0/25", "203.0.113.64/26"])
    registry = hub(tmp_path, ibd, surf)
    tie = ["cert:ibd", "cert:surf"]
    assert routes(registry, ("source.ip", "203.0.113.5")) == [
        ("ibd", ["cert:ibd"], tie, ["claims:ibd"]),
        ("surf", ["cert:surf"], tie, ["claims:surf"]),
    ]
    # The more specific claim decides, as a longest prefix does: no tie.
    assert routes(registry, ("source.ip", "203.0.113.70")) == [("surf", ["cert:surf"], [], ["claims:surf"])]
    [warning] = [str(i) for i in registry.issues]
    assert "203.0.113.0/25 is claimed by cert:ibd (claims:ibd), cert:surf (claims:surf)" in warning
    assert warning.startswith("warning: ")


def test_a_service_owner_and_a_network_owner_from_two_certs_are_no_tie(tmp_path):
    ibd = claims("ibd", [{"domain": "gemeente.example"}])
    registry = hub(tmp_path, ibd, SURF)
    both = routes(registry, ("source.fqdn", "vpn.gemeente.example"), ("source.ip", "198.51.100.20"))
    assert both == [("ibd", ["cert:ibd"], [], ["claims:ibd"]), ("surf", ["cert:surf"], [], ["claims:surf"])]


def test_the_hubs_own_manual_asset_beats_a_claim_of_the_same_network(tmp_path):
    manual = "assets:\n  - {network: 198.51.100.0/24, organisation: cert:ibd, note: SURF claims it, the IBD owns it}\n"
    registry = hub(tmp_path, IBD, SURF, extra=[("manual.yaml", manual)])
    assert routes(registry, ("source.ip", "198.51.100.7")) == [("ibd", ["cert:ibd"], [], ["manual"])]


def test_organisations_of_a_claims_file_route_as_their_cert_named_them(tmp_path):
    ibd = claims(
        "ibd",
        [
            {"network": "192.0.2.0/25", "organisation": "GM0363"},
            {"network": "192.0.2.128/25", "organisation": "ibd:SSC-WEST"},
            {"network": "192.0.2.128/25", "organisation": "GM0518"},
            "198.51.100.0/24",
        ],
        organisations=[
            {"id": "ibd:SSC-WEST", "name": "Servicecentrum West", "kind": "shared-service", "members": ["GM0518"]},
            {"id": "GM0363"},
        ],
    )
    registry = hub(tmp_path, ibd)
    assert registry.organisations["GM0363"].name == "Amsterdam"  # the built-in name, the hub knows it
    assert routes(registry, ("source.ip", "192.0.2.9")) == [("ibd", ["GM0363"], [], ["claims:ibd"])]
    # A municipality and its shared-service organisation, linked by members: both, no tie.
    assert routes(registry, ("source.ip", "192.0.2.200")) == [
        ("ibd", ["GM0518", "ibd:SSC-WEST"], [], ["claims:ibd", "claims:ibd"])
    ]
    assert routes(registry, ("source.ip", "198.51.100.1")) == [("ibd", ["cert:ibd"], [], ["claims:ibd"])]
    assert registry.organisations["ibd:SSC-WEST"].contacts == ()


def test_a_claims_files_domain_exclusion_leaves_out_its_own_claims_only(tmp_path):
    ibd = claims(
        "ibd",
        [{"domain": "stad.example"}, {"domain": "gedeeld.example"}],
        exclusions=[
            {"domain": "lab.gedeeld.example", "note": "the university's lab"},
            {"domain": "hosting.stad.example"},
        ],
    )
    surf = claims("surf", [{"domain": "gedeeld.example"}, {"domain": "uni.hosting.stad.example"}])
    registry = hub(tmp_path, ibd, surf)
    tie = ["cert:ibd", "cert:surf"]
    assert [r[0] for r in routes(registry, ("source.fqdn", "www.gedeeld.example"))] == ["ibd", "surf"]
    assert routes(registry, ("source.fqdn", "www.gedeeld.example"))[0][2] == tie
    assert routes(registry, ("source.fqdn", "x.lab.gedeeld.example")) == [("surf", ["cert:surf"], [], ["claims:surf"])]
    assert routes(registry, ("source.fqdn", "www.stad.example")) == [("ibd", ["cert:ibd"], [], ["claims:ibd"])]
    assert routes(registry, ("source.fqdn", "www.hosting.stad.example")) == []  # no other claim there
    assert routes(registry, ("source.fqdn", "a.uni.hosting.stad.example")) == [
        ("surf", ["cert:surf"], [], ["claims:surf"])
    ]
    assert registry.stats()["exclusions"] == 2


# -- what a claims file may not do -------------------------------------------------------------


def _set(path, value):
    def change(document):
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def _with_asset(record):
    def change(document):
        document["assets"].append(record)
        document["claims"]["assets"] += 1

    return change


def _with_organisation(record):
    def change(document):
        document.setdefault("organisations", []).append(record)

    return change


CONTACTS = "a claims file names no contacts: a CERT keeps its constituents' contacts to itself"
ONLY = "a claims file's organisations carry only id, name, kind, constituency, members"


@pytest.mark.parametrize(
    "change, location, field, reason",
    [
        (_set(("constituencies", 0, "contacts"), ["cert@surf.example"]), "constituencies[0]", "contacts", CONTACTS),
        (_with_organisation({"id": "surf:UNI", "name": "Uni", "contact": "ciso@uni.example"}), "organisations[0]",
         "contact", CONTACTS),
        (_with_organisation({"id": "surf:UNI", "language": "en"}), "organisations[0]", "language",
         ONLY),
        (_with_organisation({"id": "surf:UNI", "openpgp": {"fingerprint": "0" * 40, "key_file": "k.asc"}}),
         "organisations[0]", "openpgp", ONLY),
        (_with_organisation({"id": "surf:UNI", "valid_until": "2030-01-01"}), "organisations[0]", "valid_until",
         ONLY),
        (_with_asset({"network": "203.0.113.0/24", "source": "manual"}), "assets[2]", "source",
         "the assets of a claims file take their source from it (claims:<constituency>)"),
        (_with_asset({"network": "203.0.113.0/24", "organisation": "cert:ibd"}), "assets[2]", "organisation",
         "cert:ibd stands for another constituency; the claims of 'surf' may not name it"),
        (_with_asset({"network": "203.0.113.0/24", "organisation": "GM0363"}), "assets[2]", "organisation",
         "GM0363 is a built-in municipality, which the claims of 'surf' may not name here"),
        (_with_asset({"network": "203.0.113.0/24", "organisation": "UNI"}), "assets[2]", "organisation",
         "the claims of 'surf' name organisations surf:… (or cert:surf), not 'UNI'"),
        (_with_organisation({"id": "UNI", "name": "Uni"}), "organisations[0]", "id",
         "the claims of 'surf' name organisations surf:… (or cert:surf), not 'UNI'"),
        (_with_organisation({"id": "surf:UNI", "constituency": "ibd"}), "organisations[0]", "constituency",
         "the claims of 'surf' declare organisations of 'surf' only"),
        (_with_organisation({"id": "cert:surf", "name": "SURF"}), "organisations[0]", "id",
         "cert:surf is made from the constituency record, not declared"),
        (_set(("constituencies", 0, "key"), "ibd"), "constituencies[0]", "key",
         "the claims of 'surf' declare their own constituency only, not 'ibd'"),
        (_set(("constituencies",), []), "claims", "constituencies",
         "a claims file names its constituency 'surf' (key, name, share_names)"),
        (_set(("claims", "constituency"), "ibd"), "claims", "claims.constituency",
         "the claims file of 'surf' speaks for 'ibd': it may speak only for 'surf'"),
        (_set(("claims", "assets"), 3), "claims", "claims.assets",
         "the header counts 3 assets, the file holds 2: it was cut short or altered"),
        (_set(("claims", "exported_at"), "2026-11-30T08:00:00"), "claims", "claims.exported_at",
         "must be the time of export, ISO 8601 with a time zone"),
        (_set(("exclusions",), [{"network": "198.51.100.128/25"}]), "claims", "claims.exclusions",
         "the header counts 0 exclusions, the file holds 1: it was cut short or altered"),
    ],
    ids=[
        "constituency contacts", "organisation contact", "language", "openpgp", "valid_until", "asset source",
        "another CERT's organisation", "built-in municipality", "foreign id as owner", "foreign id declared",
        "organisation of another constituency", "cert organisation declared", "another constituency's record",
        "no constituency record", "header of another constituency", "truncated", "time without zone",
        "uncounted exclusion",
    ],
)  # fmt: skip
def test_what_a_claims_file_may_not_do_is_refused_naming_its_record_and_field(
    tmp_path, change, location, field, reason
):
    surf = copy.deepcopy(SURF)
    change(surf)
    found = refusals(tmp_path, IBD, ("surf", surf))
    assert (location, field, reason) in found, found
    assert all(location.startswith(("claims", "constituencies", "organisations", "assets")) for location, *_ in found)


def test_an_excluded_network_in_a_claims_file_is_refused(tmp_path):
    surf = claims("surf", ["198.51.100.0/24"], exclusions=[{"network": "198.51.100.128/25"}])
    [(location, field, reason)] = refusals(tmp_path, surf)
    assert (location, field) == ("exclusions[0]", "network")
    assert "an excluded network would be taken from every constituency" in reason


def test_the_hub_reads_a_claims_document_only_from_the_file_of_the_constituency_it_speaks_for(tmp_path):
    # IBD's claims in a file of the hub's directory that no source names: refused.
    stray = claims("ibd", ["192.0.2.0/24"])
    found = refusals(tmp_path, SURF, keys=["surf"], extra=[("extra.json", json.dumps(stray))])
    assert ("claims", "claims", "a claims file is read only as the claims of a source the configuration names") in found
    # A plain registry document where a CERT's claims belong: refused too.
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "claims-surf.json").write_text(json.dumps({"assets": [{"network": "192.0.2.0/24"}]}), "utf-8")
    with pytest.raises(
        RegistryError, match="the claims file of 'surf' is a claims document: it needs its claims header"
    ):
        load_registry([folder], claims=policy(folder, "surf"))


def test_a_built_in_municipality_is_named_only_by_the_claims_the_hub_allows_it_for(tmp_path):
    ibd = claims("ibd", [{"network": "192.0.2.0/24", "organisation": "GM0363"}])
    assert routes(hub(tmp_path, ibd), ("source.ip", "192.0.2.1"))[0][1] == ["GM0363"]
    found = refusals(tmp_path, ibd, builtin=())
    assert (
        "assets[0]",
        "organisation",
        "GM0363 is a built-in municipality, which the claims of 'ibd' may not name here",
    ) in found


def test_an_organisation_the_hub_moved_to_another_constituency_cannot_carry_a_certs_claims(tmp_path):
    # The hub's own file declares an id of the IBD's name space for SURF: the claim is refused.
    ibd = claims("ibd", [{"network": "192.0.2.0/24", "organisation": "ibd:X"}])
    manual = "organisations:\n  - {id: 'ibd:X', name: X, constituency: surf}\nconstituencies:\n  - {key: surf}\n"
    found = refusals(tmp_path, ibd, extra=[("manual.yaml", manual)])
    assert (
        "assets[0]",
        "organisation",
        "the claims of 'ibd' claim for ibd:X, an organisation of constituency 'surf'",
    ) in found


def test_a_yaml_claims_file_cut_short_is_refused_though_it_still_parses(tmp_path):
    folder = tmp_path / "hub"
    folder.mkdir()
    text = (
        "claims: {constituency: ibd, exported_at: '2026-11-30T08:00:00Z', assets: 3, exclusions: 0}\n"
        "constituencies:\n  - {key: ibd, name: IBD}\n"
        "assets:\n  - {network: 192.0.2.0/26}\n  - {network: 192.0.2.64/26}\n"
    )
    (folder / "claims-ibd.yaml").write_text(text, "utf-8")
    sources = policy(folder, "ibd", base_url="https://claims.example/yaml")
    sources = type(sources)([type(s)(s.key, s.url, folder / "claims-ibd.yaml", True) for s in sources.sources])
    with pytest.raises(RegistryError) as caught:
        load_registry([folder], claims=sources)
    assert "claims-ibd.yaml, line 1, field 'claims.assets': the header counts 3 assets, the file holds 2" in str(
        caught.value
    )
    (folder / "claims-ibd.yaml").write_text(text.replace("assets: 3", "assets: 2"), "utf-8")
    assert load_registry([folder], claims=sources).stats()["networks"] == 2


# -- the export from a CERT's registry ----------------------------------------------------------


def probes(registry):
    """Event values that exercise every asset and exclusion of ``registry``: each network's
    first, middle and last address and those just outside, each domain and a subdomain."""
    values = []
    for asset in registry.all_assets():
        if asset.kind == "network":
            network = ipaddress.ip_network(asset.value)
            for address in (network[0], network[network.num_addresses // 2], network[-1]):
                values += [("source.ip", str(address))]
            for step in (-1, 1):
                try:
                    values.append(("source.ip", str(network[0 if step < 0 else -1] + step)))
                except ipaddress.AddressValueError:
                    pass
        elif asset.kind == "domain":
            values += [("source.fqdn", asset.value), ("source.fqdn", f"x.{asset.value}")]
    for kind, value, _note, _origin in registry.exclusions:
        if kind == "network":
            values.append(("source.ip", str(ipaddress.ip_network(value)[0])))
        else:
            values += [("source.fqdn", value), ("source.fqdn", f"x.{value}")]
    return values


@pytest.mark.parametrize("source", [DATA, EXAMPLE], ids=["test registry", "runtime example"])
@pytest.mark.parametrize("organisations", ["none", "ids", "names"])
def test_the_hub_routes_the_certs_exports_as_their_own_registries_do(tmp_path, source, organisations):
    cert = load_registry([source], today=TODAY)
    documents = [
        json.loads(claims_json(claims_document(cert, key, organisations, today=TODAY)))
        for key in sorted(cert.constituencies)
    ]
    text = json.dumps(documents)
    assert "contacts" not in text and "@" not in text and "pace" not in text and "note" not in text
    registry = hub(tmp_path, *documents)
    checked = 0
    for value in probes(cert):
        expected = {r.constituency for r in cert.index.decide([value], day=TODAY)}
        got = {r.constituency for r in registry.index.decide([value], day=TODAY)}
        assert got == expected, value
        checked += bool(expected)
    assert checked > 20


def test_the_export_names_what_a_cert_chose_and_nothing_about_its_organisations(tmp_path):
    cert = load_registry([DATA], today=TODAY)
    moment = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
    bare = claims_document(cert, "ibd", today=TODAY, exported_at=moment, version="ibd-2026-12-01")
    assert bare["claims"] == {
        "constituency": "ibd", "exported_at": "2026-12-01T09:30:00+00:00",
        "assets": len(bare["assets"]), "exclusions": 1,
    }  # fmt: skip
    assert bare["version"] == "ibd-2026-12-01"
    assert bare["constituencies"] == [{"key": "ibd", "name": "IBD", "share_names": False}]
    assert "organisations" not in bare and all("organisation" not in asset for asset in bare["assets"])
    networks = [a["network"] for a in bare["assets"] if "network" in a]
    # 192.0.2.0/24 less its excluded 192.0.2.192/28; the ended GM9001's network is its successor's.
    assert {"192.0.2.0/25", "192.0.2.128/26", "192.0.2.208/28", "192.0.2.224/27", "203.0.113.128/26"} <= set(networks)
    assert not any(ipaddress.ip_network(n).overlaps(ipaddress.ip_network("192.0.2.192/28")) for n in networks)
    assert "203.0.113.0/25" in networks  # shared with a SURF institution: both constituencies claim it
    assert bare["exclusions"] == [{"domain": "hosting.amsterdam.example"}]
    assert {"asn": 64496} in bare["assets"]
    named = claims_document(cert, "ibd", "names", today=TODAY)
    ssc = next(o for o in named["organisations"] if o["id"] == "ibd:SSC-DRECHT")
    assert ssc == {"id": "ibd:SSC-DRECHT", "kind": "shared-service", "name": "Servicecentrum Drechtsteden",
                   "members": ["GM0505", "GM0642"]}  # fmt: skip
    assert {"id": "GM0363", "kind": "municipality", "name": "Amsterdam"} in named["organisations"]
    ids = claims_document(cert, "ibd", "ids", today=TODAY)
    assert {"id": "ibd:SSC-DRECHT", "kind": "shared-service", "members": ["GM0505", "GM0642"]} in ids["organisations"]
    assert {"network": "198.51.100.0/24", "organisation": "ibd:SSC-DRECHT"} in ids["assets"]
    assert not any(o["id"] in ("GM9001",) for o in ids["organisations"])  # ended: its successor owns its assets
    with pytest.raises(ValueError, match="no constituency 'ncsc'"):
        claims_document(cert, "ncsc")


def test_the_claims_json_holds_one_record_a_line(tmp_path):
    cert = load_registry([DATA], today=TODAY)
    document = claims_document(cert, "surf", "names", today=TODAY)
    text = claims_json(document)
    assert json.loads(text) == document
    assert '  {"network": "203.0.113.0/25", "organisation": "surf:SURF-UNI1"}' in text.splitlines()


def test_the_schema_takes_an_exported_claims_file_and_refuses_what_a_claims_file_may_not_carry():
    import jsonschema

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "harmonization" / "constituency-db.schema.json").read_text()
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    cert = load_registry([DATA], today=TODAY)
    for organisations in ("none", "names"):
        jsonschema.validate(json.loads(claims_json(claims_document(cert, "ibd", organisations, today=TODAY))), schema)
    for change in (
        _set(("constituencies", 0, "contacts"), ["cert@surf.example"]),
        _with_asset({"network": "203.0.113.0/24", "source": "manual"}),
        _with_organisation({"id": "surf:UNI", "pace": {"max_age": 60}}),
        _set(("exclusions",), [{"network": "198.51.100.128/25"}]),
        _set(("claims", "exported"), "yesterday"),
    ):
        surf = copy.deepcopy(SURF)
        change(surf)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(surf, schema)
    # Outside a claims file an asset still names its organisation.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"assets": [{"network": "192.0.2.0/24"}]}, schema)
    jsonschema.validate(SURF, schema)
