"""Which source may move a finding from which state to which: the table and its one function."""

import pytest

from intelmq_nsm.digest.ledger import precedence
from intelmq_nsm.digest.ledger.precedence import STATES, decide, parse_source

ANSWERS = ("fixed-reported", "disputed", "accepted-risk", "false-positive")


def outcome(old, new, source) -> str:
    decision = decide(old, new, source)
    if decision.changes:
        assert decision.state == new and not decision.history_only
        return "apply"
    assert decision.state == old
    return "history" if decision.history_only else "ignore"


def test_a_scans_verification_outranks_every_answer():
    for old in STATES:
        expected = "ignore" if old == "fixed-verified" else "apply"
        assert outcome(old, "fixed-verified", "scan") == expected, old
    for source in ("owner", "ticket", "cert:ibd", "cert:ibd/owner"):
        for answer in ANSWERS:
            assert outcome("fixed-verified", answer, source) == "history", (source, answer)


def test_a_rescan_that_sees_it_again_reopens_what_was_fixed_or_no_longer_seen():
    for old in ("fixed-verified", "fixed-reported", "no-longer-seen"):
        assert outcome(old, "reopened", "scan") == "apply"
    # The owners' other answers stand against being seen again; an operator reopens them.
    for old in ("disputed", "accepted-risk", "false-positive", "notified", "open", "reopened"):
        assert outcome(old, "reopened", "scan") == "ignore"
        assert outcome(old, "open", "operator") in ("apply", "history")


def test_owners_answer_what_is_open_or_answered_and_never_set_a_scans_states():
    for old in ("open", "notified", "reopened", "no-longer-seen", *ANSWERS):
        for answer in ANSWERS:
            assert outcome(old, answer, "owner") in ("apply", "history")
            assert decide(old, answer, "owner").recorded
    for new in ("open", "notified", "reopened", "fixed-verified", "no-longer-seen"):
        assert outcome("notified", new, "owner") == "ignore"
    # The same answer twice: a row in the history for its note, no change.
    assert outcome("disputed", "disputed", "owner") == "history"


def test_the_ticket_system_takes_an_answer_back_but_not_a_verified_fix():
    for old in ANSWERS:
        assert outcome(old, "open", "ticket") == "apply"
    assert outcome("fixed-verified", "open", "ticket") == "history"
    assert outcome("notified", "open", "ticket") == "history"
    assert outcome("no-longer-seen", "open", "ticket") == "apply"


def test_an_operator_corrects_a_verified_fix_but_does_not_lower_it_to_a_claim():
    for new in ("open", "false-positive", "disputed"):
        assert outcome("fixed-verified", new, "operator") == "apply"
    for new in ("fixed-reported", "accepted-risk"):
        assert outcome("fixed-verified", new, "operator") == "history"


def test_no_longer_seen_comes_from_the_scans_side_only_and_never_over_an_owners_verdict():
    for old in ("open", "notified", "reopened", "fixed-reported"):
        assert outcome(old, "no-longer-seen", "scan") == "apply"
    for old in ("fixed-verified", "disputed", "accepted-risk", "false-positive"):
        assert outcome(old, "no-longer-seen", "scan") == "ignore"
    assert outcome(None, "no-longer-seen", "scan") == "apply"  # a rescan's first word on it


def test_a_downstream_certs_changes_are_decided_as_their_origin_and_always_kept():
    assert parse_source("cert:ibd") == ("cert", "ibd", None)
    assert parse_source("cert:ibd/scan") == ("cert", "ibd", "scan")
    # Without an origin the state says it: a verified fix is the CERT's scan.
    assert outcome("notified", "fixed-verified", "cert:ibd") == "apply"
    assert outcome("fixed-verified", "reopened", "cert:ibd") == "apply"
    assert outcome("notified", "fixed-reported", "cert:ibd") == "apply"
    assert outcome("notified", "no-longer-seen", "cert:ibd/scan") == "apply"
    # It notified its constituent: the hub's record of what it forwarded follows; notified
    # again and its reminders are its news: kept, no change.
    assert outcome("forwarded", "notified", "cert:ibd") == "apply"
    assert outcome("open", "notified", "cert:ibd/scan") == "apply"
    for reported in ("notified", "reminded"):
        assert outcome("notified", reported, "cert:ibd") == "history"
    assert outcome("forwarded", "reminded", "cert:ibd/scan") == "history"
    # A CERT's operator is no hub operator: a verified fix stays (kept in the history).
    assert outcome("fixed-verified", "open", "cert:ibd/operator") == "history"
    assert outcome("fixed-verified", "open", "operator") == "apply"
    # An owner there cannot verify a fix here.
    assert outcome("notified", "fixed-verified", "cert:ibd/owner") == "history"
    # What the hub has no record of is nothing to keep.
    assert outcome(None, "fixed-reported", "cert:ibd") == "ignore"


def test_every_pair_of_states_and_every_source_has_an_answer():
    sources = (*precedence.SOURCES, "cert:ibd", *(f"cert:ibd/{s}" for s in precedence.SOURCES))
    for source in sources:
        for old in (None, *STATES):
            for new in (*STATES, *precedence.REPORTED_ONLY):
                decision = decide(old, new, source)
                assert decision.reason.endswith((".", "!")), decision.reason
                assert decision.state in (old, new)


@pytest.mark.parametrize(
    ("old", "new", "source"),
    [
        ("notified", "solved", "owner"),
        ("closed", "open", "operator"),
        ("notified", "disputed", "municipality"),
        ("notified", "disputed", "cert:"),
        ("notified", "disputed", "cert:ibd/municipality"),
        ("notified", "disputed", "cert:ib d"),
    ],
)
def test_an_unknown_state_or_source_is_an_error_naming_it(old, new, source):
    with pytest.raises(ValueError) as raised:
        decide(old, new, source)
    assert any(str(value) in str(raised.value) for value in (old, new, source))


def test_a_cert_speaks_only_of_findings_the_hub_knows():
    for new in (*STATES, *precedence.REPORTED_ONLY):
        assert outcome(None, new, "cert:ibd") == "ignore"
        assert outcome(None, new, "cert:ibd/scan") == "ignore"


def test_the_documented_table_is_the_one_the_code_applies():
    """harmonization/finding-states.md shows, per source, what each request does from each state."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "harmonization" / "finding-states.md").read_text(encoding="utf-8")
    olds = (None, *STATES)
    tables = doc.split("## The table", 1)[1].split("**")[1:]
    documented = {}
    for source, body in zip(tables[::2], tables[1::2]):
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == len(olds) + 1 and cells[0].startswith("`"):
                for old, cell in zip(olds, cells[1:]):
                    documented[(source, cells[0].strip("`"), old)] = cell
    assert {source for source, _, _ in documented} == {"scan", "owner", "ticket", "operator", "cert:ibd"}
    symbols = {"apply": "→", "history": "H", "ignore": "·"}
    for source in ("scan", "owner", "ticket", "operator", "cert:ibd"):
        for new in (*STATES, *precedence.REPORTED_ONLY):
            for old in olds:
                expected = symbols[outcome(old, new, source)]
                assert documented.get((source, new, old), "·") == expected, (source, new, old)
