"""The token file and the ``intelmq-nsm tokens`` command."""

import json
import stat

import pytest
import yaml

from intelmq_nsm.auth.tokens import (
    TOKEN_PATTERN,
    TokenFileError,
    TokenVerifier,
    add_token,
    read_entries,
    revoke_token,
)
from intelmq_nsm.cli import main


def test_the_file_stores_salted_hashes_never_the_token(tmp_path):
    path = tmp_path / "tokens.json"
    first, token1 = add_token(path, "DIVD", ["divd"])
    second, token2 = add_token(path, "DIVD", ["divd"])
    text = path.read_text()
    assert TOKEN_PATTERN.match(token1) and token1 != token2
    assert token1 not in text and token1[13:] not in text
    assert first.salt != second.salt and first.hash != second.hash
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e.id for e in read_entries(path)] == [first.id, second.id]


def test_the_verifier_accepts_the_token_and_refuses_wrong_and_revoked_ones(tmp_path):
    path = tmp_path / "tokens.json"
    entry, token = add_token(path, "DIVD", ["divd", "divd-csv"], feed_name="DIVD scans")
    verifier = TokenVerifier(path)
    found, reason = verifier.verify(token)
    assert reason is None and (found.researcher, found.feed_name, found.feed_codes) == (
        "DIVD",
        "DIVD scans",
        ["divd", "divd-csv"],
    )
    assert verifier.verify(token)[0].id == entry.id  # from the cache
    assert verifier.verify(token[:-1] + ("a" if token[-1] != "a" else "b")) == (None, "The token is not valid.")
    assert verifier.verify(None)[1].startswith("An Authorization header")
    assert verifier.verify("nsm_zz_short")[1] == "The token is not valid."
    revoke_token(path, entry.id)
    assert verifier.verify(token) == (None, "The token was revoked.")


def test_a_yaml_token_file_works_the_same(tmp_path):
    path = tmp_path / "tokens.yaml"
    entry, token = add_token(path, "Example Research", ["example"])
    assert yaml.safe_load(path.read_text())["tokens"][0]["id"] == entry.id
    assert TokenVerifier(path).verify(token)[0].researcher == "Example Research"


def test_bad_input_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "tokens.json"
    with pytest.raises(ValueError, match="feed code"):
        add_token(path, "DIVD", [])
    with pytest.raises(ValueError, match="not valid"):
        add_token(path, "DIVD", ["Bad Code"])
    with pytest.raises(KeyError):
        revoke_token(path, "00000000")
    path.write_text("{not json")
    with pytest.raises(TokenFileError, match="cannot be parsed"):
        read_entries(path)


def test_the_tokens_command_adds_lists_and_revokes(tmp_path, capsys):
    path = str(tmp_path / "tokens.json")
    assert (
        main(["tokens", "add", "--file", path, "--researcher", "DIVD", "--feed-code", "divd,divd-csv", "--json"]) == 0
    )
    added = json.loads(capsys.readouterr().out)
    assert TOKEN_PATTERN.match(added["token"]) and added["feed_codes"] == ["divd", "divd-csv"]
    assert main(["tokens", "list", "--file", path]) == 0
    listing = capsys.readouterr().out
    assert added["id"] in listing and "DIVD" in listing and "active" in listing
    assert added["token"] not in listing
    assert main(["tokens", "revoke", "--file", path, added["id"]]) == 0
    capsys.readouterr()
    assert main(["tokens", "list", "--file", path, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["revoked"] and "hash" not in row and "salt" not in row
    assert main(["tokens", "revoke", "--file", path, "ffffffff"]) == 1
