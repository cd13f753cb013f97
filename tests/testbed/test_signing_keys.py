"""The test bed's signing keys for a laid-out example, and its SMTP sink keeping mails as .eml."""

import os
import shutil
import smtplib
import tempfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from intelmq_nsm.digest.openpgp import Signer
from intelmq_nsm.testbed.signing import AGENT_SOCKETS, SOCKET_PATH_MAX, make_signing_keys
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.harness import LOOPBACK, wait_for

pytestmark = pytest.mark.e2e  # gpg starts a gpg-agent per home

DIGEST = "intelmq.bots.outputs.nsm.digest"


def output(name: str, **parameters) -> dict:
    return {"name": name, "module": DIGEST, "parameters": parameters}


def agents_of(home: Path) -> list:
    """PIDs of gpg-agent processes serving ``home``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and command and command[0].endswith(b"gpg-agent") and str(home).encode() in command:
            found.append(int(entry.name))
    return found


def test_each_signing_home_in_the_working_folder_gets_a_fresh_key_that_signs(tmp_path):
    # A working folder as deep as pytest's can be: the agent's socket would not fit in the home.
    workdir = tmp_path / ("deep-" * 8) / "run"
    home = workdir / "var" / "lib" / "bots" / "ibd-digest-mail" / "gnupg"
    assert len(str(home / "S.gpg-agent.browser")) > SOCKET_PATH_MAX
    passphrase_file = workdir / "etc" / "nsm" / "ibd-signing-key.pass"
    elsewhere = "/opt/intelmq/var/lib/bots/elsewhere/gnupg"
    runtime = {
        "global": {},
        "ibd-digest-mail": output(
            "IBD digests (mail)",
            openpgp_fingerprint="0" * 40,
            openpgp_home=str(home),
            openpgp_passphrase_file=str(passphrase_file),
            smtp_from="meldingen@ibd.example",
        ),
        "ibd-digest-rest": output("IBD digests (REST)", openpgp_fingerprint="0" * 40, openpgp_home=str(home)),
        "other-output": output("Not ours", openpgp_fingerprint="1" * 40, openpgp_home=elsewhere),
        "unsigned-output": output("Unsigned", openpgp_home=str(workdir / "unused")),
    }
    [key] = make_signing_keys(runtime, workdir)
    try:
        assert key.bot_ids == ["ibd-digest-mail", "ibd-digest-rest"] and key.home == home
        assert runtime["ibd-digest-mail"]["parameters"]["openpgp_fingerprint"] == key.fingerprint
        assert runtime["ibd-digest-rest"]["parameters"]["openpgp_fingerprint"] == key.fingerprint
        assert key.fingerprint != "0" * 40
        # An operator's home outside the working folder, and an output that signs nothing, are left alone.
        assert runtime["other-output"]["parameters"]["openpgp_fingerprint"] == "1" * 40
        assert not Path(elsewhere).exists() and not (workdir / "unused").exists()
        assert os.stat(home).st_mode & 0o777 == 0o700
        assert os.stat(passphrase_file).st_mode & 0o777 == 0o600
        assert len(passphrase_file.read_text().strip()) >= 32
        # The agent's sockets went to a short folder; the key signs through it, with the passphrase.
        assert key.socket_dir is not None and len(str(key.socket_dir / max(AGENT_SOCKETS, key=len))) <= SOCKET_PATH_MAX
        assert (home / "S.gpg-agent").read_text().startswith("%Assuan%\nsocket=")
        signer = Signer(str(home), key.fingerprint, str(passphrase_file))
        assert signer.problems() == []
        assert signer.key()["uids"] == ["IBD digests (mail) (intelmq-nsm test bed) <meldingen@ibd.example>"]
        assert key.public_key().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert agents_of(home)
    finally:
        key.close()
    # gpgconf --kill asks the agent to stop and returns: on a busy machine it exits a moment later.
    wait_for(lambda: agents_of(home) == [], timeout=10, what="the agent to stop")
    assert agents_of(home) == [] and not key.socket_dir.exists()


def test_a_home_whose_longest_socket_path_has_107_characters_is_redirected():
    # Seen in the tests: gpg-agent refuses a socket path of 107 characters.
    workdir = Path(tempfile.mkdtemp(prefix="sl", dir="/tmp"))
    try:
        home = workdir / ("x" * (107 - len(str(workdir)) - len("/S.gpg-agent.browser") - 1))
        assert len(str(home / "S.gpg-agent.browser")) == 107
        runtime = {"mail": output("Mail", openpgp_fingerprint="0" * 40, openpgp_home=str(home))}
        [key] = make_signing_keys(runtime, workdir)
        try:
            assert key.socket_dir is not None
            assert Signer(str(home), key.fingerprint).problems() == []
        finally:
            key.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_relative_home_is_measured_where_it_lies(tmp_path, monkeypatch):
    # The demo's --workdir may be relative: the agent's socket path is the absolute one.
    monkeypatch.chdir(tmp_path)
    workdir = Path("deep-" * 8) / "work"
    runtime = {"mail": output("Mail", openpgp_fingerprint="0" * 40, openpgp_home=str(workdir / "gnupg"))}
    assert len(str(workdir / "gnupg" / "S.gpg-agent.browser")) <= SOCKET_PATH_MAX
    [key] = make_signing_keys(runtime, workdir)
    try:
        assert key.socket_dir is not None
        assert Signer(str(workdir / "gnupg"), key.fingerprint).problems() == []
    finally:
        key.close()


def test_a_short_home_keeps_its_agent_sockets_and_a_key_without_passphrase_file_has_none():
    workdir = Path(tempfile.mkdtemp(prefix="sb", dir="/tmp"))
    try:
        runtime = {"mail": output("Mail", openpgp_fingerprint="0" * 40, openpgp_home=str(workdir / "gnupg"))}
        [key] = make_signing_keys(runtime, workdir)
        try:
            assert key.socket_dir is None and key.passphrase_file is None
            assert not (workdir / "gnupg" / "S.gpg-agent").is_file()
            assert Signer(str(workdir / "gnupg"), key.fingerprint).problems() == []
            assert "openpgp_passphrase_file" not in runtime["mail"]["parameters"]
        finally:
            key.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_smtp_sink_keeps_every_mail_as_received_in_an_eml_file(tmp_path):
    folder = tmp_path / "mails"
    with SmtpSink(keep=folder) as sink:
        with smtplib.SMTP(LOOPBACK, sink.port) as client:
            for n, recipient in enumerate(["ciso@amsterdam.example", "odd/name@rotterdam.example"]):
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = "meldingen@ibd.example", recipient, f"mail {n}"
                message.set_content(f"mail {n}\n")
                client.send_message(message)
        files = list(sink.files)
        raws = list(sink.raw)
    assert [path.name for path in files] == ["0001-ciso@amsterdam.example.eml", "0002-odd_name@rotterdam.example.eml"]
    assert sorted(folder.iterdir()) == files
    assert [path.read_bytes() for path in files] == raws
    assert b"Subject: mail 1" in raws[1]
