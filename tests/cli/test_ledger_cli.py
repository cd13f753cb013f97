"""``intelmq-nsm ledger``: list, show and stats, on SQLite and on a real PostgreSQL."""

import json

from intelmq_nsm.cli import main
from intelmq_nsm.digest.ledger import Ledger, Observation
from intelmq_nsm.digest.ledger.store import make_url

DAY = 86400.0
T0 = 1_780_000_000.0


def fill(url: str) -> Ledger:
    ledger = Ledger(url, name="ibd-mail")
    for n, org in enumerate(["GM0363", "GM0363", "GM0344"]):
        ledger.observe(
            [Observation(f"nf1-{n}", org, f"e{n}", org_name="Amsterdam", constituency="ibd", case_id="DIVD-1")],
            now=T0,
        )
        ledger.record_delivery(f"d{n}", [(f"nf1-{n}", org, "new")], now=T0 + 60)
    ledger.observe([Observation("nf1-0", "GM0363", "e9", vulnerable=False)], now=T0 + 3 * DAY)
    return ledger


def database(url: str) -> str:
    """What an operator gives: the spool file for SQLite, the URL for PostgreSQL."""
    parsed = make_url(url)
    return parsed.database if parsed.get_backend_name() == "sqlite" else url


def test_list_filters_by_state_organisation_and_case(ledger_url, capsys):
    fill(ledger_url).close()
    assert main(["ledger", database(ledger_url), "list", "--state", "notified", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["ledger"] == "ibd-mail"
    assert sorted(r["finding_id"] for r in listed["findings"]) == ["nf1-1", "nf1-2"]
    assert main(["ledger", database(ledger_url), "list", "--organisation", "GM0344"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 findings in ledger 'ibd-mail'.") and "nf1-2" in out and "nf1-0" not in out
    assert main(["ledger", database(ledger_url), "list", "--case", "DIVD-9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    assert main(["ledger", database(ledger_url), "list", "--older-than-days", "100000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_show_prints_the_whole_history(ledger_url, capsys):
    fill(ledger_url).close()
    assert main(["ledger", database(ledger_url), "show", "nf1-0"]) == 0
    out = capsys.readouterr().out
    assert "open -> notified  (scan) Notified in digest d0. [d0]" in out
    assert "notified -> fixed-verified  (scan) A rescan found it not vulnerable." in out
    assert main(["ledger", database(ledger_url), "show", "nf1-0", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)["organisations"]
    assert [h["state"] for h in record["history"]] == ["open", "notified", "fixed-verified"]
    assert record["digests"] == [{"digest_id": "d0", "kind": "new", "delivered_at": T0 + 60}]


def test_stats_per_case_constituency_and_organisation(ledger_url, capsys):
    fill(ledger_url).close()
    assert main(["ledger", database(ledger_url), "stats", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    [case] = result["cases"]
    assert (case["findings"], case["notified"], case["open"], case["fixed_verified"], case["reopened"]) == (
        3,
        3,
        2,
        1,
        0,
    )
    assert case["days_to_fix"]["count"] == 1 and round(case["days_to_fix"]["median"], 2) == round(3 - 60 / DAY, 2)
    assert [o["org_id"] for o in result["organisations"]] == ["GM0344", "GM0363"]
    assert main(["ledger", database(ledger_url), "stats"]) == 0
    out = capsys.readouterr().out
    assert "Cases:" in out and "DIVD-1" in out and "Organisations:" in out


def test_kinds_of_abuse_and_answers_kept_in_the_history_are_shown(ledger_url, capsys):
    ledger = fill(ledger_url)
    try:
        infected = Observation("nf2-9", "GM0344", "e10", org_name="Utrecht", constituency="ibd", abuse="compromised")
        ledger.observe([infected], now=T0)
        ledger.record_answer("nf1-0", "GM0363", "fixed-reported", "owner", "Gepatcht.", now=T0 + 4 * DAY)
    finally:
        ledger.close()
    assert main(["ledger", database(ledger_url), "show", "nf1-0"]) == 0
    out = capsys.readouterr().out
    assert "nf1-0 for GM0363 (Amsterdam), vulnerable, case DIVD-1" in out
    assert "fixed-verified -> fixed-verified (asked fixed-reported, kept in the history)  (owner) Gepatcht." in out
    assert main(["ledger", database(ledger_url), "list", "--organisation", "GM0344"]) == 0
    assert "compromised" in capsys.readouterr().out
    assert main(["ledger", database(ledger_url), "stats"]) == 0
    out = capsys.readouterr().out
    assert "by kind: compromised 1 (open 1, fixed 0, not seen 0), vulnerable 1 (open 1, fixed 0, not seen 0)" in out
