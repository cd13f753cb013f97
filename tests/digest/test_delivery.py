"""Delivery against real receivers: a local HTTP server and a real SMTP server (aiosmtpd)."""

import hashlib
import hmac
import json
import logging
from collections import Counter, defaultdict

import pytest

from intelmq_nsm.digest import channels
from intelmq_nsm.digest.delivery import Deliverer, DeliveryThread
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.sample_events import event, municipalities, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.harness import LOOPBACK, free_port, wait_for

SECRET = "s3cret-shared-with-the-ibd"
AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
LOG = logging.getLogger("tests.digest")


@pytest.fixture
def spool(tmp_path):
    spool = DigestSpool(tmp_path / "spool.sqlite")
    yield spool
    spool.close()


def deliverer(spool, channel, **settings):
    settings = {"max_events": 100, "max_age": 0, "retry_base": 1, "retry_max": 8, **settings}
    return Deliverer(spool, channel, LOG, **settings)


def fill(spool, *orgs, per_org=2):
    n = 0
    for org in orgs:
        for _ in range(per_org):
            n += 1
            spool.add(findings_of(event(n, [org])), now=0)


def test_rest_posts_signed_json_with_the_digest_id_as_idempotency_key(spool):
    fill(spool, AMSTERDAM, UTRECHT)
    with Receiver() as receiver:
        result = deliverer(spool, channels.RestChannel(receiver.url, SECRET)).run_once(now=1)
        assert result == {"formed": 2, "delivered": 2, "retry": 0, "failed": 0}
        for headers, body, _ in receiver.requests:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-NSM-Signature"] == expected
            assert headers["Idempotency-Key"] == json.loads(body)["id"]
            assert headers["Content-Type"].startswith("application/json")
    assert spool.counts()["delivered"] == 2


def test_endpoint_down_for_a_while_then_up_delivers_everything_once(spool):
    fill(spool, AMSTERDAM, UTRECHT)
    port = free_port()  # nothing listens here yet
    rest = channels.RestChannel(f"http://{LOOPBACK}:{port}/digests", SECRET, timeout=2)
    run = deliverer(spool, rest)
    assert run.run_once(now=1) == {"formed": 2, "delivered": 0, "retry": 2, "failed": 0}
    assert run.run_once(now=1.5)["retry"] == 0  # backoff: nothing is due yet
    assert run.run_once(now=2)["retry"] == 2  # second attempt, still down
    assert [d["attempts"] for d in spool.digests()] == [2, 2]
    assert all("ConnectionError" in d["last_error"] for d in spool.digests())
    with Receiver() as receiver:
        rest.url = receiver.url
        assert run.run_once(now=3.9)["delivered"] == 0  # 2nd retry waits 2 s
        assert run.run_once(now=4)["delivered"] == 2
        assert run.run_once(now=100)["delivered"] == 0
        assert sorted(receiver.keys().values()) == [1, 1]
    assert spool.counts()["delivered"] == 2


def test_500_then_200(spool):
    fill(spool, AMSTERDAM)
    with Receiver(script=[500, 503]) as receiver:
        run = deliverer(spool, channels.RestChannel(receiver.url, SECRET))
        assert run.run_once(now=1)["retry"] == 1
        assert run.run_once(now=2)["retry"] == 1
        assert run.run_once(now=4)["delivered"] == 1
        assert [status for _, _, status in receiver.requests] == [500, 503, 200]
        assert len(set(receiver.keys())) == 1
    [row] = spool.digests()
    assert row["state"] == "delivered" and row["attempts"] == 3


def test_429_is_retried_and_honours_retry_after(spool):
    fill(spool, AMSTERDAM)
    with Receiver(script=[429]) as receiver:
        run = deliverer(spool, channels.RestChannel(receiver.url, SECRET))
        assert run.run_once(now=1)["retry"] == 1
        assert run.run_once(now=2)["delivered"] == 1


def test_a_slow_endpoint_times_out_and_the_retry_succeeds(spool):
    fill(spool, AMSTERDAM)
    with Receiver(script=[("slow", 1.5)]) as receiver:
        run = deliverer(spool, channels.RestChannel(receiver.url, SECRET, timeout=0.5))
        assert run.run_once(now=1)["retry"] == 1
        assert "Timeout" in spool.digests()[0]["last_error"]
        assert run.run_once(now=2)["delivered"] == 1
        receiver.wait_for(lambda r: len(r.requests) == 2)
        # The slow request arrived too: the receiver deduplicates by Idempotency-Key.
        assert list(receiver.keys().values()) == [2]


def test_other_4xx_is_not_retried_but_kept_as_failed_and_can_be_retried(spool):
    fill(spool, AMSTERDAM)
    with Receiver(script=[422]) as receiver:
        run = deliverer(spool, channels.RestChannel(receiver.url, SECRET))
        assert run.run_once(now=1)["failed"] == 1
        assert run.run_once(now=10_000) == {"formed": 0, "delivered": 0, "retry": 0, "failed": 0}
        [row] = spool.digests("failed")
        assert "422" in row["last_error"]
        assert spool.retry(row["id"], now=10_000)
        assert run.run_once(now=10_001)["delivered"] == 1
        assert len(receiver.requests) == 2


def test_max_attempts_turns_a_retried_digest_into_a_failed_one(spool):
    fill(spool, AMSTERDAM)
    with Receiver(default=503) as receiver:
        run = deliverer(spool, channels.RestChannel(receiver.url, SECRET), max_attempts=2)
        assert run.run_once(now=1)["retry"] == 1
        assert run.run_once(now=100)["failed"] == 1
        [row] = spool.digests("failed")
        assert row["attempts"] == len(receiver.requests) == 2
        assert row["last_error"].startswith("Gave up after 2 attempts")


def test_10000_events_over_342_municipalities_each_digest_holds_only_its_own(spool):
    gemeenten = municipalities()
    assert len(gemeenten) == 342
    orgs = [organisation(code, name) for code, name in gemeenten]
    expected = defaultdict(set)
    for n in range(10_000):
        org = orgs[(n * 7) % len(orgs)]
        message = event(n, [org], **{"source.fqdn": f"host{n}.{org['id'].lower()}.example"})
        spool.add(findings_of(message), now=n / 1000)
        expected[org["id"]].add(message["source.fqdn"])
    with Receiver() as receiver:
        result = deliverer(spool, channels.RestChannel(receiver.url, SECRET), max_events=25).run_once(now=100)
        assert result["failed"] == result["retry"] == 0
        received = defaultdict(set)
        for doc in receiver.accepted:
            org_id = doc["organisation"]["id"]
            for row in doc["findings"]:
                # every finding in a digest belongs to the digest's organisation
                assert row["fqdn"].endswith(f".{org_id.lower()}.example"), (org_id, row["fqdn"])
                received[org_id].add(row["fqdn"])
        assert received == expected
        assert sum(len(doc["findings"]) for doc in receiver.accepted) == 10_000
        assert set(receiver.keys().values()) == {1}
        assert len(receiver.keys()) == result["delivered"] == spool.counts()["delivered"]


def test_smtp_sends_text_and_csv_to_the_organisations_contacts(spool):
    fill(spool, AMSTERDAM, UTRECHT)
    with SmtpSink() as sink:
        smtp = channels.SmtpChannel(LOOPBACK, sink.port, "ibd@ibd.example", security="none")
        assert deliverer(spool, smtp).run_once(now=1)["delivered"] == 2
        by_recipient = {tuple(rcpt): msg for _, rcpt, msg in sink.messages}
    msg = by_recipient[("security@gm0363.example",)]
    assert msg["From"] == "ibd@ibd.example" and msg["To"] == "security@gm0363.example"
    short = msg["X-NSM-Digest-Id"][:12]
    assert msg["Subject"] == f"[TLP:AMBER] [IBD] 2 kwetsbare systemen gemeld voor Amsterdam (overzicht {short})"
    assert msg["Message-ID"] == f"<{msg['X-NSM-Digest-Id']}@ibd.example>"
    body = msg.get_body(("plain",)).get_content()
    assert body.startswith("TLP:AMBER Ontvangers mogen dit alleen delen met wie het moet weten")
    assert "\nBeste Amsterdam," in body and "security@gm0344.example" not in body
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_filename().startswith("GM0363-")
    csv_text = attachment.get_content()
    assert csv_text.startswith("kind,finding_id,time,ip,port") and csv_text.count("\n") == 3


def test_smtp_fixed_recipient_and_testing_to_override(spool):
    fill(spool, AMSTERDAM)
    with SmtpSink() as sink:
        smtp = channels.SmtpChannel(
            LOOPBACK, sink.port, "ibd@ibd.example", to="desk@ibd.example", testing_to="tester@ibd.example",
            security="none", language="en",
        )  # fmt: skip
        deliverer(spool, smtp).run_once(now=1)
        [(_, rcpt, msg)] = sink.wait_for(1)
    assert rcpt == ["tester@ibd.example"] and msg["To"] == "tester@ibd.example"
    assert (
        msg["Subject"]
        == f"[TLP:AMBER] [IBD] 2 vulnerable systems reported for Amsterdam (digest {msg['X-NSM-Digest-Id'][:12]})"
    )


def test_smtp_header_injection_from_event_values_is_impossible(spool):
    evil = organisation("GM0363", "Amsterdam\r\nBcc: victim@evil.example")
    evil["contacts"] = ["security@gm0363.example\r\nBcc: victim@evil.example", "ok@gm0363.example"]
    spool.add(findings_of(event(1, [evil])), now=0)
    with SmtpSink() as sink:
        smtp = channels.SmtpChannel(LOOPBACK, sink.port, "ibd@ibd.example", security="none")
        assert deliverer(spool, smtp).run_once(now=1)["delivered"] == 1
        [(_, rcpt, msg)] = sink.wait_for(1)
    assert rcpt == ["ok@gm0363.example"]
    assert msg["Bcc"] is None and "victim" not in msg["To"]
    assert msg["Subject"] == (
        f"[TLP:AMBER] [IBD] 1 kwetsbaar systeem gemeld voor Amsterdam Bcc: victim@evil.example"
        f" (overzicht {msg['X-NSM-Digest-Id'][:12]})"
    )


def test_smtp_without_a_valid_contact_fails_visibly(spool):
    org = organisation("GM0363", "Amsterdam")
    org["contacts"] = []
    spool.add(findings_of(event(1, [org])), now=0)
    smtp = channels.SmtpChannel(LOOPBACK, free_port(), "ibd@ibd.example", security="none")
    assert deliverer(spool, smtp).run_once(now=1)["failed"] == 1
    assert "no valid contact" in spool.digests("failed")[0]["last_error"]


def test_smtp_server_down_is_retried(spool):
    fill(spool, AMSTERDAM)
    port = free_port()
    smtp = channels.SmtpChannel(LOOPBACK, port, "ibd@ibd.example", security="none", timeout=2)
    run = deliverer(spool, smtp)
    assert run.run_once(now=1)["retry"] == 1
    with SmtpSink() as sink:
        smtp.port = sink.port
        assert run.run_once(now=2)["delivered"] == 1
        assert len(sink.wait_for(1)) == 1


def test_file_channel_writes_each_format_atomically(spool, tmp_path):
    fill(spool, AMSTERDAM)
    out = tmp_path / "out"
    deliverer(spool, channels.FileChannel(out)).run_once(now=1)
    [row] = spool.digests("delivered")
    assert sorted(p.name for p in out.iterdir()) == [f"{row['id']}.{ext}" for ext in ("csv", "json", "txt")]
    assert json.loads((out / f"{row['id']}.json").read_text())["organisation"]["id"] == "GM0363"


def test_delivery_thread_delivers_by_age_while_idle_and_stops(tmp_path):
    path = tmp_path / "spool.sqlite"
    writer = DigestSpool(path)
    with Receiver() as receiver:
        thread = DeliveryThread(
            lambda: DigestSpool(path), channels.RestChannel(receiver.url, SECRET), LOG, interval=0.05,
            max_events=100, max_age=0.2, retry_base=1, retry_max=1,
        )  # fmt: skip
        thread.start()
        writer.add(findings_of(event(1, [AMSTERDAM])))
        receiver.wait_for(lambda r: len(r.accepted) == 1, timeout=10)
        thread.stop(timeout=5)
        assert not thread.is_alive()
    wait_for(lambda: writer.counts()["delivered"] == 1, timeout=5)
    assert Counter(d["state"] for d in writer.digests()) == {"delivered": 1}


@pytest.fixture
def tls_server_context(tmp_path, monkeypatch):
    """A server TLS context with a fresh certificate that clients in this test trust."""
    import ssl

    from tests.digest.servers import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # ssl.create_default_context() trusts it
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _authenticator(sink):
    from aiosmtpd.smtp import AuthResult

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"intelmq" and auth_data.password == b"pw"
        if ok:
            sink.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    return authenticate


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_over_tls_with_authentication(spool, tls_server_context, security):
    fill(spool, AMSTERDAM)
    # aiosmtpd does not see its own implicit TLS as TLS when deciding to offer AUTH.
    options = {"ssl_context": tls_server_context, "auth_require_tls": False} if security == "ssl" else {
        "tls_context": tls_server_context, "require_starttls": True,
    }  # fmt: skip
    sink = SmtpSink(auth_required=True, **options)
    sink.controller.SMTP_kwargs["authenticator"] = _authenticator(sink)
    with sink:
        smtp = channels.SmtpChannel(
            LOOPBACK, sink.port, "ibd@ibd.example", security=security, username="intelmq", password="pw"
        )
        assert deliverer(spool, smtp).run_once(now=1)["delivered"] == 1
        assert len(sink.wait_for(1)) == 1 and sink.logins == ["intelmq"]


def test_channels_refuse_incomplete_settings():
    with pytest.raises(ValueError, match="http"):
        channels.RestChannel(None, SECRET)
    with pytest.raises(ValueError, match="secret"):
        channels.RestChannel("https://intake.ibd.example/", "")
    with pytest.raises(ValueError, match="single e-mail address"):
        channels.SmtpChannel(LOOPBACK, 25, None)
    with pytest.raises(ValueError, match="directory"):
        channels.FileChannel(None)
    with pytest.raises(ValueError, match="formats"):
        channels.FileChannel("/tmp/x", formats=["pdf"])


NON_ASCII = [organisation("GM1900", "Súdwest-Fryslân"), organisation("GM9001", "Gemeente één")]
NON_ASCII_FIELDS = {
    "extra.nsm.case_title": "Lek in één systeem van Súdwest-Fryslân",
    "extra.nsm.recommendation": "Werk bij en herstart één keer — daarna «klaar».",
}


@pytest.mark.parametrize("language", ["nl", "en"])
def test_every_part_of_a_digest_round_trips_non_ascii_text(spool, tmp_path, language):
    import email
    import email.policy

    from intelmq_nsm.digest import render

    for n, org in enumerate(NON_ASCII):
        spool.add(findings_of(event(n, [org], **NON_ASCII_FIELDS)), now=0)
    with SmtpSink() as sink, Receiver() as receiver:
        smtp = channels.SmtpChannel(LOOPBACK, sink.port, "ibd@ibd.example", security="none", language=language)
        assert deliverer(spool, smtp).run_once(now=1)["delivered"] == 2
        digests = {d["id"]: spool.load(d["id"]) for d in spool.digests()}
        rest = channels.RestChannel(receiver.url, SECRET)
        for digest in digests.values():
            rest.send(digest)
        raw_mails, bodies = list(sink.raw), [body for _, body, _ in receiver.requests]
    assert len(raw_mails) == 2
    for raw in raw_mails:
        # Parsed back from the bytes the server received, by the standard library's parser.
        message = email.message_from_bytes(raw, policy=email.policy.default)
        digest = digests[message["X-NSM-Digest-Id"]]
        name = digest.organisation["name"]
        assert message["Subject"] == render.subject(digest, language) and name in message["Subject"]
        text = message.get_body(("plain",))
        assert text.get_content_charset() == "utf-8"
        # Mail text has CRLF line ends; the lines are the rendered ones.
        assert text.get_content().splitlines() == render.to_text(digest, language).splitlines()
        assert name in text.get_content()
        [attachment] = list(message.iter_attachments())
        assert attachment.get_content_type() == "text/csv" and attachment.get_content_charset() == "utf-8"
        assert attachment.get_content() == render.to_csv(digest)
        assert "één systeem van Súdwest-Fryslân" in attachment.get_content()
        assert "«klaar»" in attachment.get_payload(decode=True).decode(attachment.get_content_charset())
    # The JSON document, as the REST receiver got it and as the file channel writes it.
    documents = {json.loads(body)["id"]: json.loads(body) for body in bodies}
    assert sorted(d["organisation"]["name"] for d in documents.values()) == sorted(o["name"] for o in NON_ASCII)
    files = channels.FileChannel(tmp_path / "files", formats=["json"])
    for digest_id, digest in digests.items():
        assert documents[digest_id] == render.as_document(digest)
        assert documents[digest_id]["findings"][0]["case_title"] == NON_ASCII_FIELDS["extra.nsm.case_title"]
        files.send(digest)
        written = (tmp_path / "files" / f"{digest_id}.json").read_text(encoding="utf-8")
        assert json.loads(written) == documents[digest_id]


def test_an_unexpected_error_in_a_channel_is_retried_not_left_attempting(spool):
    class Broken:
        def send(self, digest):
            raise RuntimeError("the channel broke")

    fill(spool, AMSTERDAM)
    assert deliverer(spool, Broken()).run_once(now=1)["retry"] == 1
    [row] = spool.digests()
    assert row["state"] == "pending" and row["attempts"] == 1 and row["attempt_started"] == 1
    assert row["last_error"] == "RuntimeError: the channel broke"
