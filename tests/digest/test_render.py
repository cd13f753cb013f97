"""Rendering: canonical JSON, CSV without formula injection, Dutch and English text."""

import csv
import io
import json

from intelmq_nsm.digest import render
from intelmq_nsm.digest.event_findings import COLUMNS, finding_row, findings_of
from intelmq_nsm.digest.spool import Digest
from intelmq_nsm.testbed.sample_events import event, organisation

ORG = organisation("GM0363", "Amsterdam")


def digest(*events):
    return Digest(
        id="d" * 64,
        organisation=ORG,
        constituency="ibd",
        created=1714557600.0,
        findings=[finding_row(e) for e in events],
    )


def test_json_holds_organisation_and_one_row_per_finding():
    doc = json.loads(render.to_json(digest(event(1, [ORG]), event(2, [ORG]))))
    assert doc["id"] == "d" * 64
    assert doc["organisation"] == {"id": "GM0363", "name": "Amsterdam", "kind": "municipality"}
    assert doc["constituency"] == "ibd" and doc["count"] == 2
    row = doc["findings"][0]
    assert set(row) == set(COLUMNS)
    assert row["ip"] == "198.51.100.2" and row["port"] == 443
    assert row["cves"] == "CVE-2023-4966" and row["severity"] == "high"
    assert row["case_id"] == "DIVD-2024-00012"
    assert row["case_url"] == "https://csirt.divd.example/cases/DIVD-2024-00012"
    assert row["recommendation"].startswith("Update to")
    assert row["product"] == "Citrix NetScaler ADC 13.1-48.47"


def test_json_bytes_are_canonical():
    one = digest(event(1, [ORG]))
    assert render.to_json(one) == render.to_json(digest(event(1, [ORG])))


def test_csv_neutralises_formulas():
    nasty = event(1, [ORG], **{"product.name": '=HYPERLINK("http://evil.example")', "event_description.text": "+1"})
    nasty["extra.nsm.case_title"] = "@SUM(A1)"
    nasty["extra.nsm.recommendation"] = "-2+3"
    nasty["source.url"] = "\t=cmd"
    rows = list(csv.DictReader(io.StringIO(render.to_csv(digest(nasty)))))
    [row] = rows
    assert row["product"].startswith("Citrix ")  # vendor first: not a formula to begin with
    assert row["description"] == "'+1"
    assert row["case_title"] == "'@SUM(A1)"
    assert row["recommendation"] == "'-2+3"
    assert row["url"] == "'\t=cmd"
    for value in row.values():
        assert not value.startswith(render.FORMULA_START)
    assert render.neutralise("=1") == "'=1" and render.neutralise("\r=1") == "'\r=1"
    assert render.neutralise("192.0.2.1") == "192.0.2.1"


def test_dutch_and_english_text_name_organisation_case_and_findings():
    one = digest(event(1, [ORG]), event(2, [ORG], case="DIVD-2024-00099"))
    nl, en = render.to_text(one, "nl"), render.to_text(one, "en")
    assert nl.split("\n")[2] == "Beste Amsterdam," and "2 kwetsbare systemen" in nl and "Advies: Update to" in nl
    assert en.split("\n")[2] == "Dear Amsterdam," and "2 vulnerable systems" in en and "Recommendation: Update to" in en
    for text in (nl, en):
        assert "== DIVD-2024-00012: Citrix Bleed ==" in text
        assert "== DIVD-2024-00099: Citrix Bleed ==" in text
        assert "198.51.100.2:443  host1.gemeente.example" in text
        assert "CVE-2023-4966" in text and "d" * 64 in text


def test_text_and_subject_flatten_line_breaks_from_event_values():
    org = dict(ORG, name="Amsterdam\r\nBcc: victim@example.org")
    one = Digest(
        id="e" * 64, organisation=org, constituency="ibd", created=0.0, findings=[finding_row(event(1, [org]))]
    )
    assert "\n" not in render.subject(one) and "\r" not in render.subject(one)
    assert "Beste Amsterdam Bcc: victim@example.org," in render.to_text(one)


def test_the_role_of_the_organisation_is_in_the_text_the_json_and_the_csv():
    service, network = dict(ORG, role="service"), organisation("GM0599", "Rotterdam")
    network["role"] = "network"
    mine, theirs = event(1, [service, network]), event(2, [dict(ORG, role="network")])
    rows = [f.row for f in findings_of(mine) + findings_of(theirs) if f.organisation["id"] == "GM0363"]
    assert [r["role"] for r in rows] == ["service", "network"]
    assert [f.row["role"] for f in findings_of(mine)] == ["service", "network"]  # one row per organisation
    assert findings_of(event(3, [ORG]))[0].row["role"] == ""  # an event without roles
    one = Digest(id="f" * 64, organisation=ORG, constituency="ibd", created=0.0, findings=rows)
    nl, en = render.to_text(one, "nl"), render.to_text(one, "en")
    assert "198.51.100.2:443  host1.gemeente.example  (uw dienst)" in nl
    assert "203.0.113.3:443  host2.gemeente.example  (uw netwerk)" in nl
    assert "198.51.100.2:443  host1.gemeente.example  (your service)" in en
    assert "203.0.113.3:443  host2.gemeente.example  (a system in your network)" in en
    assert [f["role"] for f in json.loads(render.to_json(one))["findings"]] == ["service", "network"]
    assert [r["role"] for r in csv.DictReader(io.StringIO(render.to_csv(one)))] == ["service", "network"]
    old = Digest(
        id="f" * 64, organisation=ORG, constituency="ibd", created=0.0, findings=[finding_row(event(1, [ORG]))]
    )
    assert "host1.gemeente.example\n" in render.to_text(old)  # rows spooled before roles existed
