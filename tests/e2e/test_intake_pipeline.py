"""The intake collector in a real pipeline: researchers POST to the running bot, the
report parser turns the reports into events, a file output writes them. Also: the
security cases against the bot's server, and Redis going down during submissions."""

import http.client
import json
from pathlib import Path

import pytest

from intelmq_nsm import event_contract as ec
from intelmq_nsm.auth.tokens import add_token, revoke_token
from tests.harness import free_port, wait_for

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "bots" / "parsers" / "fixtures"
CASE = {"id": "DIVD-2024-00031", "title": "Exposed example admin panels", "severity": "high"}
NSM = {
    "schema": "nsm-report/1",
    "case": CASE,
    "reporter": {"organisation": "DIVD"},
    "findings": [{"ip": f"192.0.2.{i}", "port": 443, "evidence": "x" * 200} for i in range(1, 21)],
}
CSV = "ip,asn,holder\n198.51.100.7,64496,Example Net\n198.51.100.8,64497,Other Net\n"
CSV_QUERY = "?feed_code=divd-csv&case_id=DIVD-2024-00032&case_title=Open%20example%20service&case_cve=CVE-2024-0001"


class Researcher:
    def __init__(self, port: int, token: str):
        self.port, self.token = port, token

    def request(self, method, path, body=None, content_type="application/json", token=...):
        token = self.token if token is ... else token
        headers = {"Content-Type": content_type} if content_type else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def post(self, body, content_type="application/json", query="", token=...):
        return self.request("POST", "/v1/reports" + query, body, content_type, token)


@pytest.fixture
def intake_pipeline(tmp_path, intelmq_pipeline):
    token_file = tmp_path / "tokens.json"
    _, token = add_token(token_file, "DIVD", ["divd", "divd-csv"], feed_name="DIVD scans")
    revoked, revoked_token = add_token(token_file, "Former Research", ["former"])
    revoke_token(token_file, revoked.id)
    port = free_port()
    events_file = tmp_path / "events.jsonl"
    pipeline = intelmq_pipeline({
        "nsm-intake": {
            "module": "intelmq.bots.collectors.nsm.intake",
            "parameters": {
                "http_port": port,
                "token_file": str(token_file),
                "spool_file": str(tmp_path / "intake-spool.sqlite"),
                "max_body_size": 200000,
                "max_report_size": 2000,
                "send_wait": 3,
                "requests_per_minute": 0,  # the tests poll the status; the limit has its own tests
                "destination_queues": {"_default": ["nsm-parser-queue"]},
            },
        },
        "nsm-parser": {
            "module": "intelmq.bots.parsers.nsm.report",
            "parameters": {
                # IntelMQ's own parameter: carry the submission id into the events, for tracing.
                "copy_collector_provided_fields": [ec.SUBMISSION_ID],
                "destination_queues": {"_default": ["file-output-queue"]},
            },
        },
        "file-output": {
            "module": "intelmq.bots.outputs.file.output",
            "parameters": {"file": str(events_file), "hierarchical_output": False},
        },
    })  # fmt: skip
    pipeline.start()
    researcher = Researcher(port, token)
    wait_for(lambda: _health(researcher), timeout=15, what="the intake's HTTP server")
    researcher.revoked_token = revoked_token
    return pipeline, researcher, events_file


def _health(researcher):
    try:
        return researcher.request("GET", "/v1/health", token=None)[0] == 200
    except OSError:
        return False


def _is_object(line):
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_three_formats_posted_by_a_researcher_come_out_as_events(intake_pipeline):
    pipeline, researcher, events_file = intake_pipeline
    nuclei_lines = [line for line in (FIXTURES / "nuclei.jsonl").read_text().splitlines() if _is_object(line)]
    nuclei = "\n".join(nuclei_lines) + "\n"

    status, nsm = researcher.post(NSM)
    assert status == 202 and nsm["status"] == "queued" and nsm["reports"] > 1, nsm
    status, csv = researcher.post(CSV, "text/csv", CSV_QUERY)
    assert status == 202 and csv["status"] == "queued", csv
    status, ndjson = researcher.post(nuclei, "application/x-ndjson")
    assert status == 202 and ndjson["records"] == len(nuclei_lines), ndjson

    pipeline.wait_drained()
    events = pipeline.read_file_output(events_file)
    by_submission = {}
    for event in events:
        by_submission.setdefault(event[ec.SUBMISSION_ID], []).append(event)
    # All 20 findings of the split NSM report, numbered within the whole submission.
    nsm_events = by_submission[nsm["submission_id"]]
    assert sorted(e[ec.RECORD] for e in nsm_events) == list(range(1, 21))
    assert {e["source.ip"] for e in nsm_events} == {f"192.0.2.{i}" for i in range(1, 21)}
    assert {e["classification.identifier"] for e in nsm_events} == {"DIVD-2024-00031"}
    # The CSV's case came from the query string.
    csv_events = by_submission[csv["submission_id"]]
    assert sorted(e["source.ip"] for e in csv_events) == ["198.51.100.7", "198.51.100.8"]
    assert {(e["feed.code"], e[ec.CASE_ID], e["product.vulnerabilities"]) for e in csv_events} == {
        ("divd-csv", "DIVD-2024-00032", "cve-2024-0001")
    }
    assert ndjson["submission_id"] in by_submission
    # Identity from the token, for every event.
    assert {(e["feed.provider"], e["feed.name"]) for e in events} == {("DIVD", "DIVD scans")}
    # A repeat creates nothing.
    assert researcher.post(NSM)[1]["duplicate"] is True
    pipeline.wait_drained()
    assert len(pipeline.read_file_output(events_file)) == len(events)
    assert researcher.request("GET", f"/v1/reports/{csv['submission_id']}")[1]["status"] == "queued"
    assert pipeline.log_lines(level="ERROR") == []


def test_the_running_bot_refuses_bad_requests_and_never_logs_tokens(intake_pipeline):
    pipeline, researcher, _ = intake_pipeline
    assert researcher.post(NSM, token=None)[0] == 401
    assert researcher.post(NSM, token="nsm_00000000_" + "A" * 43)[0] == 401
    assert researcher.post(NSM, token=researcher.revoked_token)[1]["message"] == "The token was revoked."
    assert researcher.post(NSM, content_type="text/plain")[0] == 415
    assert researcher.post(NSM, query="?feed_code=former")[0] == 403
    assert researcher.post({**NSM, "findings": [{"ip": "192.0.2.1", "port": "443"}]})[1]["problems"] == [
        {"path": "$.findings[0].port", "reason": "'443' is not of type 'integer'"}
    ]
    assert researcher.post("{", "application/json")[0] == 400
    # The client sends its whole 300 kB body anyway: it still gets the answer.
    assert researcher.post({**NSM, "padding": "x" * 300000})[0] == 413
    assert researcher.request("GET", "/v1/reports/../../../etc/passwd")[0] == 400
    log = pipeline.log("nsm-intake")
    for token in (researcher.token, researcher.revoked_token):
        assert token[13:] not in log
    assert pipeline.dumps() == {}


def _spooled_submission(researcher, ip):
    status, body = researcher.post({**NSM, "findings": [{"ip": ip, "port": 22}]})
    # Durable either way; redis-py's own retries may take longer than send_wait to give up.
    assert status == 202 and body["status"] in ("accepted", "spooled"), body
    sid = body["submission_id"]
    wait_for(
        lambda: researcher.request("GET", f"/v1/reports/{sid}")[1]["status"] == "spooled", timeout=30, interval=0.2
    )
    return sid


def test_reports_submitted_while_redis_is_down_are_spooled_and_delivered_later(intake_pipeline):
    pipeline, researcher, events_file = intake_pipeline
    pipeline.redis.stop()
    first = _spooled_submission(researcher, "203.0.113.1")
    assert researcher.request("GET", "/v1/health", token=None)[1]["pipeline"] == "unavailable"

    # Redis comes back: the running bot sends what it spooled.
    pipeline.redis.restart()
    events = pipeline.wait_for_file_output(events_file, count=1, timeout=60)
    assert [e["source.ip"] for e in events] == ["203.0.113.1"]
    wait_for(lambda: researcher.request("GET", f"/v1/reports/{first}")[1]["status"] == "queued", timeout=10)

    # Down again, and the intake restarts before Redis is back: sent after the start.
    pipeline.wait_drained()
    pipeline.redis.stop()
    second = _spooled_submission(researcher, "203.0.113.2")
    pipeline.stop("nsm-intake")
    # Stopping takes a few seconds while Redis is away (IntelMQ writes its statistics).
    wait_for(lambda: pipeline.status("nsm-intake") == "stopped", timeout=30, what="nsm-intake to stop")
    pipeline.redis.restart()
    pipeline.start("nsm-intake")
    events = pipeline.wait_for_file_output(events_file, count=2, timeout=60)
    assert [e["source.ip"] for e in events] == ["203.0.113.1", "203.0.113.2"]
    assert {e[ec.SUBMISSION_ID] for e in events} == {first, second}
    pipeline.wait_drained()
    assert len(pipeline.read_file_output(events_file)) == 2  # none lost, none twice
