"""POST /v1/feedback from the ticket system and the OpenAPI document, over real HTTP."""

import contextlib
import csv
import io
import json

import jsonschema
import pytest
import requests

from intelmq_nsm.cli import main
from intelmq_nsm.feedback import api
from intelmq_nsm.feedback import config as config_mod
from tests.feedback.test_pages import history, states

pytestmark = pytest.mark.e2e


def send(service, body, token=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token or service.api_token}"}
    return requests.post(service.url + "/v1/feedback", data=data, headers=headers, timeout=10)


def feedback(delivered, org="GM0363", index=0, **extra):
    finding = delivered.documents()[org]["findings"][index]
    return {
        "finding_id": finding["finding_id"],
        "organisation": org,
        "state": "fixed-reported",
        "comment": "Patched, ticket closed.",
        "reference": "IBD-2026-0042",
        **extra,
    }


def test_an_answer_is_recorded_once_by_reference(delivered, service):
    body = feedback(delivered)
    first = send(service, body)
    assert first.status_code == 201, first.text
    result = first.json()
    assert result["state"] == "fixed-reported" and result["previous_state"] == "notified"
    assert result["duplicate"] is False and result["reference"] == "IBD-2026-0042"
    again = send(service, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    entries = [h for h in history(delivered, body["finding_id"], "GM0363") if h["source"] == "ticket"]
    assert len(entries) == 1 and entries[0]["note"] == "Patched, ticket closed."
    # The same reference for another answer is a conflict and changes nothing.
    conflict = send(service, {**body, "state": "disputed"})
    assert conflict.status_code == 409
    assert states(delivered)[("GM0363", body["finding_id"])] == "fixed-reported"


def test_authentication_is_required(delivered, service):
    before = states(delivered)
    assert send(service, feedback(delivered), token="nsm_00000000_" + "A" * 43).status_code == 401
    response = requests.post(service.url + "/v1/feedback", json=feedback(delivered), timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert states(delivered) == before


@pytest.mark.parametrize(
    "body,status,error",
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_encoding"),
        (b"[" * 100 + b"]" * 100, 400, "too_deeply_nested"),
        (b'{"finding_id": 1}', 400, "invalid_feedback"),
        (b"x" * (config_mod.LIMITS.max_body_size + 1), 413, "too_large"),
        (b"x" * (api.MAX_FEEDBACK_BYTES + 1), 413, "too_large"),  # the endpoint's own cap
    ],
)
def test_malformed_and_oversized_bodies(delivered, service, body, status, error):
    before = states(delivered)
    response = send(service, body)
    assert response.status_code == status and response.json()["error"] == error
    assert states(delivered) == before


def test_invalid_fields_are_named(delivered, service):
    response = send(service, feedback(delivered, state="closed", extra="x"))
    assert response.status_code == 400
    paths = {p["path"] for p in response.json()["problems"]}
    assert "$.state" in paths and "$" in paths


def test_unknown_findings_and_foreign_organisations_are_404(delivered, service):
    before = states(delivered)
    unknown = send(service, feedback(delivered, finding_id="nf1-" + "0" * 32, reference="R-1"))
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_finding"
    # Amsterdam's finding claimed for Utrecht.
    assert send(service, feedback(delivered, organisation="GM0344", reference="R-2")).status_code == 404
    assert states(delivered) == before


def test_not_json_is_415(delivered, service):
    response = send(service, json.dumps(feedback(delivered)), content_type="text/plain")
    assert response.status_code == 415


def test_html_in_a_comment_is_stored_as_text_and_shown_inert(delivered, service):
    body = feedback(delivered, comment="<script>alert(1)</script>", reference="R-html")
    assert send(service, body).status_code == 201
    page = requests.get(service.local(delivered.documents()["GM0363"]["feedback_url"]), timeout=10).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_openapi_document_is_served_and_holds_the_schema(service):
    response = requests.get(service.url + "/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    schema = document["components"]["schemas"]["Feedback"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["required"]) == {"finding_id", "organisation", "state", "reference"}
    assert "/v1/feedback" in document["paths"]


def test_without_a_token_file_the_api_is_off(delivered, service_factory):
    service = service_factory(delivered, tickets=False)
    response = send(service, feedback(delivered))
    assert response.status_code == 503 and response.json()["error"] == "not_configured"


def test_comments_in_the_answers_csv_are_formula_safe(tmp_path, delivered, service):
    body = feedback(delivered, comment='=HYPERLINK("http://evil.example","klik")', reference="R-csv")
    assert send(service, body).status_code == 201
    config = tmp_path / "feedback.yaml"
    config.write_text(
        f"ledger_url: {service.config.ledger_url}\nledger_name: {service.config.ledger_name}\n"
        f"secret_file: {service.config.secret_file}\n"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["feedback", "answers", "--config", str(config)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 1
    assert rows[0]["comment"] == '\'=HYPERLINK("http://evil.example","klik")'
    assert rows[0]["state"] == "fixed-reported" and rows[0]["source"] == "ticket"
