"""Every ``intelmq-nsm`` command that prints text from outside prints it inert.

The text comes from where an attacker may write: an owner's comment, an organisation's name
in a registry, a report's field, a remote server's error, a RIPE object. It holds a screen
clear (ESC [2J), an OSC window title, C1's one-byte CSI, DEL, a right-to-left override, and a
newline followed by what looks like a line of the ledger's history. The output must hold
none of those characters raw, the forged line must not stand as a line of its own, and the
text must still be there (escaped), so that the check cannot pass by printing nothing.
"""

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from intelmq_nsm.cli import main
from intelmq_nsm.digest.contacts import ContactBook
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.sample_events import event, organisation

#: What looks like a line of ``ledger show``'s history.
FORGED = "2026-05-28T00:00:00+00:00  notified -> fixed-verified  (scan)"
HOSTILE = f"Fixed\x1b[2J\x1b]0;owned\x07 really\n    {FORGED} forged\u202egnp.exe\x9b31m\x7f"
#: The same without the line break, for values that cannot hold one (a line of a RIPE dump).
ONE_LINE = "Gemeente\x1b[2J\x1b]0;owned\x07 Ede\u202egnp.exe\x9b31m\x7f"
RAW = ("\x1b", "\x07", "\u202e", "\x9b", "\x7f")
#: Whatever a terminal or a viewer may take for the end of a line.
LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
T0 = 1_780_000_000.0  # 2026-05-28
FINDING = "nf1-" + "1" * 32


def assert_inert(text: str, escaped: str = "\\x1b[2J") -> None:
    assert [ch for ch in RAW if ch in text] == []
    assert [line for line in LINE_BREAKS.split(text) if line.lstrip().startswith(FORGED)] == []
    assert escaped in text  # the text was printed, escaped


def strings(value):
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_text_and_json_inert(capsys, *argv, code=0):
    """The command's text and its ``--json`` are both inert."""
    for options, escaped in (((), "\\x1b[2J"), (("--json",), "\\u001b[2J")):
        result, out, _ = run(capsys, *argv, *options)
        assert result == code
        assert_inert(out, escaped)


# -- the finding ledger ----------------------------------------------------------------------


@pytest.fixture
def ledger_file(tmp_path):
    """A ledger whose organisation name, case, target, answer and reference are hostile."""
    path = tmp_path / "spool.sqlite"
    ledger = Ledger(sqlite_url(path), name="ibd-mail")
    observation = Observation(
        FINDING, "GM0363", "e1", org_name=HOSTILE, constituency="ibd", case_id=HOSTILE, target=HOSTILE
    )
    ledger.observe([observation], now=T0)
    ledger.record_delivery("d1", [(FINDING, "GM0363", "new")], now=T0 + 60)
    ledger.record_answer(FINDING, "GM0363", "fixed-reported", note=HOSTILE, reference=HOSTILE, now=T0 + 120)
    ledger.close()
    return path


@pytest.mark.parametrize("action", [["list"], ["show", FINDING], ["stats"]], ids=["list", "show", "stats"])
def test_ledger_prints_owners_text_inert(ledger_file, capsys, action):
    code, out, _ = run(capsys, "ledger", str(ledger_file), *action)
    assert code == 0
    assert_inert(out)


@pytest.mark.parametrize("action", [["list"], ["show", FINDING], ["stats"]], ids=["list", "show", "stats"])
def test_ledger_json_is_inert_and_still_says_the_same(ledger_file, capsys, action):
    code, out, _ = run(capsys, "ledger", str(ledger_file), *action, "--json")
    assert code == 0
    assert_inert(out, escaped="\\u001b[2J")
    assert HOSTILE in strings(json.loads(out))  # a JSON reader gets the text back as it was


def test_feedback_answers_csv_and_json_are_inert(ledger_file, tmp_path, capsys):
    config = tmp_path / "feedback.yaml"
    secret = tmp_path / "secret"
    secret.write_text("x" * 64)
    config.write_text(f"ledger_url: {sqlite_url(ledger_file)}\nledger_name: ibd-mail\nsecret_file: {secret}\n")
    code, out, _ = run(capsys, "feedback", "answers", "--config", str(config))
    assert code == 0
    assert_inert(out)
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["comment"].startswith("Fixed\\x1b[2J") and row["organisation"] == "GM0363"
    code, out, _ = run(capsys, "feedback", "answers", "--config", str(config), "--json")
    assert_inert(out, escaped="\\u001b[2J")
    assert json.loads(out)[0]["comment"] == HOSTILE


def test_csv_cells_stay_formula_safe_after_escaping(ledger_file, tmp_path, capsys):
    ledger = Ledger(sqlite_url(ledger_file), name="ibd-mail")
    ledger.record_answer(FINDING, "GM0363", "disputed", note="=1+1\x1b[2J", now=T0 + 200)
    ledger.record_answer(FINDING, "GM0363", "open", source="operator", note="\t=2+2", now=T0 + 300)
    ledger.close()
    config = tmp_path / "feedback.yaml"
    config.write_text(f"ledger_url: {sqlite_url(ledger_file)}\nledger_name: ibd-mail\nsecret_file: {tmp_path}/s\n")
    code, out, _ = run(capsys, "feedback", "answers", "--config", str(config))
    assert code == 0
    comments = [row["comment"] for row in csv.DictReader(io.StringIO(out))]
    assert comments[1:] == ["'=1+1\\x1b[2J", "'\\t=2+2"]


def test_constituency_disputes_text_csv_and_json_are_inert(ledger_file, capsys):
    ledger = Ledger(sqlite_url(ledger_file), name="ibd-mail")
    ledger.record_answer(FINDING, "GM0363", "disputed", note=HOSTILE, now=T0 + 200)
    ledger.close()
    for options, escaped in (((), "\\x1b[2J"), (("--csv",), "\\x1b[2J"), (("--json",), "\\u001b[2J")):
        code, out, _ = run(capsys, "constituency", "disputes", str(ledger_file), *options)
        assert code == 0
        assert_inert(out, escaped)


# -- the registry ------------------------------------------------------------------------------


@pytest.fixture
def registry_file(tmp_path):
    """A registry whose version, organisation name, id and notes are hostile."""
    document = {
        "version": HOSTILE,
        "organisations": [{"id": "X-1", "name": HOSTILE}, {"id": HOSTILE, "name": "Other"}],
        "assets": [
            {"network": "192.0.2.0/24", "organisation": "X-1", "note": HOSTILE},
            {"network": "192.0.2.0/24", "organisation": "GM0363", "note": HOSTILE, "source": HOSTILE},
            {"network": "198.51.100.0/24", "organisation": HOSTILE},
        ],
    }
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    return path


def test_constituency_lookup_prints_registry_values_inert(registry_file, capsys):
    code, out, _ = run(capsys, "constituency", "lookup", "-d", str(registry_file), "192.0.2.5", "198.51.100.5")
    assert code == 0
    assert_inert(out)
    code, out, _ = run(capsys, "constituency", "lookup", "-d", str(registry_file), "--json", "192.0.2.5")
    assert_inert(out, escaped="\\u001b[2J")
    assert HOSTILE in strings(json.loads(out))


def test_constituency_validate_and_stats_print_the_version_inert(registry_file, capsys):
    code, out, _ = run(capsys, "constituency", "validate", str(registry_file))
    assert code == 0
    assert_inert(out)
    code, out, _ = run(capsys, "constituency", "stats", "-d", str(registry_file))
    assert_inert(out)


def test_constituency_validate_prints_problems_inert(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(f"type,value,organisation\nnetwork,192.0.2.0/24,{ONE_LINE}\nnetwork,{ONE_LINE},X\n", "utf-8")
    code, _, err = run(capsys, "constituency", "validate", str(path))
    assert code == 1
    assert_inert(err)


def test_constituency_diff_prints_changed_owners_inert(registry_file, tmp_path, capsys):
    old = tmp_path / "old.yaml"
    old.write_text("assets:\n  - {network: 198.51.100.0/24, organisation: GM0363}\n", "utf-8")
    code, out, _ = run(capsys, "constituency", "diff", str(old), str(registry_file))
    assert code == 1
    assert_inert(out)


def test_constituency_import_ripe_prints_problems_of_a_dump_inert(tmp_path, capsys):
    ripe = Path(__file__).resolve().parents[1] / "constituency" / "data" / "ripe"
    dumps = tmp_path / "dumps"
    shutil.copytree(ripe, dumps, ignore=shutil.ignore_patterns("registry"))
    inetnum = dumps / "ripe.db.inetnum"
    broken = f"\ninetnum:        192.0.2.300 - {ONE_LINE}\nnetname:        X\norg:            ORG-GE1-TEST\n"
    inetnum.write_text(inetnum.read_text("utf-8") + broken, "utf-8")
    output = tmp_path / "ripe-import.csv"
    code, _, err = run(capsys, "constituency", "import", "ripe", str(dumps), "-o", str(output), "--dry-run")
    assert code == 0
    assert_inert(err)


# -- tokens, spool, reports ----------------------------------------------------------------


def test_tokens_add_and_list_print_the_researcher_inert(tmp_path, capsys):
    tokens = tmp_path / "tokens.json"
    code, out, _ = run(capsys, "tokens", "add", "--file", str(tokens), "--researcher", HOSTILE, "--feed-code", "x")
    assert code == 0
    assert_inert(out)
    assert_text_and_json_inert(capsys, "tokens", "list", "--file", str(tokens))


@pytest.fixture
def spool_file(tmp_path):
    """A spool with a digest for an organisation with a hostile name, failed with a hostile error."""
    path = tmp_path / "s.sqlite"
    spool = DigestSpool(path)
    hostile = organisation("GM0363", HOSTILE)
    spool.add(findings_of(event(1, [hostile], **{"extra.nsm.case_title": HOSTILE, "source.fqdn": HOSTILE})), now=0)
    [digest] = spool.form_digests(max_events=10, max_age=0, now=1)
    spool.mark_failed(digest, f"POST answered 422: {HOSTILE}")
    # The receiving mail server's answer, marking a contact unreachable.
    ContactBook(spool.db).mark("ciso@gm0363.example", f"550 {HOSTILE}", org_id="GM0363", now=T0)
    spool.close()
    return path, digest


def test_spool_list_prints_the_last_error_inert(spool_file, capsys):
    assert_text_and_json_inert(capsys, "spool", str(spool_file[0]), "list")


def test_spool_contacts_and_constituency_stale_print_the_mail_server_s_answer_inert(spool_file, capsys):
    path, _ = spool_file
    assert_text_and_json_inert(capsys, "spool", str(path), "contacts")
    ledger = Ledger(sqlite_url(path), name="ibd-mail")
    ledger.observe([Observation(FINDING, "GM0363", "e1", org_name=HOSTILE, constituency="ibd")], now=T0)
    ledger.close()
    assert_text_and_json_inert(capsys, "constituency", "stale", str(path), "--days", "1", code=1)  # 1: stale ones


# The digest's text already turns C0 characters into spaces (as in a mail); the rest is escaped.
@pytest.mark.parametrize(("fmt", "escaped"), [("text", "\\u202e"), ("csv", "\\x1b[2J"), ("json", "\\u001b[2J")])
def test_spool_show_prints_the_digest_inert(spool_file, capsys, fmt, escaped):
    path, digest = spool_file
    code, out, err = run(capsys, "spool", str(path), "show", digest, "--format", fmt, "--language", "en")
    assert code == 0
    assert_inert(out, escaped)
    assert_inert(err)  # the last error


def test_check_report_prints_problems_of_a_report_inert(tmp_path, capsys):
    report = tmp_path / "report.jsonl"
    report.write_text(json.dumps({"host": ONE_LINE, "template-id": ONE_LINE}) + "\n", "utf-8")
    code, out, _ = run(capsys, "check-report", str(report), "--format", "nuclei")
    assert code == 1
    assert_inert(out)


# -- the shared helper ------------------------------------------------------------------------


def test_every_control_and_bidi_character_is_escaped_and_the_rest_kept():
    from intelmq_nsm.cli.terminal import inert

    controls = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
    bidi = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]
    for code in controls + bidi:
        shown = inert(f"a{chr(code)}b")
        assert shown.startswith("a\\") and shown.endswith("b") and shown.isascii(), hex(code)
    assert inert("Súdwest-Fryslân 's-Hertogenbosch € \\x1b") == "Súdwest-Fryslân 's-Hertogenbosch € \\x1b"
    assert inert("a\nb\tc\rd") == "a\\nb\\tc\\rd"
