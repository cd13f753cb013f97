"""What became of a case's findings, from the ledger: counts, days to fix, the daily series,
names only where the constituency shares them; and its SVG chart."""

import xml.etree.ElementTree as ET

from intelmq_nsm.digest.ledger.chart import case_chart
from intelmq_nsm.digest.ledger.outcome import case_outcome
from tests.outcome.ledgers import CASE, DAY, T0, case_ledger


def test_the_case_counts_states_days_to_fix_and_open_findings_per_day(tmp_path):
    ledger = case_ledger(tmp_path / "ledger.sqlite")
    outcome = case_outcome(ledger, CASE, now=T0 + 4 * DAY)
    assert outcome["findings"] == 4 and outcome["notified"] == 4
    assert outcome["by_state"] == {"notified": 2, "fixed-verified": 1, "false-positive": 1}
    assert outcome["open"] == 2 and outcome["fixed_verified"] == 1
    assert outcome["days_to_fix"]["count"] == 1 and outcome["days_to_fix"]["median"] == 2.0
    assert [(d["open"], d["fixed"]) for d in outcome["daily"]] == [(4, 0), (4, 0), (3, 1), (2, 1), (2, 1)]
    assert outcome["daily"][0]["date"] == "2026-05-28"
    assert case_outcome(ledger, "DIVD-2099-00001", now=T0) is None


def test_organisation_names_only_where_the_constituency_shares_them(tmp_path):
    ledger = case_ledger(tmp_path / "ledger.sqlite")
    outcome = case_outcome(ledger, CASE, share_names={"surf"}.__contains__, now=T0 + 4 * DAY)
    ibd, surf = outcome["constituencies"]
    assert ibd["constituency"] == "ibd" and "organisations" not in ibd and ibd["organisations_count"] == 2
    assert "Amsterdam" not in str(outcome) and "Rotterdam" not in str(outcome)
    assert surf["organisations"] == [
        {"name": "Universiteit Voorbeeld", "findings": 1, "notified": 1, "open": 1, "fixed_verified": 0,
         "by_state": {"notified": 1}}
    ]  # fmt: skip
    hidden = case_outcome(ledger, CASE, now=T0 + 4 * DAY)
    assert all("organisations" not in c for c in hidden["constituencies"])


def test_the_chart_is_well_formed_svg_with_both_lines_and_escaped_text(tmp_path):
    ledger = case_ledger(tmp_path / "ledger.sqlite")
    outcome = case_outcome(ledger, CASE, now=T0 + 4 * DAY)
    svg = case_chart(CASE, outcome["daily"])
    root = ET.fromstring(svg)  # noqa: S314 (the chart this package made)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert [line.find("{http://www.w3.org/2000/svg}title").text for line in lines] == ["open", "fixed"]
    hostile = case_chart('<script>alert(1)</script>"', outcome["daily"])
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile
    ET.fromstring(hostile)  # noqa: S314 (the chart this package made)
    assert ET.fromstring(case_chart("EMPTY-1", [])).tag.endswith("svg")  # noqa: S314
    one_day = ET.fromstring(case_chart("ONE-1", [{"date": "2026-12-01", "open": 3, "fixed": 0}]))  # noqa: S314
    for line in one_day.findall("{http://www.w3.org/2000/svg}polyline"):
        assert len(line.get("points").split()) == 2  # a level line, not an invisible point


def test_the_collector_s_check_names_a_ledger_that_is_no_database():
    from intelmq_nsm.bots.collectors.intake.collector import NSMIntakeCollectorBot

    messages = NSMIntakeCollectorBot.check(
        {"token_file": "/nonexistent/tokens.json", "ledgers": ["mysql://db.example/x"]}
    )
    assert [
        "error",
        "Parameter ledgers: 'mysql://db.example/x' is neither a file nor a sqlite:/// or postgresql:// URL.",
    ] in messages


def test_a_ledger_made_before_the_matches_column_gets_it_and_goes_on(tmp_path):
    import sqlite3

    from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url

    path = tmp_path / "old.sqlite"
    Ledger(sqlite_url(path), name="old").close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE ledger_findings DROP COLUMN matches")
    db.commit()
    db.close()
    ledger = Ledger(sqlite_url(path), name="old")
    [record] = ledger.observe([Observation("nf1-" + "5" * 32, "GM0363", "e1", matches='[{"kind": "network"}]')])
    assert record["kind"] == "new" and ledger.records()[0]["matches"] == '[{"kind": "network"}]'
