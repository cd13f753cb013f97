"""``intelmq-nsm constituency import ripe``: the files it writes and the routing changes of a new dump."""

import shutil
from pathlib import Path

from intelmq_nsm.cli import main

RIPE = Path(__file__).resolve().parents[1] / "constituency" / "data" / "ripe"


def run(capsys, *argv):
    code = main(["constituency", "import", "ripe", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_writes_the_registry_and_the_review_and_a_new_dump_shows_its_routing_changes(tmp_path, capsys):
    registry = tmp_path / "registry"
    shutil.copytree(RIPE / "registry", registry)
    dumps = tmp_path / "dumps"
    shutil.copytree(RIPE, dumps, ignore=shutil.ignore_patterns("registry"))
    common = ["-d", str(registry), "--country", "NL", "--delegated", str(dumps / "delegated-ripencc-extended-latest")]
    output, report = registry / "ripe-import.csv", tmp_path / "review"
    first = [str(dumps), *common, "--dump-date", "2026-11-30", "-o", str(output), "--report", str(report)]
    code, out, err = run(capsys, *first)
    assert code == 0
    assert "network 198.51.100.0/26, 198.51.100.64/27: nobody (_default) -> ibd:GM0228" in out
    assert out.splitlines()[-1].startswith("13 proposal(s) from 17 resource objects, 7 imported as ripe-2026-11-30")
    assert "192.0.2.300 - 192.0.2.400" in err  # the broken object is named, the rest imported
    assert output.read_text("utf-8").count(",ripe-2026-11-30,") == 7
    markdown = (tmp_path / "review.md").read_text("utf-8")
    assert "| not imported: below org | 1 mention | network 203.0.113.128/26 | GM1900 Súdwest-Fryslân |" in markdown
    assert "remarks: Colocation customer: Gemeente Súdwest-Fryslân" in markdown
    assert (tmp_path / "review.csv").read_text("utf-8").startswith("status,confidence,level,kind,value,")

    # The same dump again changes nothing; the registry directory holds the last import.
    code, out, _ = run(capsys, *first)
    assert code == 0 and out.splitlines()[0] == "0 routing change(s) from the last import to this one."

    # A new dump: Ede's range is now Wageningen's (org-name of its organisation changed).
    organisation = dumps / "ripe.db.organisation"
    organisation.write_text(organisation.read_text("utf-8").replace("Gemeente Ede", "Gemeente Wageningen"), "utf-8")
    later = [str(dumps), *common, "--dump-date", "2026-12-07", "-o", str(output), "--report", str(report)]
    code, out, _ = run(capsys, *later, "--dry-run")
    assert code == 0
    assert "network 198.51.100.0/26, 198.51.100.64/27: ibd:GM0228 -> ibd:GM0289" in out
    assert "asn AS64496: ibd:GM0228 -> ibd:GM0289" in out
    assert "dry run, nothing written" in out
    assert ",ripe-2026-11-30," in output.read_text("utf-8")  # unchanged by the dry run


def test_missing_dumps_are_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, str(tmp_path / "nowhere.gz"), "-o", str(tmp_path / "out.csv"))
    assert code == 2 and "No dump files found" in err
