"""GET /v1/cases/<id> and its chart on the real intake server: a researcher sees the cases
their own submissions named, and nothing of another researcher's."""

import http.client
import logging
import xml.etree.ElementTree as ET

import pytest

from intelmq_nsm.intake.outcomes import CaseOutcomes
from tests.outcome.ledgers import CASE, REGISTRY, case_ledger

pytestmark = pytest.mark.e2e

REPORT = {
    "schema": "nsm-report/1",
    "case": {"id": CASE, "title": "Exposed example admin panels", "severity": "high"},
    "reporter": {"organisation": "DIVD"},
    "findings": [{"ip": "192.0.2.10", "port": 443}],
}
OTHER_CASE = "EXR-2024-0007"
CSV = "ip,asn,holder\n203.0.113.9,64500,Example Net\n"


@pytest.fixture
def served(make_intake, tmp_path):
    ledger = case_ledger(tmp_path / "ledger.sqlite")
    ledger.close()
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    outcomes = CaseOutcomes([str(tmp_path / "ledger.sqlite")], [str(registry)])
    intake = make_intake(outcomes=outcomes)
    yield intake
    outcomes.close()


def raw_get(intake, path, token):
    conn = http.client.HTTPConnection("127.0.0.1", intake.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def test_the_researcher_sees_their_case_with_names_only_where_shared(served):
    assert served.post(REPORT)[0] == 202
    status, body, _ = served.request("GET", f"/v1/cases/{CASE}", token=served.token)
    assert status == 200, body
    assert body["case_id"] == CASE and body["findings"] == 4 and body["notified"] == 4
    assert body["by_state"] == {"notified": 2, "fixed-verified": 1, "false-positive": 1}
    assert body["days_to_fix"]["median"] == 2.0
    ibd, surf = body["constituencies"]
    assert "organisations" not in ibd and ibd["organisations_count"] == 2
    assert [o["name"] for o in surf["organisations"]] == ["Universiteit Voorbeeld"]
    assert body["daily"][0] == {"date": "2026-05-28", "open": 4, "fixed": 0}


def test_the_chart_is_svg(served):
    served.post(REPORT)
    status, content_type, data = raw_get(served, f"/v1/cases/{CASE}/chart.svg", served.token)
    assert status == 200 and content_type.startswith("image/svg+xml")
    assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"  # noqa: S314 (this intake's chart)


def test_another_researcher_s_case_is_404_and_changes_nothing(served, tmp_path):
    served.post(REPORT)
    # The other researcher reports on a case of their own, then asks for DIVD's.
    assert served.post(CSV, "text/csv", token=served.other_token, query=f"?case_id={OTHER_CASE}&case_title=T")[0] == 202
    before = (tmp_path / "ledger.sqlite").read_bytes()
    for path in (f"/v1/cases/{CASE}", f"/v1/cases/{CASE}/chart.svg"):
        status, _, data = raw_get(served, path, served.other_token)
        assert status == 404 and b"Universiteit" not in data and b"notified" not in data
    status, body, _ = served.request("GET", f"/v1/cases/{OTHER_CASE}", token=served.other_token)
    assert status == 200 and body["findings"] == 0  # theirs: known, nothing recorded yet
    assert served.request("GET", f"/v1/cases/{OTHER_CASE}", token=served.token)[0] == 404
    assert (tmp_path / "ledger.sqlite").read_bytes() == before


def test_an_unknown_case_and_a_malformed_id_are_404_and_no_token_is_401(served):
    served.post(REPORT)
    assert served.request("GET", "/v1/cases/DIVD-2099-99999", token=served.token)[0] == 404
    assert served.request("GET", "/v1/cases/%3Cscript%3E", token=served.token)[0] == 404
    assert served.request("GET", f"/v1/cases/{CASE}")[0] == 401


def test_without_ledgers_the_case_endpoint_says_so(intake):
    intake.post(REPORT)
    status, body, _ = intake.request("GET", f"/v1/cases/{CASE}", token=intake.token)
    assert status == 503 and body["error"] == "not_configured"


# -- cases belong to who opened them ---------------------------------------------------------


def csv_on(case_id: str) -> str:
    return f"?case_id={case_id}&case_title=Rescan"


def test_another_researcher_naming_a_case_is_refused_403_naming_it_and_nothing_is_stored(served, caplog):
    caplog.set_level(logging.INFO, logger="tests.intake")
    assert served.post(REPORT)[0] == 202
    sent = len(served.sent)
    # Before the body (CSV: the case comes with the head) and after it (an NSM report's own case block).
    for body, content_type, query in (
        (CSV, "text/csv", csv_on(CASE)),
        ({**REPORT, "findings": [{"ip": "192.0.2.10", "port": 443, "result": "not-vulnerable"}]}, None, ""),
    ):
        status, answer, _ = served.post(body, content_type or "application/json", served.other_token, query)
        assert (status, answer.get("error")) == (403, "case_not_yours"), answer
        assert CASE in answer["message"] and "share" in answer["message"]
    assert len(served.sent) == sent and served.spool.pending_count() == 0
    assert served.spool.case_submitters() == [(CASE, "DIVD")]  # the refused named no case
    assert served.request("GET", f"/v1/cases/{CASE}", token=served.other_token)[0] == 404
    assert served.cases.owner(CASE) == "DIVD"
    refused = [r.getMessage() for r in caplog.records if "was refused" in r.getMessage()]
    assert len(refused) == 2 and all("Example Research (token " in m and CASE in m for m in refused)


def test_a_case_shared_with_a_second_team_takes_its_reports_stamped_with_the_owner_and_shows_its_figures(served):
    assert served.post(REPORT)[0] == 202
    served.cases.share(CASE, "Example Research")
    status, answer, _ = served.post(CSV, "text/csv", served.other_token, csv_on(CASE))
    assert status == 202, answer
    assert served.sent[-1].meta["case_owner"] == "DIVD"  # the owner speaks for the second team's findings
    assert served.sent[-1].meta["researcher"] == "Example Research"
    status, body, _ = served.request("GET", f"/v1/cases/{CASE}", token=served.other_token)
    assert status == 200 and body["findings"] == 4
    # Taken back: refused again, the figures too.
    served.cases.unshare(CASE, "Example Research")
    assert served.post(CSV + "\n", "text/csv", served.other_token, csv_on(CASE))[0] == 403
    assert served.request("GET", f"/v1/cases/{CASE}", token=served.other_token)[0] == 404


def test_the_first_submitter_owns_a_case_an_operator_may_assign_it_before(served):
    served.cases.assign("DIVD-2024-00099", "DIVD")
    status, answer, _ = served.post(CSV, "text/csv", served.other_token, csv_on("DIVD-2024-00099"))
    assert (status, answer["error"]) == (403, "case_not_yours")
    assert served.post(CSV, "text/csv", served.other_token, csv_on(OTHER_CASE))[0] == 202
    assert served.cases.owner(OTHER_CASE) == "Example Research"
    assert served.sent[-1].meta["case_owner"] == "Example Research"
    assert served.post(REPORT)[0] == 202  # DIVD's first report on its case
    assert served.sent[-1].meta["case_owner"] == "DIVD"


def test_cases_submitted_before_they_had_owners_belong_to_their_first_submitter(tmp_path):
    from intelmq_nsm.auth.tokens import TokenVerifier
    from intelmq_nsm.intake.cases import CaseBook
    from intelmq_nsm.intake.service import IntakeConfig, IntakeService
    from intelmq_nsm.intake.spool import Submission, SubmissionSpool

    spool = SubmissionSpool(tmp_path / "spool.sqlite")
    # The case: a second researcher named DIVD's case after DIVD, before cases had owners.
    for number, (researcher, case_id) in enumerate((("DIVD", CASE), ("Example Research", CASE), ("DIVD", "X-1"))):
        record = Submission(f"{number:064x}", researcher, "t", "text/csv", "queued", 1, 1, 1000.0 + number, 1000.0)
        spool.accept(record, [], [case_id])
    cases = CaseBook(tmp_path / "cases.sqlite")
    try:
        IntakeService(TokenVerifier(tmp_path / "t.json"), spool, IntakeConfig(), logging.getLogger("t"), cases=cases)
        assert cases.owner(CASE) == "DIVD" and cases.owner("X-1") == "DIVD"
        assert not cases.may_speak(CASE, "Example Research")
    finally:
        cases.close()
        spool.close()
