"""Failed authentication under load, deeply nested JSON, the feed code in the submission
id, and a broken token file: each loud and bounded, against the real server on loopback."""

import json
import os
import stat
import threading
import time

import pytest

from intelmq_nsm.auth import tokens as tokens_mod
from intelmq_nsm.auth.tokens import TokenVerifier, add_token, read_entries
from intelmq_nsm.bots.collectors.intake.collector import NSMIntakeCollectorBot
from intelmq_nsm.cli import main
from intelmq_nsm.web import nesting
from intelmq_nsm.web.refusal import Refusal

REPORT = {
    "schema": "nsm-report/1",
    "case": {"id": "DIVD-2024-00031", "title": "Exposed example admin panels"},
    "reporter": {"organisation": "DIVD"},
    "findings": [{"ip": "192.0.2.10", "port": 443}],
}


@pytest.fixture
def hashes(monkeypatch):
    """Counts scrypt computations (and the most that ran at once) in the token module."""
    counts = {"calls": 0, "running": 0, "most": 0}
    lock = threading.Lock()
    real = tokens_mod._hash

    def counting(secret, salt, params):
        with lock:
            counts["calls"] += 1
            counts["running"] += 1
            counts["most"] = max(counts["most"], counts["running"])
        try:
            return real(secret, salt, params)
        finally:
            with lock:
                counts["running"] -= 1

    monkeypatch.setattr(tokens_mod, "_hash", counting)
    return counts


def wrong_secret(token: str) -> str:
    return token[:13] + ("B" if token[13] != "B" else "C") + token[14:]


# -- failed authentication --------------------------------------------------------------------


def test_an_unknown_token_id_costs_one_hash_like_a_known_one(tmp_path, hashes):
    path = tmp_path / "tokens.json"
    entry, token = add_token(path, "DIVD", ["divd"])
    verifier = TokenVerifier(path)
    before = hashes["calls"]
    assert verifier.verify(wrong_secret(token)) == (None, "The token is not valid.")
    known = hashes["calls"] - before
    unknown_id = "0" * 8 if entry.id != "0" * 8 else "1" * 8
    assert verifier.verify(f"nsm_{unknown_id}_" + token[13:]) == (None, "The token is not valid.")
    assert (known, hashes["calls"] - before - known) == (1, 1)


def test_failed_authentications_are_limited_per_address_before_hashing(make_intake, hashes):
    intake = make_intake(failed_auth_burst=3, failed_auth_per_minute=1)
    forged = wrong_secret(intake.token)
    answers = [intake.post(REPORT, token=forged)[:2] for _ in range(3)]
    assert [(status, body["error"]) for status, body in answers] == [(401, "unauthorized")] * 3
    calls = hashes["calls"]
    for _ in range(5):
        status, body, headers = intake.post(REPORT, token=forged)
        assert (status, body["error"]) == (429, "too_many_failures") and int(headers["Retry-After"]) >= 1
    status, body, _ = intake.post(REPORT, token="nsm_00000000_" + "A" * 43)
    assert (status, body["error"]) == (429, "too_many_failures")
    assert hashes["calls"] == calls  # nothing hashed for the refused attempts


def test_failed_authentications_are_limited_per_token_id_across_addresses(make_intake, hashes):
    intake = make_intake(failed_auth_burst=3, failed_auth_per_minute=1)
    forged = wrong_secret(intake.other_token)
    for n in range(3):
        with pytest.raises(Refusal) as refused:
            intake.service.tokens.check(forged, f"192.0.2.{n + 1}")
        assert refused.value.status == 401
    calls = hashes["calls"]
    with pytest.raises(Refusal) as refused:
        intake.service.tokens.check(forged, "198.51.100.9")
    assert (refused.value.status, refused.value.code) == (429, "too_many_failures")
    assert hashes["calls"] == calls
    # Another token from those addresses is not held up.
    assert intake.service.tokens.check(intake.token, "198.51.100.9").researcher == "DIVD"


def test_concurrent_hashing_is_bounded(tmp_path, hashes):
    path = tmp_path / "tokens.json"
    _, token = add_token(path, "DIVD", ["divd"])
    verifier = TokenVerifier(path, max_hashing=2)
    barrier = threading.Barrier(8)

    def attempt(n):
        barrier.wait()
        verifier.verify(token[:-2] + f"{n:02d}"[-2:].replace("0", "A"))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hashes["calls"] >= 8 and hashes["most"] <= 2


# -- nesting ----------------------------------------------------------------------------------


def test_the_nesting_count_ignores_brackets_in_strings_and_counts_ndjson_per_line():
    assert nesting.max_depth('{"a": [1, {"b": "[[[[\\"[{"}]}') == 3
    assert nesting.max_depth("[[[\n[\n", per_line=True) == 3
    assert nesting.max_depth("[" * 100000) == 100000
    assert nesting.max_depth("[[\n" * 3 + "[]\n", per_line=True) == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[" * 100000 + "]" * 100000, "application/json"),
        (json.dumps(REPORT).replace('"Exposed example admin panels"', "[" * 5000 + "]" * 5000), "application/json"),
        ('{"ip": "192.0.2.1"}\n' + '{"x": ' + "[" * 3000 + "]" * 3000 + "}\n", "application/x-ndjson"),
    ],
    ids=["whole body", "in a case field", "in one ndjson line"],
)
def test_deeply_nested_json_is_refused_with_400_naming_the_limit(intake, body, content_type):
    status, answer, _ = intake.post(body, content_type)
    assert (status, answer["error"]) == (400, "too_deeply_nested"), answer
    assert f"at most {nesting.MAX_DEPTH}" in answer["message"]
    assert intake.sent == []


def test_a_report_nested_to_the_limit_is_not_refused_for_its_nesting(intake):
    inner = "[" * (nesting.MAX_DEPTH - 3) + "]" * (nesting.MAX_DEPTH - 3)
    body = json.dumps(REPORT)[:-3] + ', "evidence": ' + inner + "}]}"
    assert nesting.max_depth(body) == nesting.MAX_DEPTH
    status, answer, _ = intake.post(body)
    assert status == 202 or answer["error"] != "too_deeply_nested", answer


# -- the feed code in the submission id -------------------------------------------------------


def test_the_same_body_under_another_feed_code_is_a_submission_of_its_own(intake):
    first = intake.post(REPORT, query="?feed_code=divd")[1]
    second = intake.post(REPORT, query="?feed_code=divd-csv")[1]
    assert first["submission_id"] != second["submission_id"]
    assert (first["duplicate"], second["duplicate"]) == (False, False)
    assert [item.meta["feed_code"] for item in intake.sent] == ["divd", "divd-csv"]


# -- a broken token file ----------------------------------------------------------------------


def _break(path, how):
    if how == "unknown key":
        data = json.loads(path.read_text())
        data["tokens"][1]["valid_until"] = "2030-01-01"
        path.write_text(json.dumps(data))
    elif how == "unreadable":
        os.chmod(path, 0)
    else:
        path.write_text('{"tokens": [')


@pytest.mark.parametrize("how", ["unknown key", "unreadable", "not json"])
def test_a_broken_token_file_is_loud_in_health_submissions_and_status(intake, how):
    if how == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    sid = intake.post(REPORT)[1]["submission_id"]
    original = intake.token_file.read_text()
    _break(intake.token_file, how)
    time.sleep(0.01)
    status, body, _ = intake.request("GET", "/v1/health")
    assert (status, body["status"]) == (503, "misconfigured")
    assert {"unknown key": "valid_until", "unreadable": "cannot be read", "not json": "cannot be parsed"}[how] in body[
        "problem"
    ]
    status, body, headers = intake.post({**REPORT, "case": {**REPORT["case"], "id": "DIVD-2024-00077"}})
    assert (status, body["error"]) == (503, "server_misconfigured") and "configuration" in body["message"]
    assert int(headers["Retry-After"]) >= 1
    status, body, _ = intake.request("GET", f"/v1/reports/{sid}", token=intake.token)
    assert (status, body["error"]) == (503, "server_misconfigured")
    # Mended, it works again without a restart.
    os.chmod(intake.token_file, 0o600)
    intake.token_file.write_text(original)
    assert intake.request("GET", "/v1/health")[:2] == (200, {"status": "ok", "pipeline": "ok", "pending_reports": 0})
    assert intake.request("GET", f"/v1/reports/{sid}", token=intake.token)[0] == 200


def test_check_and_the_tokens_command_name_the_token_file_s_problem(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    add_token(path, "DIVD", ["divd"])
    _break(path, "not json")
    [[level, message]] = NSMIntakeCollectorBot.check({"token_file": str(path)})
    assert level == "error" and "cannot be parsed" in message
    assert main(["tokens", "list", "--file", str(path)]) == 2
    assert "cannot be parsed" in capsys.readouterr().err
    add_token(tmp_path / "other.json", "DIVD", ["divd"])
    data = json.loads((tmp_path / "other.json").read_text())
    data["tokens"][0]["valid_until"] = "2030-01-01"
    (tmp_path / "other.json").write_text(json.dumps(data))
    [[level, message]] = NSMIntakeCollectorBot.check({"token_file": str(tmp_path / "other.json")})
    assert level == "error" and "unknown key(s) valid_until" in message


def test_adding_a_token_keeps_the_file_s_mode(tmp_path):
    path = tmp_path / "tokens.json"
    add_token(path, "DIVD", ["divd"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    add_token(path, "Example Research", ["example"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and len(read_entries(path)) == 2


def test_tokens_expire_and_the_listing_says_so(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    _, old = add_token(path, "DIVD", ["divd"], expires="2020-01-01")
    _, current = add_token(path, "DIVD", ["divd"], expires="2999-12-31T12:00:00+01:00")
    verifier = TokenVerifier(path)
    assert verifier.verify(old) == (None, "The token has expired.")
    assert verifier.verify(current)[0].expires == "2999-12-31T12:00:00+01:00"
    assert main(["tokens", "list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "expired 2020-01-01T00:00:00+00:00" in listing and "active until 2999-12-31T12:00:00+01:00" in listing
    add = ["tokens", "add", "--file", str(path), "--researcher", "X", "--feed-code", "x", "--expires"]
    assert main([*add, "soon"]) == 2
    assert "not an ISO 8601" in capsys.readouterr().err
    assert main([*add, "2030-06-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expires"] == "2030-06-01T00:00:00+00:00"
    # A file without expiries carries no expires key: older versions still read it.
    plain = tmp_path / "plain.json"
    add_token(plain, "DIVD", ["divd"])
    assert "expires" not in plain.read_text()
