"""The operators' overview on the real feedback service: login with an operator token,
per organisation its open findings and their age, per case the chart; comments inert."""

import dataclasses
import http.client
import logging
import re
from urllib.parse import urlencode

import pytest

from intelmq_nsm.auth.tokens import TokenVerifier, add_token, read_entries, revoke_token, write_entries
from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.feedback.answers import FeedbackConfig, FeedbackStore
from intelmq_nsm.feedback.config import ServiceConfig
from intelmq_nsm.feedback.context import ServiceContext
from intelmq_nsm.feedback.links import LinkSigner, create_secret
from intelmq_nsm.feedback.server import FeedbackServer
from tests.outcome.ledgers import CASE, FINDINGS, T0, case_ledger

pytestmark = pytest.mark.e2e

SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Served:
    def __init__(self, tmp_path, limits=config_mod.LIMITS):
        spool = tmp_path / "spool.sqlite"
        ledger = case_ledger(spool)
        ledger.record_answer(FINDINGS[1][0], FINDINGS[1][1], "disputed", note=SCRIPT, now=T0 + 86400)
        ledger.close()
        secret = tmp_path / "secret"
        create_secret(secret)
        self.operators = operators = tmp_path / "operators.json"
        self.operator, self.operator_token = add_token(operators, "IBD operator", ["operators"])
        researchers = tmp_path / "researchers.json"
        _, self.other_token = add_token(researchers, "DIVD", ["divd"])
        config = ServiceConfig(
            ledger_url=f"sqlite:///{spool}",
            ledger_name="ibd-digest-mail",
            secret_file=str(secret),
            operator_tokens_file=str(operators),
            port=0,
            limits=limits,
        )
        self.store = FeedbackStore(FeedbackConfig(config.ledger_url, config.ledger_name))
        context = ServiceContext(
            config,
            self.store,
            LinkSigner.from_file(secret),
            logging.getLogger("test-overview"),
            operators=TokenVerifier(operators),
        )
        self.server = FeedbackServer(context).start()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def login(self, token):
        _, _, page = self.request("GET", "/operators/login")
        fields = dict(re.findall(rb'name="(nonce|csrf)" value="([^"]*)"', page))
        form = urlencode({"nonce": fields[b"nonce"], "csrf": fields[b"csrf"], "token": token})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", "/operators/login", form.encode(), headers)

    def close(self):
        self.server.stop()
        self.store.close()


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path)
    yield served
    served.close()


def cookie_of(headers) -> dict:
    value = headers["Set-Cookie"].split(";")[0]
    return {"Cookie": value}


def test_an_operator_logs_in_and_sees_open_findings_per_organisation_and_the_case_chart(served):
    status, headers, _ = served.login(served.operator_token)
    assert status == 303 and headers["Location"] == "/operators"
    assert all(flag in headers["Set-Cookie"] for flag in ("HttpOnly", "Secure", "SameSite=Strict"))
    status, headers, page = served.request("GET", "/operators", headers=cookie_of(headers))
    # Outside text is isolated (<bdi>, see test_a_comment_s_bidi_override_...): read without it.
    text = re.sub(r"</?bdi>", "", re.sub(r">\s+<", "><", page.decode()))
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    # Amsterdam: one fixed, one false positive, none open; Rotterdam disputed; the university notified.
    table = text.split("<h2>Cases</h2>")[0]
    assert "Amsterdam" not in table
    assert re.search(r"Rotterdam \(GM0599\)</td><td>ibd</td><td>1</td><td>\d+\.\d</td>", table)
    assert re.search(r"Universiteit Voorbeeld \(UNI-EX\)</td><td>surf</td><td>1</td>", table)
    assert f'<img src="/operators/cases/{CASE}/chart.svg"' in text
    status, headers, svg = served.request(
        "GET", f"/operators/cases/{CASE}/chart.svg", headers=cookie_of(served.login(served.operator_token)[1])
    )
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml") and svg.startswith(b"<svg")


def test_a_comment_with_html_and_script_is_shown_as_text(served):
    _, headers, _ = served.login(served.operator_token)
    _, _, page = served.request("GET", "/operators", headers=cookie_of(headers))
    text = page.decode()
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in text


def test_a_comment_s_bidi_override_and_controls_are_shown_as_escapes_in_isolation(tmp_path):
    served = Served(tmp_path)
    try:
        ledger = served.store.ledger
        ledger.record_answer(FINDINGS[1][0], FINDINGS[1][1], "disputed", note="niet \u202eons\x07", now=T0 + 2 * 86400)
        _, headers, _ = served.login(served.operator_token)
        _, _, page = served.request("GET", "/operators", headers=cookie_of(headers))
        text = page.decode()
        assert "\u202e" not in text and "\x07" not in text
        assert (
            '<td class="note"><bdi>niet <span class="control">\\u202e</span>ons'
            '<span class="control">\\x07</span></bdi></td>'
        ) in text
    finally:
        served.close()


def test_without_a_valid_session_nothing_is_shown(served):
    status, _, page = served.request("GET", "/operators")
    assert status == 401 and b"Amsterdam" not in page and b"Operator token" in page
    assert served.login(served.other_token)[0] == 401  # a token of another file
    assert served.login("nsm_0000_" + "x" * 40)[0] == 401
    forged = {"Cookie": "nsm_operator=abcd.9999999999.AAAA"}
    assert served.request("GET", "/operators", headers=forged)[0] == 401
    assert served.request("GET", f"/operators/cases/{CASE}/chart.svg", headers=forged)[0] == 401
    # A login form without its form token (a cross-site post) is refused.
    form = urlencode({"token": served.operator_token}).encode()
    status, headers, _ = served.request(
        "POST", "/operators/login", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 403 and "Set-Cookie" not in headers


def test_an_unknown_case_chart_is_404(served):
    _, headers, _ = served.login(served.operator_token)
    assert served.request("GET", "/operators/cases/NOPE-1/chart.svg", headers=cookie_of(headers))[0] == 404


def test_a_login_without_content_length_is_411_as_on_every_endpoint_and_a_page(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=30)
    try:
        conn.putrequest("POST", "/operators/login")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 411 and response.getheader("Content-Type").startswith("text/html")
        assert b"A Content-Length header is required." in response.read()
    finally:
        conn.close()


def test_requests_over_the_rate_limit_get_429_with_retry_after(tmp_path):
    served = Served(tmp_path, dataclasses.replace(config_mod.LIMITS, requests_per_minute=1, burst=2))
    try:
        codes = [served.request("GET", "/operators/login")[:2] for _ in range(3)]
        assert [status for status, _ in codes] == [200, 200, 429]
        assert int(codes[-1][1]["Retry-After"]) >= 1
    finally:
        served.close()


# -- sessions follow tokens ---------------------------------------------------------------------


def test_a_revoked_token_ends_its_sessions_at_once(served):
    first = cookie_of(served.login(served.operator_token)[1])
    second = cookie_of(served.login(served.operator_token)[1])  # another browser
    assert served.request("GET", "/operators", headers=first)[0] == 200
    revoke_token(served.operators, served.operator.id)
    status, headers, page = served.request("GET", "/operators", headers=first)
    assert status == 401 and b"Amsterdam" not in page and b"The token was revoked." in page
    assert "Max-Age=0" in headers["Set-Cookie"]
    assert served.request("GET", f"/operators/cases/{CASE}/chart.svg", headers=second)[0] == 401
    assert served.request("GET", "/operators", headers=second)[0] == 401
    assert served.login(served.operator_token)[0] == 401


def test_a_token_that_expires_ends_its_session(served):
    cookie = cookie_of(served.login(served.operator_token)[1])
    assert served.request("GET", "/operators", headers=cookie)[0] == 200
    entries = read_entries(served.operators)
    entries[0].expires = "2020-01-01T00:00:00+00:00"
    write_entries(served.operators, entries)
    status, _, page = served.request("GET", "/operators", headers=cookie)
    assert status == 401 and b"The token has expired." in page


def test_log_out_ends_the_session_wherever_its_cookie_was_copied(served):
    cookie = cookie_of(served.login(served.operator_token)[1])
    status, _, page = served.request("GET", "/operators", headers=cookie)
    assert status == 200 and b"Log out" in page
    [csrf] = re.findall(rb'action="/operators/logout".*?name="csrf" value="([^"]+)"', page, re.DOTALL)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # Without the page's form token (a cross-site post): refused as a page, the session stays.
    status, headers, page = served.request("POST", "/operators/logout", b"csrf=x", {**form, **cookie})
    assert status == 403 and headers["Content-Type"].startswith("text/html") and b"reload the overview" in page
    assert served.request("GET", "/operators", headers=cookie)[0] == 200
    status, headers, _ = served.request("POST", "/operators/logout", b"csrf=" + csrf, {**form, **cookie})
    assert (status, headers["Location"]) == (303, "/operators/login") and "Max-Age=0" in headers["Set-Cookie"]
    status, _, page = served.request("GET", "/operators", headers=cookie)
    assert status == 401 and b"Amsterdam" not in page
    assert served.request("GET", f"/operators/cases/{CASE}/chart.svg", headers=cookie)[0] == 401
