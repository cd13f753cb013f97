"""GET /v1/cases/<id> at a hub on its real intake server: per constituency what the downstream
CERT reported through the hub's real POST /v1/outcomes, names only where the CERT sent them
and the hub's registry shares them."""

import pytest

from intelmq_nsm.digest.ledger import sqlite_url
from intelmq_nsm.intake.outcomes import CaseOutcomes
from tests.federation.two_tiers import AMSTERDAM, CASE, UTRECHT, Cert, Hub, forwarded_event, hub_ledger, token_file

pytestmark = pytest.mark.e2e

REPORT = {
    "schema": "nsm-report/1",
    "case": {"id": CASE, "title": "Citrix Bleed", "severity": "high"},
    "reporter": {"organisation": "DIVD"},
    "findings": [{"ip": "192.0.2.2", "port": 443}],
}


def registry(tmp_path, share: bool) -> str:
    path = tmp_path / f"hub-registry-{share}.yaml"
    shared = ", share_names: true" if share else ""
    path.write_text(f"constituencies:\n  - {{key: ibd, name: IBD{shared}}}\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("cert_shares,hub_shares", [(True, True), (True, False), (False, True)])
def test_the_researcher_sees_what_the_cert_reported_names_only_where_both_allow(
    make_intake, tmp_path, cert_shares, hub_shares
):
    ledger_file = tmp_path / "hub-ledger.sqlite"
    hub_ledger(sqlite_url(ledger_file), {"ibd": [1, 2, 3]}).close()
    hub = Hub.in_folder(tmp_path, sqlite_url(ledger_file))
    cert = Cert(tmp_path)
    try:
        cert.notify([forwarded_event(1), forwarded_event(2, [AMSTERDAM, UTRECHT])])
        pusher = cert.pusher(hub.url, token_file(tmp_path, hub.ibd_token), share_names=cert_shares)
        assert pusher.run_once()["applied"] == 6
        outcomes = CaseOutcomes([str(ledger_file)], [registry(tmp_path, hub_shares)], builtin_municipalities=False)
        intake = make_intake(outcomes=outcomes)
        assert intake.post(REPORT)[0] == 202
        status, body, _ = intake.request("GET", f"/v1/cases/{CASE}", token=intake.token)
        outcomes.close()
    finally:
        cert.close()
        hub.stop()
    assert status == 200, body
    [ibd] = body["constituencies"]
    assert (body["findings"], body["notified"], body["by_state"]) == (3, 2, {"open": 1, "notified": 2})
    down = ibd["downstream"]
    assert (down["certs"], down["forwarded"], down["reported"], down["organisations_count"]) == (["cert:ibd"], 3, 2, 2)
    assert down["by_state"] == {"notified": 3}
    names = [o["name"] for o in down.get("organisations", [])]
    if cert_shares and hub_shares:
        assert names == ["Amsterdam", "Utrecht"]
    else:
        assert names == [] and "Amsterdam" not in str(body) and "GM0363" not in str(body)
