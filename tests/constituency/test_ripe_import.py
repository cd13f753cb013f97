"""RIPE database import: the RPSL reader, Dutch municipal names, proposals and their review."""

import gzip
import io
from pathlib import Path

import pytest

from intelmq_nsm.constituency import builtin_municipalities, load_registry
from intelmq_nsm.constituency.names import NameMatcher, words
from intelmq_nsm.constituency.ripe_import import dump_files, import_dumps, read_delegated, registry_csv, review
from intelmq_nsm.constituency.rpsl import RpslError, inetnum_networks, parse_object, read_objects

RIPE = Path(__file__).resolve().parent / "data" / "ripe"
MUNICIPALITIES = builtin_municipalities()


@pytest.fixture(scope="module")
def matcher():
    return NameMatcher(MUNICIPALITIES, [("SSC-DRECHT", "Servicecentrum Drechtsteden")])


def found(matcher, text):
    return [(f.organisation, f.whole) for f in matcher.find(text)]


# -- RPSL ----------------------------------------------------------------------------------


def test_continuation_lines_comments_and_repeated_attributes():
    raw = (
        b"inetnum:        192.0.2.64 - 192.0.2.127\n"
        b"descr:          Netwerk van de\n"
        b"+               gemeente\n"
        b"\tNuenen, Gerwen en Nederwetten\n"
        b"# a comment line inside the object\n"
        b"descr:          second line\n"
        b"remarks:\n"
        b"source:         RIPE # Filtered\n"
    )
    assert parse_object(raw) == [
        ("inetnum", "192.0.2.64 - 192.0.2.127"),
        ("descr", "Netwerk van de gemeente Nuenen, Gerwen en Nederwetten"),
        ("descr", "second line"),
        ("remarks", ""),
        ("source", "RIPE # Filtered"),
    ]


def test_objects_stream_from_a_dump_with_header_comments_in_small_blocks(monkeypatch):
    from intelmq_nsm.constituency import rpsl

    monkeypatch.setattr(rpsl, "_BLOCK", 7)  # objects cut across many reads
    with open(RIPE / "ripe.db.inetnum", "rb") as stream:
        objects = list(read_objects(stream))
    keys = [o[0] for o in objects]
    assert ("inetnum", "0.0.0.0 - 255.255.255.255") == keys[0]
    assert len(objects) == 10 and all(name == "inetnum" for name, _ in keys)
    with open(RIPE / "ripe.db.inetnum", "rb") as stream:
        assert list(read_objects(stream, {"inet6num"})) == []


def test_a_latin1_object_is_read_as_latin1():
    assert parse_object("descr: Gemeente Súdwest-Fryslân\n".encode("latin-1")) == [
        ("descr", "Gemeente Súdwest-Fryslân")
    ]


def test_a_range_that_is_not_one_cidr_is_split_into_the_minimal_list():
    assert [str(n) for n in inetnum_networks("k", "198.51.100.0 - 198.51.100.95")] == [
        "198.51.100.0/26",
        "198.51.100.64/27",
    ]
    assert [str(n) for n in inetnum_networks("k", "192.0.2.1 - 192.0.2.6")] == [
        "192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32",
    ]  # fmt: skip
    assert [str(n) for n in inetnum_networks("k", "192.0.2.0 - 192.0.2.255 # comment")] == ["192.0.2.0/24"]
    with pytest.raises(RpslError, match=r"inetnum 203.0.113.9: attribute 'inetnum': the range .* ends before"):
        inetnum_networks("inetnum 203.0.113.9", "203.0.113.9 - 203.0.113.1")


# -- names ---------------------------------------------------------------------------------


def test_words_drop_case_diacritics_apostrophes_and_punctuation():
    assert words("Gem. 's-Gravenhage") == ("gem", "s", "gravenhage")
    assert words("Súdwest-Fryslân") == ("sudwest", "fryslan")
    assert words("GEMEENTE-NUENEN,GERWEN EN NEDERWETTEN") == ("gemeente", "nuenen", "gerwen", "en", "nederwetten")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Gemeente Ede", [("GM0228", True)]),
        ("Gem. Ede", [("GM0228", True)]),
        ("Municipality of Ede", [("GM0228", True)]),
        ("Ede Municipality", [("GM0228", True)]),
        ("GEMEENTE-EDE", [("GM0228", True)]),
        ("GEMEENTEEDE", [("GM0228", True)]),
        ("Gemeente Súdwest-Fryslân", [("GM1900", True)]),
        ("GEMEENTE-SUDWEST-FRYSLAN", [("GM1900", True)]),
        ("Gemeente 's-Gravenhage", [("GM0518", True)]),
        ("Gemeente \u2019s-Gravenhage", [("GM0518", True)]),
        ("GEMEENTE-S-GRAVENHAGE", [("GM0518", True)]),
        ("Gemeente Den Haag", [("GM0518", True)]),
        ("Municipality of The Hague", [("GM0518", True)]),
        ("Gemeente 's-Hertogenbosch", [("GM0796", True)]),
        ("Gemeente Nuenen, Gerwen en Nederwetten", [("GM0820", True)]),
        ("Gemeente Nuenen c.a.", [("GM0820", True)]),
        ("Gemeente Bergen (NH.)", [("GM0373", True)]),
        ("Servicecentrum Drechtsteden", [("SSC-DRECHT", True)]),
        ("Hosting for Gemeente Ede and Gemeente Edam-Volendam", [("GM0228", False), ("GM0385", False)]),
        ("Gemeente Ede, afdeling ICT", [("GM0228", False)]),
    ],
)
def test_dutch_municipal_naming(matcher, text, expected):
    assert found(matcher, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Gemeente Edamse Haven",
        "Ede",  # a bare name is no claim
        "Network management Ede",  # "gem" inside a word is no marker
        "Gemeentelijke belastingen",
        "Gemeente Bergen",  # two municipalities are called Bergen: the text must say which
        "Drechtsteden",  # an operator's organisation by its full name only
        "GEMEENTE",
    ],
)
def test_no_claim_on_a_bare_name_or_a_part_of_a_word(matcher, text):
    assert found(matcher, text) == []


def test_ede_never_claims_edam_volendam(matcher):
    for text in ("Gemeente Edam-Volendam", "GEMEENTE-EDAM-VOLENDAM", "GEMEENTEEDAMVOLENDAM", "Gem. Edam Volendam"):
        assert found(matcher, text) == [("GM0385", True)]


# -- proposals -----------------------------------------------------------------------------


def fixture_import(country="NL", delegated=True, files=None, registry=None):
    organisations = registry.organisations.values() if registry is not None else ()
    others = [(o.id, o.name) for o in organisations if o.kind != "municipality"]
    return import_dumps(
        files or dump_files([RIPE]), MUNICIPALITIES, others, country,
        read_delegated(RIPE / "delegated-ripencc-extended-latest") if delegated else None,
    )  # fmt: skip


def by_value(result):
    return {(p.value, p.organisation): p for p in result.proposals}


def test_confidence_follows_the_evidence_and_each_proposal_names_it():
    proposals = by_value(fixture_import())
    ede = proposals[("198.51.100.0/26", "GM0228")]
    assert ede.level == "org" and ede.confidence == 4 and ede.country == "NL"
    assert [str(e) for e in ede.evidence] == [
        "inetnum 198.51.100.0 - 198.51.100.95: org: ORG-GE1-TEST",
        "organisation ORG-GE1-TEST: org-name: Gemeente Ede",
        "inetnum 198.51.100.0 - 198.51.100.95: descr: Gemeente Ede",
    ]
    assert proposals[("198.51.100.64/27", "GM0228")].level == "org"  # the rest of the range
    assert proposals[("192.0.2.128/25", "GM0599")].level == "org-name"
    assert proposals[("203.0.113.64/26", "GM0518")].level == "netname"
    assert proposals[("2001:db8:518::/48", "GM0518")].level == "netname"
    assert proposals[("2001:db8:1900::/48", "GM1900")].level == "netname"
    remarks_only = proposals[("203.0.113.128/26", "GM1900")]
    assert remarks_only.level == "mention" and remarks_only.evidence[0].attribute == "remarks"
    assert proposals[("192.0.2.64/26", "GM0820")].level == "org"  # Nuenen, over continuation lines
    assert proposals[("64496", "GM0228")].kind == "asn"
    # The Edam-Volendam network is never Ede's.
    assert [o for v, o in proposals if v == "203.0.113.0/26"] == ["GM0385"]
    assert not any(v == "2001:db8:ffff::/48" for v, _ in proposals)


def test_country_nl_drops_other_countries_and_asns_follow_the_delegated_file():
    nl = by_value(fixture_import())
    assert not any(v == "203.0.113.192/26" for v, _ in nl)  # country: DE
    assert ("64498", "GM0228") not in nl  # delegated to DE
    result = fixture_import()
    assert result.dropped_country == 2 and result.asn_country_checked
    everything = by_value(fixture_import(country=None))
    assert ("203.0.113.192/26", "GM0228") in everything and ("64498", "GM0228") in everything
    without_delegated = fixture_import(delegated=False)
    assert ("64498", "GM0228") in by_value(without_delegated) and not without_delegated.asn_country_checked


def test_a_broken_object_is_named_and_the_others_are_read():
    result = fixture_import()
    assert [str(p) for p in result.problems] == [
        "inetnum 192.0.2.300 - 192.0.2.400: attribute 'inetnum': '192.0.2.300 - 192.0.2.400' is not an IPv4 range: "
        "Octet 300 (> 255) not permitted in '192.0.2.300'"
    ]
    assert result.objects == 17


def test_gzip_and_plain_dumps_give_the_same_proposals(tmp_path):
    for path in dump_files([RIPE]):
        (tmp_path / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    zipped = dump_files([tmp_path])
    assert [p.name for p in zipped][:2] == ["ripe.db.organisation.gz", "ripe.db.inetnum.gz"]
    assert by_value(fixture_import(files=zipped)).keys() == by_value(fixture_import()).keys()


def test_weak_matches_are_reviewed_but_not_imported_and_manual_entries_are_respected():
    registry = load_registry([RIPE / "registry"])
    result = fixture_import(registry=registry)
    review(result.proposals, "org", registry)
    status = {(p.value, p.organisation): p.status for p in result.proposals}
    assert status[("203.0.113.64/26", "GM0518")] == "not imported: below org"
    assert status[("203.0.113.128/26", "GM1900")] == "not imported: below org"
    assert status[("192.0.2.128/25", "GM0599")] == "not imported: below org"
    assert status[("192.0.2.0/26", "GM0363")] == "already in the registry by hand"
    assert status[("203.0.113.0/26", "GM0385")] == "imported; the manual entry for GM0518 keeps precedence"
    assert status[("64497", "SSC-DRECHT")] == "imported"
    rows = registry_csv(result.proposals, "ripe-2026-11-30").splitlines()
    assert rows[0] == "type,value,organisation,source,note"
    imported = [tuple(row.split(",")[:4]) for row in rows[1:]]
    assert ("network", "203.0.113.64/26", "GM0518", "ripe-2026-11-30") not in imported
    assert ("network", "198.51.100.64/27", "GM0228", "ripe-2026-11-30") in imported
    assert len(imported) == 7
    review(result.proposals, "netname", registry)
    assert sum(p.status.startswith("imported") for p in result.proposals) == 11


def test_an_imported_claim_beside_a_manual_one_needs_no_note_from_the_manual_one(tmp_path):
    (tmp_path / "manual.csv").write_text("type,value,organisation\nnetwork,192.0.2.0/24,GM0363\n", "utf-8")
    imported = "type,value,organisation,source,note\nnetwork,192.0.2.0/24,GM0599,ripe-2026-11-30,RIPE evidence\n"
    (tmp_path / "ripe.csv").write_text(imported, "utf-8")
    registry = load_registry([tmp_path])
    entry = registry.index.network_entry(4, int.from_bytes(bytes([192, 0, 2, 9]), "big"))
    assert sorted(a.organisation for a in entry.assets) == ["GM0363", "GM0599"]
    assert [r.organisations[0].id for r in registry.index.decide([("source.ip", "192.0.2.9")])] == ["GM0363"]
    # Two manual claims without notes are still refused, as before.
    (tmp_path / "ripe.csv").write_text(imported.replace("ripe-2026-11-30", "manual"), "utf-8")
    with pytest.raises(ValueError, match="a shared asset needs a note"):
        load_registry([tmp_path])


def test_reading_does_not_keep_the_objects(monkeypatch):
    """The reader yields as it reads: a dump of many objects passes through a small buffer."""
    from intelmq_nsm.constituency import rpsl

    monkeypatch.setattr(rpsl, "_BLOCK", 1 << 12)
    text = "".join(f"inetnum: 10.{i >> 8 & 255}.{i & 255}.0 - 10.{i >> 8 & 255}.{i & 255}.255\n\n" for i in range(9999))
    stream = io.BytesIO(text.encode())
    objects = read_objects(stream)
    next(objects)
    assert stream.tell() < len(text)  # one block read, not the whole dump
