"""A downstream CERT's tokens: at the hub, bound to one constituency in the token file; at the
CERT, one line in a file only the bots' user may read."""

import json
import os

import pytest

from intelmq_nsm.auth.client import read_token, token_problem
from intelmq_nsm.auth.tokens import TokenFileError, TokenVerifier, add_token, read_entries
from intelmq_nsm.cli import main


def test_a_cert_token_is_bound_to_its_constituency_and_older_files_stay_readable(tmp_path):
    path = tmp_path / "cert-tokens.json"
    entry, token = add_token(path, "IBD", [], constituency="ibd")
    add_token(path, "IBD-tickets", ["feedback"])
    assert (entry.constituency, entry.feed_codes) == ("ibd", ["ibd"])
    stored = json.loads(path.read_text())["tokens"]
    assert stored[0]["constituency"] == "ibd" and "constituency" not in stored[1]  # as versions before wrote it
    verified, _ = TokenVerifier(path).verify(token)
    assert verified.constituency == "ibd" and read_entries(path)[1].constituency is None
    with pytest.raises(ValueError, match="not a key"):
        add_token(path, "X", [], constituency="IBD CERT")
    stored[1]["constituency"] = "Not A Key"
    path.write_text(json.dumps({"version": 1, "tokens": stored}))
    with pytest.raises(TokenFileError, match="constituency that is not a constituency key"):
        read_entries(path)


def test_the_tokens_command_makes_and_lists_a_cert_token(tmp_path, capsys):
    path = str(tmp_path / "cert-tokens.json")
    assert main(["tokens", "add", "--file", path, "--researcher", "SURFcert", "--constituency", "surf", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["constituency"] == "surf" and added["feed_codes"] == ["surf"]
    assert main(["tokens", "list", "--file", path]) == 0
    assert "constituency surf" in capsys.readouterr().out
    # A researcher's token still needs its feed codes.
    assert main(["tokens", "add", "--file", path, "--researcher", "DIVD"]) == 2


def test_the_cert_s_token_file_must_be_its_own(tmp_path):
    path = tmp_path / "upstream-token"
    path.write_text("nsm_0123abcd_" + "A" * 43 + "\n")
    os.chmod(path, 0o600)
    assert token_problem(path) == "" and read_token(path) == "nsm_0123abcd_" + "A" * 43
    for mode in (0o640, 0o604, 0o644):
        os.chmod(path, mode)
        with pytest.raises(TokenFileError, match="may be read by others"):
            read_token(path)
    os.chmod(path, 0o600)
    path.write_text("one\ntwo\n")
    with pytest.raises(TokenFileError, match="one token on one line"):
        read_token(path)
    assert "cannot be read" in token_problem(tmp_path / "missing")
    assert "not a regular file" in token_problem(tmp_path)
