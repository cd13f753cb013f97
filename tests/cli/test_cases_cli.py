"""``intelmq-nsm cases``: an operator assigns, shares and lists the researchers' cases on the
intake's real case file; the intake sees the change at its next submission."""

import json

from intelmq_nsm.auth.tokens import add_token
from intelmq_nsm.cli import main
from intelmq_nsm.intake.cases import CaseBook

CASE = "DIVD-2024-00012"


def test_assign_share_list_and_unshare(tmp_path, capsys):
    path = str(tmp_path / "cases.sqlite")
    tokens = tmp_path / "tokens.json"
    add_token(tokens, "DIVD", ["divd"])
    second, _ = add_token(tokens, "Second Team", ["second"])
    assert main(["cases", "list", "--file", path]) == 0
    assert "no case has an owner yet" in capsys.readouterr().err
    assert main(["cases", "assign", CASE, "--to", "DIVD", "--file", path, "--tokens", str(tokens)]) == 0
    assert f"Case {CASE} belongs to DIVD." in capsys.readouterr().out
    # By token id: the token's researcher; an unknown name is refused naming the file.
    assert main(["cases", "share", CASE, "--with", second.id, "--file", path, "--tokens", str(tokens)]) == 0
    assert "shared with Second Team" in capsys.readouterr().out
    assert main(["cases", "share", CASE, "--with", "Secnd Team", "--file", path, "--tokens", str(tokens)]) == 1
    assert "no token of researcher 'Secnd Team'" in capsys.readouterr().err
    book = CaseBook(path)  # what the intake sees
    try:
        assert book.may_speak(CASE, "Second Team") and book.owner(CASE) == "DIVD"
    finally:
        book.close()
    assert main(["cases", "list", "--file", path, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["case_id"], listed["owner"], listed["shared_with"]) == (CASE, "DIVD", ["Second Team"])
    assert main(["cases", "unshare", CASE, "--with", "Second Team", "--file", path]) == 0
    assert main(["cases", "show", CASE, "--file", path]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{CASE}  owner DIVD (by operator)"


def test_a_case_another_researcher_owns_moves_only_with_transfer(tmp_path, capsys):
    path = str(tmp_path / "cases.sqlite")
    book = CaseBook(path)
    book.claim(CASE, "Squatter")
    book.close()
    assert main(["cases", "assign", CASE, "--to", "DIVD", "--file", path]) == 1
    assert "belongs to another researcher; --transfer moves it" in capsys.readouterr().err
    assert main(["cases", "assign", CASE, "--to", "DIVD", "--transfer", "--file", path]) == 0
    captured = capsys.readouterr()
    assert "belongs to DIVD now, no longer to Squatter" in captured.out
    assert "keep Squatter as their reporter" in captured.err
    assert main(["cases", "share", "NOPE-1", "--with", "DIVD", "--file", path]) == 1
    assert "has no owner yet: assign it first" in capsys.readouterr().err
