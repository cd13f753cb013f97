"""OpenPGP-signed digests: keys made here by gpg, mails received by a real SMTP server
(aiosmtpd) and checked with ``gpg --verify`` and ``gpg --decrypt`` as a receiver would."""

import base64
import email
import email.policy
import json
import logging
import os
import shutil
import tempfile

import pytest

from intelmq_nsm.digest import channels, openpgp, pgp_mime
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.sample_events import event, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.digest.gpg import Home, encrypted_payload, parts, signed_and_signature
from tests.harness import LOOPBACK

pytestmark = pytest.mark.e2e  # gpg starts a gpg-agent per home

LOG = logging.getLogger("tests.digest.signing")
AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")


@pytest.fixture(scope="module")
def cert():
    """The CERT's GnuPG home with its signing key, and a receiver's home that knows the public half."""
    with Home() as home, Home() as receiver:
        fingerprint = home.new_key("IBD meldingen <meldingen@ibd.example>")
        receiver.import_key(home.export(fingerprint))
        yield home, fingerprint, receiver


def deliver(spool, channel, now=1):
    return Deliverer(spool, channel, LOG, max_events=100, max_age=0, retry_base=1, retry_max=8).run_once(now=now)


def smtp(sink, signer=None, **options):
    return channels.SmtpChannel(
        LOOPBACK, sink.port, "meldingen@ibd.example", security="none", reply_to="desk@ibd.example",
        signer=signer, **options,
    )  # fmt: skip


def test_every_mail_is_pgp_mime_signed_and_gpg_verifies_it(spool, cert):
    home, fingerprint, receiver = cert
    signer = openpgp.Signer(str(home.path), fingerprint)
    for n, org in enumerate([AMSTERDAM, UTRECHT]):
        spool.add(findings_of(event(n, [org])), now=0)
    with SmtpSink() as sink:
        assert deliver(spool, smtp(sink, signer))["delivered"] == 2
        raws = list(sink.raw)
    assert len(raws) == 2
    for raw in raws:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message.get_content_type() == "multipart/signed"
        assert message.get_param("protocol") == "application/pgp-signature"
        assert message.get_param("micalg") == "pgp-sha256"
        content, signature = message.iter_parts()
        assert content.get_content_type() == "multipart/mixed"
        assert signature.get_content_type() == "application/pgp-signature"
        # The receiver's check: gpg on the signed part's exact bytes.
        signed, sig = signed_and_signature(_entity(raw))
        result = receiver.verify(signed, sig)
        assert result.returncode == 0, result.stderr.decode()
        assert b"Good signature" in result.stderr and fingerprint.encode() in result.stderr
        # What is signed is what the organisation reads: the text and the CSV.
        assert message.get_body(("plain",)).get_content().startswith("TLP:AMBER ")
        [attachment] = list(content.iter_attachments())
        assert attachment.get_filename().endswith("-TLP_AMBER.csv")
        # Headers that keep auto-replies and loops away, the desk to answer to, the id.
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Reply-To"] == "desk@ibd.example"
        assert message["X-NSM-Digest-Id"][:12] in message["Subject"]


def _entity(raw: bytes) -> bytes:
    """The mail from its Content-Type header on: the multipart/signed entity."""
    start = raw.index(b"Content-Type: multipart/")
    return raw[start:]


def test_a_mail_changed_in_transit_fails_verification(spool, cert):
    home, fingerprint, receiver = cert
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with SmtpSink() as sink:
        deliver(spool, smtp(sink, openpgp.Signer(str(home.path), fingerprint)))
        [raw] = sink.raw
    signed, sig = signed_and_signature(_entity(raw))
    assert receiver.verify(signed, sig).returncode == 0
    # One character of the CSV's base64 changed, as a meddling relay would.
    csv_part = parts(signed)[1]  # the signed part holds the text and the CSV
    body = csv_part.split(b"\r\n\r\n", 1)[1]
    changed_body = bytes([body[0] ^ 0x01]) + body[1:]
    tampered = signed.replace(body, changed_body)
    assert tampered != signed
    result = receiver.verify(tampered, sig)
    assert result.returncode != 0 and b"BAD signature" in result.stderr


def test_an_organisation_with_a_key_gets_a_signed_and_encrypted_mail_the_other_a_signed_one(spool, cert, tmp_path):
    home, fingerprint, _ = cert
    with Home() as amsterdam:
        key_file = tmp_path / "gm0363.asc"
        org_key = amsterdam.key_file("CISO Amsterdam <security@gm0363.example>", key_file)
        amsterdam.import_key(home.export(fingerprint))
        with_key = dict(AMSTERDAM, openpgp={"fingerprint": org_key, "key_file": str(key_file)})
        spool.add(findings_of(event(1, [with_key])), now=0)
        spool.add(findings_of(event(2, [UTRECHT])), now=0)
        with SmtpSink() as sink:
            assert deliver(spool, smtp(sink, openpgp.Signer(str(home.path), fingerprint)))["delivered"] == 2
            mails = {tuple(rcpt): raw for (_, rcpt, _), raw in zip(sink.messages, sink.raw)}
        encrypted = mails[("security@gm0363.example",)]
        message = email.message_from_bytes(encrypted, policy=email.policy.default)
        assert message.get_content_type() == "multipart/encrypted"
        body = encrypted.split(b"\r\n\r\n", 1)[1]
        assert b"Citrix" not in body and b"198.51.100" not in body  # nothing readable on the way
        inner = amsterdam.decrypt(encrypted_payload(_entity(encrypted)))
        assert inner.startswith(b"Content-Type: multipart/signed")
        result = amsterdam.verify(*signed_and_signature(inner))
        assert result.returncode == 0 and b"Good signature" in result.stderr
        assert b"Citrix" in base64.b64decode(_csv_base64(inner))
    plain = email.message_from_bytes(mails[("security@gm0344.example",)], policy=email.policy.default)
    assert plain.get_content_type() == "multipart/signed"


def _csv_base64(entity: bytes) -> bytes:
    content = signed_and_signature(entity)[0]
    csv_part = parts(content)[1]
    return b"".join(csv_part.split(b"\r\n\r\n", 1)[1].split())


def test_a_key_file_without_the_registered_key_fails_and_sends_nothing_in_clear(spool, cert, tmp_path):
    home, fingerprint, _ = cert
    key_file = tmp_path / "wrong.asc"
    with Home() as other:
        other.key_file("Someone else <x@elsewhere.example>", key_file)
    registered = "0123456789ABCDEF0123456789ABCDEF01234567"
    org = dict(AMSTERDAM, openpgp={"fingerprint": registered, "key_file": str(key_file)})
    spool.add(findings_of(event(1, [org])), now=0)
    with SmtpSink() as sink:
        assert deliver(spool, smtp(sink, openpgp.Signer(str(home.path), fingerprint)))["failed"] == 1
        assert sink.messages == []
    [failed] = spool.digests("failed")
    assert f"does not hold the key {registered}" in failed["last_error"]


def test_an_expired_key_is_named_and_nothing_goes_unsigned_unless_allowed(spool, tmp_path, caplog):
    with Home() as home:
        expired = home.new_key("Old key <old@ibd.example>", expired=True)
        signer = openpgp.Signer(str(home.path), expired)
        [problem] = signer.problems()
        assert f"The signing key {expired} expired on 2020-01-02" in problem
        spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
        with SmtpSink() as sink:
            result = deliver(spool, smtp(sink, signer))
            assert result["retry"] == 1 and sink.messages == []
            [waiting] = spool.digests("pending")
            assert "cannot be signed" in waiting["last_error"]
            # The operator allows unsigned mail: it goes, and the log says why it is unsigned.
            with caplog.at_level(logging.WARNING):
                assert deliver(spool, smtp(sink, signer, allow_unsigned=True), now=100)["delivered"] == 1
            [raw] = sink.raw
        assert email.message_from_bytes(raw, policy=email.policy.default).get_content_type() == "multipart/mixed"
        assert any("sent unsigned" in r.getMessage() and "expired" in r.getMessage() for r in caplog.records)


def test_a_protected_key_signs_with_the_passphrase_from_its_file_and_a_wrong_one_is_named(tmp_path, cert):
    _, _, receiver = cert
    with Home() as home:
        fingerprint = home.new_key("Protected <p@ibd.example>", passphrase="correct horse")
        receiver.import_key(home.export(fingerprint))
        (tmp_path / "good").write_text("correct horse\n")
        (tmp_path / "bad").write_text("wrong\n")
        # The wrong one first: gpg-agent keeps a passphrase that worked for a while.
        [problem] = openpgp.Signer(str(home.path), fingerprint, str(tmp_path / "bad")).problems()
        assert "could not sign" in problem and "passphrase" in problem
        signature, micalg = openpgp.Signer(str(home.path), fingerprint, str(tmp_path / "good")).sign(b"data\r\n")
        assert micalg == "pgp-sha256"
        assert receiver.verify(b"data\r\n", signature.encode()).returncode == 0
        assert "is not in the GnuPG home" in openpgp.Signer(str(home.path), "A" * 40).problems()[0]


def test_rest_and_file_channels_carry_a_detached_signature_of_the_json(spool, cert, tmp_path):
    home, fingerprint, receiver = cert
    signer = openpgp.Signer(str(home.path), fingerprint)
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with Receiver() as http:
        rest = channels.RestChannel(http.url, "s3cret", signer=signer)
        assert deliver(spool, rest)["delivered"] == 1
        [(headers, body, _)] = http.requests
    binary = base64.b64decode(headers[channels.OPENPGP_HEADER])
    assert receiver.verify(body, binary).returncode == 0
    assert json.loads(body)["tlp"] == "AMBER"
    digest = spool.load(spool.digests()[0]["id"])
    channels.FileChannel(tmp_path / "out", formats=["json"], signer=signer).send(digest)
    written = (tmp_path / "out" / f"{digest.id}.json").read_bytes()
    assert receiver.verify(written, (tmp_path / "out" / f"{digest.id}.json.asc").read_bytes()).returncode == 0


# -- the receiver's side, and what an operator does once ------------------------------------


def test_the_receiver_s_split_of_a_signed_mail_is_what_gpg_verifies(spool, cert, tmp_path):
    home, fingerprint, receiver = cert
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    spool.add(findings_of(event(2, [UTRECHT])), now=0)
    with SmtpSink() as sink:
        assert deliver(spool, smtp(sink, openpgp.Signer(str(home.path), fingerprint)))["delivered"] == 2
        [raw, _] = sink.raw
    # The product's split of the mail as received equals the tests' own, byte for byte.
    assert pgp_mime.signed_and_signature(raw) == signed_and_signature(_entity(raw))
    signed, signature = pgp_mime.signed_and_signature(raw)
    assert receiver.verify(signed, signature).returncode == 0
    key_file = tmp_path / "signing-key.asc"
    key_file.write_bytes(home.export(fingerprint))
    good, transcript = openpgp.receiver_check(str(key_file), signature, signed)
    assert good, transcript
    assert [command for command, _ in transcript] == [
        "gpg --import signing-key.asc",
        "gpg --verify signature.asc signed-part",
    ]
    assert "Good signature from" in transcript[1][1] and "/tmp/gv" not in "".join(o for _, o in transcript)
    # One changed byte of the signed part: gpg says so, and the check is not good.
    changed = signed.replace(b"Content-Type: text/csv", b"Content-Type: text/CSV")
    assert changed != signed
    good, transcript = openpgp.receiver_check(str(key_file), signature, changed)
    assert not good and "BAD signature" in transcript[1][1]


def test_an_unsigned_mail_is_named_as_such_by_the_receiver_s_split(spool):
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with SmtpSink() as sink:
        deliver(spool, smtp(sink))
        [raw] = sink.raw
    with pytest.raises(pgp_mime.NotSigned, match="not multipart/signed"):
        pgp_mime.signed_and_signature(raw)


def test_a_new_signing_key_with_a_passphrase_signs_from_its_file(tmp_path, cert):
    _, _, receiver = cert
    home = tempfile.mkdtemp(prefix="g", dir="/tmp")
    try:
        fingerprint = openpgp.new_signing_key(
            home, "IBD meldingen", "meldingen@ibd.example", passphrase="correct horse", comment="test"
        )
        assert os.stat(home).st_mode & 0o777 == 0o700
        (tmp_path / "pass").write_text("correct horse\n")
        signer = openpgp.Signer(home, fingerprint, str(tmp_path / "pass"))
        assert signer.problems() == []
        [uid] = signer.key()["uids"]
        assert uid == "IBD meldingen (test) <meldingen@ibd.example>"
        assert "S" in signer.key()["cap"] and signer.expires() is not None
        receiver.import_key(signer.public_key().encode())
        signature, _ = signer.sign(b"data\r\n")
        assert receiver.verify(b"data\r\n", signature.encode()).returncode == 0
    finally:
        openpgp.stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)
