"""A hub's forwarded event as a CERT reads it: the schema, what is kept, dropped and added."""

import json
from pathlib import Path

import pytest

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
