"""A hub's forwarded event as a CERT reads it: the schema, what is kept, dropped and added."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intelmq_nsm import event_contract as ec
from intelmq_nsm.federation import forwarded
from intelmq_nsm.federation.forwarded import ForwardedEventError, kept_fields, read, upstream
from intelmq_nsm.testbed.sample_events import hub_event

REPO = Path(__file__).resolve().parents[2]


def body(event: dict) -> bytes:
    return json.dumps({k: v for k, v in event.items() if k != "__type"}).encode("utf-8")


def refusal(data: bytes, max_bytes: int = forwarded.MAX_BYTES) -> tuple:
    with pytest.raises(ForwardedEventError) as caught:
        read(data, max_bytes)
    return caught.value.field, caught.value.reason


def test_the_harmonization_folder_links_the_schema_the_parser_reads():
    linked = REPO / "harmonization" / "forwarded-event.schema.json"
    assert json.loads(linked.read_text(encoding="utf-8")) == forwarded.load_schema()


def test_an_event_as_intelmqs_amqp_output_exports_it_is_read():
    event = hub_event(7)
    assert read(body(event)) == {k: v for k, v in event.items() if k != "__type"}
    with_type = json.dumps({**event, "__type": "Event"}).encode()  # message_with_type: true
    assert read(with_type)["__type"] == "Event"


def test_the_routing_decision_the_feed_and_the_hubs_own_ids_are_not_kept():
    event = {**hub_event(7), ec.UPSTREAM: {"instance": "national-hub"}, "raw": "cmVjb3Jk"}
    kept = kept_fields(event)
    for dropped in ("constituency", ec.ORGANISATIONS, ec.MATCHES, ec.REGISTRY_VERSION, ec.FINDING_ID, ec.UPSTREAM):
        assert dropped not in kept, dropped
    assert not [key for key in kept if key.startswith("feed.")]
    assert "raw" not in kept and "__type" not in kept
    for observation in ("source.ip", "source.port", ec.CASE_ID, ec.RESULT, "product.vulnerabilities", "severity"):
        assert kept[observation] == event[observation], observation


def test_upstream_keeps_the_hubs_finding_id_case_and_reporter():
    event = hub_event(7)
    assert upstream(event, "nsm-hub", "2026-12-07T10:00:00+00:00", "nf1-" + "0" * 32) == {
        "instance": "nsm-hub",
        "finding_id": event[ec.FINDING_ID],
        "case_id": "DIVD-2024-00012",
        "reporter": {
            "feed_name": "DIVD researchers",
            "feed_provider": "DIVD",
            "feed_code": "divd",
            "feed_accuracy": 100.0,
        },
        "forwarded_at": "2026-12-07T10:00:00+00:00",
    }


def test_upstream_leaves_out_what_is_unknown_and_takes_the_computed_id_when_the_hub_sent_none():
    event = {
        k: v for k, v in hub_event(7).items() if not k.startswith("feed.") and k not in (ec.FINDING_ID, ec.CASE_ID)
    }
    assert upstream(event, "nsm-hub", None, "nf1-" + "a" * 32) == {
        "instance": "nsm-hub",
        "finding_id": "nf1-" + "a" * 32,
    }


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"source.ip": None, "source.fqdn": None, "source.url": None}, "source.ip", "is missing"),
        ({"classification.type": None}, "classification.type", "is missing"),
        ({ec.FINDING_ID: "nf1-../../etc/passwd"}, ec.FINDING_ID, "is not an accepted value"),
        ({ec.CASE_ID: "DIVD 2024; DROP"}, ec.CASE_ID, "is not an accepted value"),
        ({ec.RESULT: "fixed"}, ec.RESULT, "'fixed' is not an accepted value"),
        ({"source.port": "443"}, "source.port", "is not accepted"),
        ({"source.port": 70000}, "source.port", "is not accepted"),
        ({"Source.IP": "192.0.2.1"}, "Source.IP", "is not a field name IntelMQ allows"),
        ({ec.ORGANISATIONS: "GM0363"}, ec.ORGANISATIONS, "is not accepted"),
        ({"extra.nsm.evidence": "x" * 20001}, "extra.nsm.evidence", "larger than the schema allows (maxLength 20000)"),
        ({"extra.note": "y" * 20001}, "extra.note", "larger than the schema allows (maxLength 20000)"),
        ({"extra.list": list(range(1001))}, "extra.list", "larger than the schema allows (maxItems 1000)"),
        ({"extra.map": {f"k{i}": i for i in range(201)}}, "extra.map", "allows (maxProperties 200)"),
    ],
)
def test_a_forged_or_malformed_event_is_refused_naming_the_field(change, field, reason):
    event = {k: v for k, v in hub_event(7).items() if k != "__type"}
    for key, value in change.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    found_field, found_reason = refusal(json.dumps(event).encode())
    assert found_field == field and reason in found_reason, (found_field, found_reason)


def test_a_body_that_is_no_event_is_refused_naming_what_is_wrong():
    assert refusal(b"\xff\xfe{}")[0] == "raw"
    assert refusal(b'{"source.ip": ')[1].startswith("is not JSON")
    assert refusal(b"[1, 2]") == ("event", "is not a JSON object but list")
    assert refusal(b'{"source.ip": NaN}')[1].startswith("is not JSON")
    assert refusal(b'{"source.ip": "192.0.2.1", "source.ip": "192.0.2.2"}') == ("source.ip", "appears more than once")
    assert refusal(body(hub_event(7)), max_bytes=100)[0] == "raw"
    many = {f"extra.k{i}": i for i in range(301)}
    assert refusal(json.dumps({**hub_event(7), **many}).encode())[0] == "event"


# -- the fast check against the reference ------------------------------------------------------

#: Values of every JSON type, at the sizes where the schema's limits lie.
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.sampled_from([0, 1, 443, 65535, 65536, -1, 100, 100.5, 443.0, 1e308])
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "x" * 101, "x" * 254, "x" * 20001, "nf1-" + "a" * 32, "nf1-" + "a" * 32 + "\n"])
    | st.sampled_from(["vulnerable", "Event", "high", "GREEN", "AMBER+STRICT", "2024-05-01T09:00:00+00:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
NAMES = [*sorted(forwarded._schema()["properties"]), "extra.note", "extra.map"]


def edges(rule: dict) -> list:
    """Values on either side of each limit of a field's ``rule`` in the schema."""
    rule = forwarded._in_place(rule, forwarded._schema()["$defs"])
    found = list(rule.get("enum", [])) + (["nope"] if "enum" in rule else [])
    found += [rule["const"], rule["const"] + "x"] if "const" in rule else []
    found += ["", "a b", "DIVD-2024-00012\n", "nf1-" + "a" * 32 + "\n"] if "pattern" in rule else []
    for key, step in (("maxLength", 1), ("minLength", -1)):
        if key in rule:
            found += ["x" * rule[key], "x" * max(rule[key] + step, 0)]
    for key, step in (("maximum", 1), ("minimum", -1)):
        if key in rule:
            found += [rule[key], rule[key] + step, float(rule[key] + step)]
    if "maxItems" in rule:
        found += [list(range(rule["maxItems"])), list(range(rule["maxItems"] + 1))]
    if "maxProperties" in rule:
        found += [{f"k{i}": i for i in range(n)} for n in (rule["maxProperties"], rule["maxProperties"] + 1)]
    return found or [None]


def field_values(name: str):
    rule = forwarded._schema()["properties"].get(name, forwarded._schema()["additionalProperties"])
    return st.tuples(st.just(name), st.sampled_from(edges(rule)) | VALUES)


CHANGES = st.lists(st.sampled_from(NAMES).flatmap(field_values), min_size=1, max_size=2).map(dict)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 500), CHANGES, st.sets(st.sampled_from(NAMES), max_size=2))
def test_the_fast_check_takes_no_event_the_reference_refuses(n, changes, removed):
    """fastjsonschema decides for every event the parser takes: whatever it accepts,
    jsonschema (the reference, which explains refusals) must accept too."""
    event = {k: v for k, v in hub_event(n).items() if k not in removed} | changes
    if forwarded._accepts()(event):
        assert list(forwarded._validator().iter_errors(event)) == []


def test_the_fast_check_and_the_reference_agree_on_each_side_of_every_limit():
    event = {k: v for k, v in hub_event(7).items() if k != "__type"}
    for name in NAMES:
        rule = forwarded._schema()["properties"].get(name, forwarded._schema()["additionalProperties"])
        for value in edges(rule):
            changed = event | {name: value}
            reference = not list(forwarded._validator().iter_errors(changed))
            assert forwarded._accepts()(changed) == reference, (name, forwarded.shown(value))


def test_the_fast_check_refuses_what_the_reference_refuses_in_the_examples_above():
    event = {k: v for k, v in hub_event(7).items() if k != "__type"}
    assert forwarded._accepts()(event)
    for change in ({"source.port": "443"}, {ec.RESULT: "fixed"}, {"extra.note": "y" * 20001}):
        assert not forwarded._accepts()(event | change)
        assert list(forwarded._validator().iter_errors(event | change))
