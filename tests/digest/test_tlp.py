"""TLP 2.0 on everything sent: each digest has the strictest label of its findings, in the
subject, the text's first line, the JSON and the CSV's name; TLP:RED findings go alone."""

import csv
import io
import json
import logging

import pytest

from intelmq_nsm import tlp
from intelmq_nsm.digest import channels, render
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.event_findings import FindingError, findings_of
from intelmq_nsm.formats.case import case_fields
from intelmq_nsm.testbed.sample_events import event, organisation

ORG = organisation("GM0363", "Amsterdam")
LOG = logging.getLogger("tests.digest.tlp")


def test_labels_their_order_and_intelmqs_names():
    assert tlp.normalise("amber+strict") == "AMBER+STRICT"
    assert tlp.normalise("TLP:clear") == tlp.normalise("WHITE") == "CLEAR"
    assert tlp.to_intelmq("CLEAR") == "WHITE" and tlp.to_intelmq("AMBER+STRICT") == "AMBER"
    assert tlp.strictest(["GREEN", "AMBER+STRICT", "AMBER"]) == "AMBER+STRICT"
    assert tlp.strictest([], default="GREEN") == "GREEN"
    with pytest.raises(ValueError, match="'PURPLE' is not a TLP label"):
        tlp.normalise("PURPLE")


def test_the_parser_keeps_the_tlp_2_name_beside_intelmqs_1_0_field():
    assert case_fields({"tlp": "CLEAR"})["tlp"] == "WHITE"
    assert case_fields({"tlp": "CLEAR"})["extra.nsm.tlp"] == "CLEAR"
    strict = case_fields({"tlp": "AMBER+STRICT"})
    assert (strict["tlp"], strict["extra.nsm.tlp"]) == ("AMBER", "AMBER+STRICT")


def test_a_finding_takes_its_cases_label_else_intelmqs_field_else_the_outputs_default():
    assert (
        findings_of(event(1, [ORG], **{"extra.nsm.tlp": "AMBER+STRICT", "tlp": "AMBER"}))[0].row["tlp"]
        == "AMBER+STRICT"
    )
    assert findings_of(event(2, [ORG], tlp="WHITE"))[0].row["tlp"] == "CLEAR"
    assert findings_of(event(3, [ORG]))[0].row["tlp"] == "AMBER"
    assert findings_of(event(4, [ORG]), tlp="GREEN")[0].row["tlp"] == "GREEN"
    with pytest.raises(FindingError, match=r"'extra\.nsm\.tlp' with value 'BLUE'"):
        findings_of(event(5, [ORG], **{"extra.nsm.tlp": "BLUE"}))


def _delivered(spool, tmp_path, now=1):
    out = tmp_path / "out"
    Deliverer(spool, channels.FileChannel(out), LOG, max_events=100, max_age=0).run_once(now=now)
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def test_a_digest_has_the_strictest_label_of_its_findings_in_subject_text_json_and_csv_name(spool, tmp_path):
    spool.add(findings_of(event(1, [ORG], **{"extra.nsm.tlp": "GREEN"})), now=0)
    spool.add(findings_of(event(2, [ORG], **{"extra.nsm.tlp": "AMBER+STRICT"})), now=0)
    spool.add(findings_of(event(3, [ORG], tlp="WHITE")), now=0)
    [document] = _delivered(spool, tmp_path)
    assert document["tlp"] == "AMBER+STRICT" and document["format"] == "nsm-digest/4"
    assert sorted(f["tlp"] for f in document["findings"]) == ["AMBER+STRICT", "CLEAR", "GREEN"]
    digest = spool.load(document["id"])
    assert render.subject(digest, "nl").startswith("[TLP:AMBER+STRICT] [IBD] 3 kwetsbare systemen")
    nl, en = render.to_text(digest, "nl").splitlines()[0], render.to_text(digest, "en").splitlines()[0]
    assert nl == "TLP:AMBER+STRICT " + tlp.ALLOWS["nl"]["AMBER+STRICT"]
    assert (
        en == "TLP:AMBER+STRICT Recipients may share this only on a need-to-know basis within their own organisation."
    )
    assert render.csv_name(digest) == f"GM0363-{digest.id[:12]}-TLP_AMBER+STRICT.csv"
    rows = list(csv.DictReader(io.StringIO(render.to_csv(digest))))
    assert sorted(r["tlp"] for r in rows) == ["AMBER+STRICT", "CLEAR", "GREEN"]


def test_red_findings_are_never_in_a_digest_with_others(spool, tmp_path):
    spool.add(findings_of(event(1, [ORG])), now=0)
    spool.add(findings_of(event(2, [ORG], tlp="RED")), now=0)
    spool.add(findings_of(event(3, [ORG], **{"extra.nsm.tlp": "RED"})), now=0)
    spool.add(findings_of(event(4, [ORG], tlp="GREEN")), now=0)
    documents = _delivered(spool, tmp_path)
    by_label = sorted((d["tlp"], len(d["findings"])) for d in documents)
    assert by_label == [("AMBER", 2), ("RED", 1), ("RED", 1)]
    red = [d for d in documents if d["tlp"] == "RED"]
    assert {d["findings"][0]["ip"] for d in red} == {"203.0.113.3", "192.0.2.4"}
    text = render.to_text(spool.load(red[0]["id"]), "en")
    assert text.startswith("TLP:RED For the named recipients only")


def test_the_outputs_default_label_counts_for_findings_without_one(spool, tmp_path):
    spool.add(findings_of(event(1, [ORG]), tlp="RED"), now=0)
    spool.add(findings_of(event(2, [ORG]), tlp="RED"), now=0)
    documents = _delivered(spool, tmp_path)
    assert [(d["tlp"], len(d["findings"])) for d in documents] == [("RED", 1), ("RED", 1)]
