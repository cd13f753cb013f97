"""The intake's HTTP API against the real server on loopback: authentication, edge
validation, limits, idempotency and the status endpoints."""

import base64
import json
import logging
import socket
import threading
import time

import pytest

CASE = {"id": "DIVD-2024-00031", "title": "Exposed example admin panels", "severity": "high"}
REPORT = {
    "schema": "nsm-report/1",
    "case": CASE,
    "reporter": {"organisation": "DIVD"},
    "findings": [{"ip": "192.0.2.10", "port": 443}, {"hostname": "portal.gemeente.example", "port": 8443}],
}
CSV = "ip,asn,holder\n192.0.2.20,64496,Example Net\n198.51.100.7,64497,Other Net\n"
CSV_CASE = "?case_id=DIVD-2024-00032&case_title=Open%20example%20service&case_cve=CVE-2024-0001,CVE-2024-0002"
NDJSON = (
    '{"template-id": "example-panel", "host": "192.0.2.30", "ip": "192.0.2.30", "port": "443"}\n'
    '{"template-id": "example-panel", "host": "192.0.2.31", "ip": "192.0.2.31", "port": "443"}\n'
)


def raw_connection(intake):
    sock = socket.create_connection(("127.0.0.1", intake.port), timeout=10)
    return sock


def read_response(sock) -> tuple:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, json.loads(rest[:length]), head.decode("latin-1")


# -- accepted submissions ---------------------------------------------------------------


def test_an_nsm_report_is_accepted_and_becomes_one_report_with_the_token_s_identity(intake):
    status, body, _ = intake.post(REPORT)
    assert status == 202, body
    assert body["status"] == "queued" and body["records"] == 2 and body["reports"] == 1
    assert len(body["submission_id"]) == 64 and body["duplicate"] is False
    [item] = intake.sent
    assert item.meta["researcher"] == "DIVD" and item.meta["feed_code"] == "divd"
    assert item.meta["submission_id"] == body["submission_id"]
    assert item.meta["content_type"] == "application/json"
    assert json.loads(item.raw) == REPORT


def test_a_csv_takes_its_case_from_query_parameters_and_headers(intake):
    status, body, _ = intake.post(CSV, "text/csv; charset=utf-8", query=CSV_CASE + "&feed_code=divd-csv")
    assert status == 202, body
    [item] = intake.sent
    assert item.meta["feed_code"] == "divd-csv"
    assert item.meta["case"] == {
        "id": "DIVD-2024-00032",
        "title": "Open example service",
        "cve": ["CVE-2024-0001", "CVE-2024-0002"],
    }
    assert item.raw.decode() == CSV
    status, body, _ = intake.request(
        "POST",
        "/v1/reports",
        CSV.encode(),
        intake.token,
        "text/csv",
        {"X-NSM-Case-Id": "DIVD-2024-00033", "X-NSM-Case-Title": "Via headers", "X-NSM-Case-Severity": "low"},
    )
    assert status == 202, body
    assert intake.sent[1].meta["case"] == {"id": "DIVD-2024-00033", "title": "Via headers", "severity": "low"}


def test_ndjson_lines_are_accepted(intake):
    status, body, _ = intake.post(NDJSON, "application/x-ndjson")
    assert status == 202 and body["records"] == 2
    assert intake.sent[0].raw.decode() == NDJSON


def test_a_large_submission_is_split_into_bounded_reports_with_records_whole(make_intake):
    intake = make_intake(max_report_bytes=2000)
    findings = [{"ip": f"192.0.2.{i}", "port": 443, "evidence": "x" * 100} for i in range(1, 101)]
    status, body, _ = intake.post({**REPORT, "findings": findings})
    assert status == 202, body
    assert body["records"] == 100 and body["reports"] == len(intake.sent) > 5
    seen = []
    for item in intake.sent:
        assert len(item.raw) <= 2000
        part = json.loads(item.raw)
        assert part["case"] == CASE and part["reporter"] == REPORT["reporter"]
        assert item.meta["first_record"] == len(seen) + 1
        seen += part["findings"]
    assert seen == findings


# -- authentication and authorisation -----------------------------------------------------


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "An Authorization header with a Bearer token is required."),
        ("not-a-token", "The token is not valid."),
        ("nsm_00000000_" + "A" * 43, "The token is not valid."),
    ],
)
def test_missing_and_wrong_tokens_are_refused_with_401(intake, token, reason):
    status, body, headers = intake.post(REPORT, token=token)
    assert (status, body["error"], body["message"]) == (401, "unauthorized", reason)
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert intake.sent == []


def test_a_token_with_a_known_id_but_a_wrong_secret_is_refused(intake):
    forged = intake.token[:13] + ("B" if intake.token[13] != "B" else "C") + intake.token[14:]
    status, body, _ = intake.post(REPORT, token=forged)
    assert (status, body["message"]) == (401, "The token is not valid.")


def test_a_revoked_token_is_refused_also_when_revoked_while_the_server_runs(intake):
    status, body, _ = intake.post(REPORT, token=intake.revoked_token)
    assert (status, body["message"]) == (401, "The token was revoked.")
    from intelmq_nsm.auth.tokens import read_entries, revoke_token

    assert intake.post(REPORT)[0] == 202
    divd = next(e for e in read_entries(intake.token_file) if e.researcher == "DIVD")
    revoke_token(intake.token_file, divd.id)
    status, body, _ = intake.post({**REPORT, "case": {**CASE, "id": "DIVD-2024-00099"}})
    assert (status, body["message"]) == (401, "The token was revoked.")
    assert len(intake.sent) == 1


def test_a_feed_code_not_among_the_token_s_is_refused_with_403(intake):
    status, body, _ = intake.post(REPORT, query="?feed_code=example")
    assert (status, body["error"]) == (403, "forbidden_feed_code")


def test_the_rate_limit_per_token_answers_429_with_retry_after(make_intake):
    intake = make_intake(requests_per_minute=6, burst=2)
    assert intake.post(REPORT)[0] == 202
    assert intake.post(REPORT)[0] == 202  # a repeat, still a request
    status, body, headers = intake.post(REPORT)
    assert (status, body["error"]) == (429, "rate_limited")
    assert int(headers["Retry-After"]) >= 1
    # Another researcher's token has its own bucket.
    assert intake.post(CSV, "text/csv", token=intake.other_token, query=CSV_CASE)[0] == 202


# -- edge validation ----------------------------------------------------------------------


def test_invalid_json_is_refused_with_400(intake):
    status, body, _ = intake.post('{"schema": "nsm-report/1", "case": ')
    assert (status, body["error"]) == (400, "invalid_report")
    assert body["problems"][0]["path"] == "$" and "not valid JSON" in body["problems"][0]["reason"]


def test_schema_violations_name_the_json_path_and_the_reason(intake):
    bad = {**REPORT, "findings": [{"ip": "192.0.2.1", "port": 70000}, {"port": 22}]}
    status, body, _ = intake.post(bad)
    assert status == 400
    problems = {p["path"]: p["reason"] for p in body["problems"]}
    assert "$.findings[0].port" in problems and "70000" in problems["$.findings[0].port"]
    assert problems["$.findings[1]"] == "has no address: one of ip, hostname or url is required"
    assert intake.sent == []


def test_bad_ndjson_lines_and_csv_rows_are_named(intake):
    status, body, _ = intake.post(NDJSON + "[1, 2]\nnot json\n", "application/x-ndjson")
    assert status == 400
    assert [p["path"] for p in body["problems"]] == ["$[2]", "$[3]"]
    status, body, _ = intake.post(CSV + "192.0.2.9,64496\n", "text/csv", query=CSV_CASE)
    assert status == 400 and body["problems"] == [{"path": "row 3", "reason": "row has 2 fields, the header has 3"}]
    status, body, _ = intake.post("name,port\nx,1\n", "text/csv", query=CSV_CASE)
    assert status == 400 and body["problems"][0]["path"] == "header"


def test_a_csv_without_case_metadata_is_refused(intake):
    status, body, _ = intake.post(CSV, "text/csv")
    assert status == 400 and body["error"] == "invalid_case"
    assert {p["reason"] for p in body["problems"]} == {"'id' is a required property", "'title' is a required property"}


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "multipart/form-data", "application/json; charset=latin-1"]
)
def test_wrong_content_types_are_refused_with_415(intake, content_type):
    status, body, _ = intake.post(REPORT, content_type=content_type)
    assert status == 415, body
    assert intake.sent == []


def test_a_body_that_is_not_utf8_is_refused(intake):
    status, body, _ = intake.post(CSV.replace("Example", "Ex\xe4mple").encode("latin-1"), "text/csv", query=CSV_CASE)
    assert (status, body["error"]) == (400, "invalid_encoding")


def test_unknown_query_parameters_and_case_metadata_on_json_are_refused(intake):
    assert intake.post(REPORT, query="?feedcode=divd")[1]["error"] == "bad_parameter"
    assert intake.post(REPORT, query="?case_id=DIVD-2024-00001")[1]["error"] == "bad_parameter"


def test_a_body_over_the_limit_is_refused_by_content_length_before_it_is_read(make_intake):
    intake = make_intake(max_body_size=1000)
    sock = raw_connection(intake)
    with sock:
        # Announce 10 GB and send nothing: the answer must come without the body.
        sock.sendall(
            b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + intake.token.encode() + b"\r\nContent-Length: 10000000000\r\n\r\n"
        )
        status, body, head = read_response(sock)
        assert (status, body["error"]) == (413, "too_large")
        assert "Connection: close" in head
    # The same with Expect: 100-continue: refused instead of "100 Continue".
    sock = raw_connection(intake)
    with sock:
        sock.sendall(
            b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Authorization: Bearer " + intake.token.encode() + b"\r\nContent-Length: 5000\r\n\r\n"
        )
        status, body, _ = read_response(sock)
        assert status == 413
    # A client that sends its 3 MB body regardless still gets the answer (lingering close).
    status, body, _ = intake.post(b"x" * 3_000_000)
    assert status == 413


def test_a_missing_content_length_is_refused(intake):
    sock = raw_connection(intake)
    with sock:
        sock.sendall(
            b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Authorization: Bearer " + intake.token.encode() + b"\r\n\r\n5\r\n{}{}{\r\n0\r\n\r\n"
        )
        assert read_response(sock)[0] == 411


def test_a_slow_body_times_out_with_408(make_intake):
    intake = make_intake(body_timeout=1)
    body = json.dumps(REPORT).encode()
    sock = raw_connection(intake)
    with sock:
        sock.sendall(
            b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + intake.token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        started = time.monotonic()
        # A byte every 0.3 s: each read succeeds, the body as a whole takes too long.
        for byte in body[:10]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # the server gave up and closed: its answer is waiting
                break
            time.sleep(0.3)
        status, answer, _ = read_response(sock)
        assert (status, answer["error"]) == (408, "timeout")
        assert time.monotonic() - started < 5
    assert intake.sent == []


# -- idempotency --------------------------------------------------------------------------


def test_the_same_content_again_returns_the_same_id_and_creates_no_second_report(intake):
    first = intake.post(REPORT)[1]
    second = intake.post(REPORT)[1]
    assert first["submission_id"] == second["submission_id"] and second["duplicate"] is True
    assert len(intake.sent) == 1
    # Another researcher sending the same content (the case shared with them) makes a submission of its own.
    intake.cases.share(REPORT["case"]["id"], "Example Research")
    third = intake.post(REPORT, token=intake.other_token, query="")[1]
    assert third["submission_id"] != first["submission_id"]


def test_concurrent_identical_submissions_make_one_report(intake):
    results = []
    barrier = threading.Barrier(12)

    def submit():
        barrier.wait()
        results.append(intake.post(REPORT))

    threads = [threading.Thread(target=submit) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _, _ in results} == {202}
    assert len({body["submission_id"] for _, body, _ in results}) == 1
    assert sorted(body["duplicate"] for _, body, _ in results) == [False] + [True] * 11
    time.sleep(0.3)
    assert len(intake.sent) == 1


# -- pipeline down ------------------------------------------------------------------------


def test_when_the_pipeline_is_down_the_submission_is_spooled_and_sent_later(intake):
    intake.pipeline_up = False
    status, body, _ = intake.post(REPORT)
    assert (status, body["status"]) == (202, "spooled")
    assert intake.request("GET", "/v1/health")[1] == {
        "status": "degraded",
        "pipeline": "unavailable",
        "pending_reports": 1,
    }
    intake.pipeline_up = True
    intake.service.state.work.set()
    deadline = time.monotonic() + 5
    while not intake.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(intake.sent) == 1
    assert intake.request("GET", f"/v1/reports/{body['submission_id']}", token=intake.token)[1]["status"] == "queued"


# -- status and health --------------------------------------------------------------------


def test_the_status_endpoint_answers_the_submitter_only(intake):
    sid = intake.post(REPORT)[1]["submission_id"]
    status, body, _ = intake.request("GET", f"/v1/reports/{sid}", token=intake.token)
    assert status == 200 and body["submission_id"] == sid and body["status"] == "queued" and body["records"] == 2
    assert intake.request("GET", f"/v1/reports/{sid}", token=intake.other_token)[0] == 404
    assert intake.request("GET", f"/v1/reports/{sid}")[0] == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v1/reports/../../etc/passwd",
        "/v1/reports/%2e%2e%2fspool.sqlite",
        "/v1/reports/" + "A" * 64,
        "/v1/reports/" + "0" * 63 + "/",
        "/v1/reports/" + "0" * 64 + "?x=/../..",
    ],
)
def test_submission_ids_with_path_tricks_are_refused(intake, path):
    status, body, _ = intake.request("GET", path, token=intake.token)
    assert status in (400, 404) and body["error"] in ("bad_submission_id", "not_found")


def test_health_needs_no_token_and_unknown_paths_are_404(intake):
    status, body, _ = intake.request("GET", "/v1/health")
    assert (status, body) == (200, {"status": "ok", "pipeline": "unknown", "pending_reports": 0})
    assert intake.request("GET", "/v2/anything")[0] == 404
    assert intake.request("DELETE", "/v1/reports")[0] == 405


def test_tokens_never_appear_in_logs(intake, caplog):
    caplog.set_level(logging.DEBUG, logger="tests.intake")
    intake.post(REPORT)
    intake.post(REPORT, token=intake.revoked_token)
    intake.post(REPORT, token=intake.token[:-2] + "xx")
    intake.request("GET", "/v1/health")
    text = caplog.text
    assert "Accepted submission" in text
    for token in (intake.token, intake.revoked_token, intake.other_token):
        assert token not in text and token[13:] not in text
    assert all(base64.b64encode(intake.token.encode()).decode() not in r.getMessage() for r in caplog.records)
