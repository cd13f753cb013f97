"""A hub's POST /v1/outcomes over real HTTP on 127.0.0.1, its real ledger behind it: a CERT's
changes applied once, only for the findings forwarded to that CERT, and every malformed,
oversized, nested or unauthenticated body refused as the web layer refuses, changing nothing."""

import json
from pathlib import Path

import jsonschema
import pytest
import requests

from intelmq_nsm.cli import main
from intelmq_nsm.digest.ledger import sqlite_url
from intelmq_nsm.feedback import outcomes
from tests.federation.two_tiers import CASE, T0, Hub, hub_history, hub_id, hub_ledger, hub_states

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def change(n, state="notified", seq=None, at=T0 + 60, **extra):
    body = {
        "change_id": f"ibd-cert/ibd-digest-mail/{seq if seq is not None else n}",
        "finding_id": hub_id(n),
        "state": state,
        "at": "2026-05-28T20:27:40+00:00" if at is None else _iso(at),
        "source": "scan",
        "organisation": {"id": "GM0363", "name": "Amsterdam"},
    }
    body.update(extra)
    return body


def _iso(at):
    import datetime

    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat()


def received(hub) -> list:
    ledger = hub.ledger()
    try:
        return ledger.received()
    finally:
        ledger.close()


def post(hub, body, token=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": content_type}
    if token is not False:
        headers["Authorization"] = f"Bearer {token or hub.ibd_token}"
    return requests.post(hub.url, data=data, headers=headers, timeout=30)


def batch(*changes, instance="ibd-cert"):
    return {"format": "nsm-outcomes/1", "instance": instance, "changes": list(changes)}


def test_a_batch_is_applied_and_the_same_batch_again_is_applied_once(hub):
    body = batch(change(1), change(2), change(2, "fixed-reported", seq=22, source="owner", note="Patched."))
    first = post(hub, body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["applied"], answer["duplicate"], answer["refused"]) == (3, 0, 0)
    assert [r["status"] for r in answer["results"]] == ["applied"] * 3
    states = hub_states(hub)
    assert (states[hub_id(1)], states[hub_id(2)], states[hub_id(3)]) == ("notified", "fixed-reported", "open")
    # Delivered twice (the CERT never heard the first answer): duplicates, nothing applied again.
    again = post(hub, body)
    assert again.status_code == 200 and again.json()["duplicate"] == 3 and again.json()["applied"] == 0
    assert hub_states(hub) == states
    history = [h for h in hub_history(hub, hub_id(2)) if h["source"] == "cert:ibd"]
    assert [(h["state"], h["reference"]) for h in history] == [
        ("notified", "ibd-cert/ibd-digest-mail/2"),
        ("fixed-reported", "ibd-cert/ibd-digest-mail/22"),
    ]
    assert history[1]["note"].endswith("for Amsterdam (GM0363): Patched.") and "by owner" in history[1]["note"]


def test_another_cert_s_credentials_for_these_findings_are_refused_and_change_nothing(hub):
    before = hub_states(hub)
    response = post(hub, batch(change(1, "false-positive"), change(2, "disputed")), token=hub.surf_token)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [("refused", "not_forwarded")] * 2
    assert results[0]["problems"] == [{"path": "$.changes[0].finding_id", "reason": "not forwarded to this CERT"}]
    assert hub_states(hub) == before and hub_states(hub, "surf") == {hub_id(4): "open"}
    # ...and the refusal left no change id behind: IBD's own report of them is applied.
    assert post(hub, batch(change(1, "false-positive"))).json()["applied"] == 1


def test_one_bad_change_is_refused_alone_the_rest_applied(hub):
    bad = [
        change(1, seq=1, state="closed"),  # a state the hub does not know
        change(1, seq=2, at=None) | {"at": "yesterday"},
        change(1, seq=3) | {"at": "2026-05-28T20:27:40"},  # no time zone
        change(1, seq=4, organisation={"name": "no id"}),
        change(1, seq=5, extra="field"),
        change(1, seq=6, note="x" * 2001),
    ]
    response = post(hub, batch(*bad, change(3, seq=7)))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["refused"] * 6 + ["applied"]
    assert [r["reason"] for r in results[:6]] == ["unknown_state"] + ["invalid"] * 5
    assert {p["path"] for r in results[1:6] for p in r["problems"]} >= {
        "$.changes[1].at",
        "$.changes[2].at",
        "$.changes[3].organisation",
        "$.changes[4]",
        "$.changes[5].note",
    }
    assert hub_states(hub)[hub_id(1)] == "open" and hub_states(hub)[hub_id(3)] == "notified"


@pytest.mark.parametrize(
    "body,status,error",
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_encoding"),
        (b"[" * 100 + b"]" * 100, 400, "too_deeply_nested"),
        (
            b'{"format": "nsm-outcomes/1", "changes": [{"note": ' + b"[" * 70 + b"]" * 70 + b"}]}",
            400,
            "too_deeply_nested",
        ),
        (json.dumps({"format": "nsm-outcomes/2", "instance": "ibd-cert", "changes": []}), 400, "invalid_outcomes"),
        (json.dumps(batch(change(1)) | {"more": 1}), 400, "invalid_outcomes"),
        (json.dumps([change(1)]), 400, "invalid_outcomes"),
        (json.dumps(batch(*[change(1, seq=i) for i in range(1001)])), 413, "too_many_changes"),
        (b"x" * (1024 * 1024 + 1), 413, "too_large"),
    ],
)
def test_malformed_oversized_and_nested_bodies_are_refused_whole(hub, body, status, error):
    before = hub_states(hub)
    response = post(hub, body)
    assert response.status_code == status and response.json()["error"] == error, response.text
    assert hub_states(hub) == before and received(hub) == []


def test_credentials_and_media_type_are_checked_before_anything(hub):
    body = batch(change(1))
    assert post(hub, body, token=False).status_code == 401
    assert post(hub, body, token="nsm_00000000_" + "A" * 43).status_code == 401
    refused = post(hub, body, token=hub.unbound_token)
    assert refused.status_code == 403 and refused.json()["error"] == "not_a_cert_token"
    assert post(hub, json.dumps(body), content_type="text/plain").status_code == 415
    assert hub_states(hub)[hub_id(1)] == "open"


def test_without_cert_tokens_the_endpoint_is_off(tmp_path):
    url = sqlite_url(tmp_path / "hub-ledger.sqlite")
    hub_ledger(url, {"ibd": [1]}).close()
    hub = Hub.in_folder(tmp_path, url, cert_tokens_file=None)
    try:
        response = post(hub, batch(change(1)))
        assert response.status_code == 503 and response.json()["error"] == "not_configured"
    finally:
        hub.stop()


def test_the_openapi_document_describes_outcomes_and_the_schema_is_the_harmonization_s(hub):
    document = requests.get(hub.url.replace("/v1/outcomes", "/v1/openapi.json"), timeout=10).json()
    schema = document["components"]["schemas"]["Outcomes"]
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(batch(change(1)), schema)
    assert "/v1/outcomes" in document["paths"] and "413" in document["paths"]["/v1/outcomes"]["post"]["responses"]
    shipped = ROOT / "intelmq_nsm" / "schemas" / outcomes.SCHEMA_NAME
    assert (ROOT / "harmonization" / "nsm-outcomes.schema.json").resolve() == shipped.resolve()


def test_a_cert_s_not_ours_reaches_the_hub_s_operators_as_a_claim_to_correct(hub, tmp_path, capsys):
    dispute = change(2, "disputed", source="owner", note="Not our network; it is the province's.")
    assert post(hub, batch(dispute)).json()["applied"] == 1
    database = str(tmp_path / "hub-ledger.sqlite")
    assert main(["constituency", "disputes", database, "--json"]) == 0
    [found] = json.loads(capsys.readouterr().out)
    assert (found["organisation"], found["finding_id"], found["case_id"]) == ("cert:ibd", hub_id(2), CASE)
    assert found["reported_by"] == "cert:ibd"
    assert "ibd-cert reported disputed by owner for Amsterdam (GM0363): Not our network" in found["comment"]
    # The CERT's claim that routed it there is what to correct: its network, excluded.
    assert found["suggestion"]["change"] == "exclusion" and found["suggestion"]["network"].endswith("/32")
    corrections = tmp_path / "corrections.yaml"
    assert main(["constituency", "disputes", database, "--accept", found["id"], "--corrections", str(corrections)]) == 0
    assert found["suggestion"]["network"] in corrections.read_text(encoding="utf-8")
