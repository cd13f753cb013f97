"""``intelmq-nsm constituency disputes``: the disputed findings with the asset that matched,
accepting (a correction the expert loads) and rejecting (a note); comments stay inert."""

import csv
import io
import json

from intelmq_nsm.cli import main
from intelmq_nsm.constituency import load_registry
from intelmq_nsm.feedback.disputes import dispute_id
from tests.outcome.ledgers import DAY, FINDINGS, T0, case_ledger

HOSTILE = 'Niet van ons <script>alert(1)</script> \x1b[2J=HYPERLINK("http://x.example")'


def disputed(tmp_path, comment=HOSTILE):
    path = tmp_path / "spool.sqlite"
    ledger = case_ledger(path)
    finding_id, org_id = FINDINGS[1][0], FINDINGS[1][1]
    ledger.record_answer(finding_id, org_id, "disputed", note=comment, reference="digest digest-1", now=T0 + DAY)
    history = ledger.history_of(finding_id)
    ledger.close()
    return str(path), dispute_id(finding_id, org_id), history


def run(capsys, *argv):
    code = main(["constituency", "disputes", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_dispute_is_listed_with_the_matched_asset_and_a_suggested_exclusion(tmp_path, capsys):
    database, ident, _ = disputed(tmp_path)
    code, out, _ = run(capsys, database, "--json")
    assert code == 0
    [dispute] = json.loads(out)
    assert dispute["id"] == ident and dispute["organisation"] == "GM0599" and dispute["comment"] == HOSTILE
    assert dispute["matches"] == [
        {"field": "source.ip", "value": "198.51.100.0", "kind": "network", "matched": "198.51.100.0/24",
         "source": "ripe-import", "note": ""}
    ]  # fmt: skip
    assert dispute["suggestion"] == {"change": "exclusion", "network": "198.51.100.0/24", "note": "Disputed by GM0599"}
    code, out, _ = run(capsys, database)
    assert "matched network 198.51.100.0/24" in out and "suggested: exclude network 198.51.100.0/24" in out
    assert "\x1b" not in out and "\\x1b[2J" in out  # a terminal escape is shown, never acted on


def test_csv_cells_are_formula_safe(tmp_path, capsys):
    database, _, _ = disputed(tmp_path, comment='=HYPERLINK("http://x.example","klik")')
    code, out, _ = run(capsys, database, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["comment"] == '\'=HYPERLINK("http://x.example","klik")'


def test_accepting_writes_an_exclusion_the_registry_loads_and_keeps_the_history(tmp_path, capsys):
    database, ident, history = disputed(tmp_path)
    corrections = tmp_path / "corrections.yaml"
    code, out, _ = run(capsys, database, "--corrections", str(corrections), "--accept", ident, "--note", "Checked.")
    assert code == 0 and "exclude network 198.51.100.0/24" in out
    registry = load_registry([str(corrections)], include_builtin=False)
    assert [(kind, value) for kind, value, _note, _origin in registry.exclusions] == [("network", "198.51.100.0/24")]
    # Listed no more (but with --all, as accepted); the finding's record and history unchanged.
    assert json.loads(run(capsys, database, "--json")[1]) == []
    [decided] = json.loads(run(capsys, database, "--json", "--all")[1])
    assert decided["decision"]["decision"] == "accepted" and decided["decision"]["note"] == "Checked."
    from intelmq_nsm.digest.ledger import Ledger, sqlite_url

    ledger = Ledger(sqlite_url(database), name="ibd-digest-mail")
    assert ledger.history_of(FINDINGS[1][0]) == history
    # Accepting twice writes nothing twice.
    code, _, err = run(capsys, database, "--corrections", str(corrections), "--accept", ident)
    assert code == 2 and "accepted before" in err
    assert corrections.read_text().count("198.51.100.0/24") == 1


def test_a_re_assignment_writes_a_manual_asset_for_the_named_organisation(tmp_path, capsys):
    database, ident, _ = disputed(tmp_path)
    corrections = tmp_path / "corrections.yaml"
    code, out, _ = run(capsys, database, "--corrections", str(corrections), "--accept", ident, "--assign-to", "GM0518")
    assert code == 0 and "assign network 198.51.100.0/24 to GM0518" in out
    registry = load_registry([str(corrections)], include_builtin=True)
    [asset] = [a for a in registry.all_assets() if a.organisation == "GM0518"]
    assert (asset.kind, asset.value, asset.source) == ("network", "198.51.100.0/24", "manual")


def test_rejecting_keeps_a_note_and_needs_one(tmp_path, capsys):
    database, ident, _ = disputed(tmp_path)
    code, _, err = run(capsys, database, "--reject", ident)
    assert code == 2 and "note" in err
    code, _, _ = run(capsys, database, "--reject", ident, "--note", "The contract names Rotterdam.")
    assert code == 0
    [decided] = json.loads(run(capsys, database, "--json", "--all")[1])
    assert decided["decision"]["decision"] == "rejected"
    assert decided["decision"]["note"] == "The contract names Rotterdam."


def test_an_unknown_dispute_id_is_refused(tmp_path, capsys):
    database, _, _ = disputed(tmp_path)
    code, _, err = run(capsys, database, "--corrections", str(tmp_path / "c.yaml"), "--accept", "d-000000000000")
    assert code == 2 and "no disputed finding with the id 'd-000000000000'" in err
    assert not (tmp_path / "c.yaml").exists()
