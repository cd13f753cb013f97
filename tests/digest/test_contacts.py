"""Unreachable contacts: a real SMTP server (aiosmtpd) refusing one contact, bounces (RFC 3464)
read from files and a Maildir, and what the operator sees (spool list, check, stale)."""

import json
import logging
import mailbox

from intelmq_nsm.cli import main
from intelmq_nsm.digest import bounces, channels, health
from intelmq_nsm.digest.contacts import ContactBook
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from intelmq_nsm.digest.stale import stale
from intelmq_nsm.testbed.sample_events import event, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.harness import LOOPBACK

LOG = logging.getLogger("tests.digest.contacts")
AMSTERDAM = dict(organisation("GM0363", "Amsterdam"), contacts=["ciso@gm0363.example", "soc@gm0363.example"])
GONE, KEPT = AMSTERDAM["contacts"]


class RefusingSink(SmtpSink):
    """An SMTP server that refuses some recipients at RCPT, others at the end of DATA."""

    def __init__(self, at_rcpt=None, at_data=None, **options):
        super().__init__(**options)
        self.at_rcpt, self.at_data = at_rcpt or {}, at_data or {}
        self.rcpts = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpts.append(address)
        if address in self.at_rcpt:
            return self.at_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            if address in self.at_data:
                return self.at_data[address]
        return await super().handle_DATA(server, session, envelope)


def deliver(spool, channel, now, **settings):
    return Deliverer(spool, channel, LOG, max_events=100, max_age=0, retry_base=1, retry_max=8, **settings).run_once(
        now=now
    )


def smtp(sink):
    return channels.SmtpChannel(LOOPBACK, sink.port, "meldingen@ibd.example", security="none")


def test_a_550_at_rcpt_for_one_of_two_contacts_the_other_gets_it_the_first_is_marked(spool, caplog):
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with RefusingSink(at_rcpt={GONE: "550 5.1.1 User unknown"}) as sink:
        assert deliver(spool, smtp(sink), now=1)["delivered"] == 1
        assert [rcpt for _, rcpt, _ in sink.messages] == [[KEPT]]
        book = ContactBook(spool.db)
        [row] = book.rows()
        assert (row["address"], row["org_id"], row["source"]) == (GONE, "GM0363", "smtp")
        assert "RCPT answered 550 5.1.1 User unknown" in row["reason"]
        assert any("Contact ciso@gm0363.example of GM0363 is unreachable" in r.getMessage() for r in caplog.records)
        # The next digest is not even offered to the marked contact.
        sink.rcpts.clear()
        spool.add(findings_of(event(2, [AMSTERDAM])), now=2)
        assert deliver(spool, smtp(sink), now=3)["delivered"] == 1
        assert sink.rcpts == [KEPT]


def test_a_5xx_at_data_marks_that_contact_and_a_4xx_marks_nobody(spool):
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with RefusingSink(at_data={GONE: "554 5.7.1 Message refused"}) as sink:
        assert deliver(spool, smtp(sink), now=1)["delivered"] == 1
    assert list(ContactBook(spool.db).unreachable()) == [GONE]
    ContactBook(spool.db).clear(GONE)
    spool.add(findings_of(event(2, [AMSTERDAM])), now=2)
    with RefusingSink(at_rcpt={GONE: "450 4.2.1 Mailbox busy"}) as sink:
        assert deliver(spool, smtp(sink), now=3)["delivered"] == 1
        assert [rcpt for _, rcpt, _ in sink.messages] == [[KEPT]]
    assert ContactBook(spool.db).rows() == []


def test_with_every_contact_refused_the_digest_fails_and_stays_visible(spool, tmp_path, capsys):
    refused = {address: "550 5.1.1 User unknown" for address in AMSTERDAM["contacts"]}
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with RefusingSink(at_rcpt=refused) as sink:
        assert deliver(spool, smtp(sink), now=1)["failed"] == 1
        assert sink.messages == []
        # The next digest of the organisation fails at once: no contact is left.
        spool.add(findings_of(event(2, [AMSTERDAM])), now=2)
        assert deliver(spool, smtp(sink), now=3)["failed"] == 1
    first, second = sorted(spool.digests("failed"), key=lambda d: d["created"])
    assert "Every contact refused the digest" in first["last_error"]
    assert "Every contact of organisation 'GM0363' is unreachable" in second["last_error"]
    lines = health.problems(tmp_path / "spool.sqlite")
    # The bot's check says the same, as warnings, when it is given the spool file.
    from intelmq_nsm.bots.outputs.digest.output import NSMDigestOutputBot

    parameters = {"channel": "file", "file_directory": str(tmp_path), "constituency": "ibd"}
    checked = NSMDigestOutputBot.check({**parameters, "spool_file": str(tmp_path / "spool.sqlite")})
    assert checked == [["warning", line] for line in lines] and len(lines) == 4
    assert sum("failed and waits for an operator" in line for line in lines) == 2
    assert sum(line.startswith("Contact ") and "of GM0363 is unreachable" in line for line in lines) == 2
    assert main(["spool", str(tmp_path / "spool.sqlite"), "list"]) == 0
    out = capsys.readouterr().out
    assert "2 unreachable contact(s)" in out and f"{GONE}  of GM0363" in out
    assert main(["spool", str(tmp_path / "spool.sqlite"), "contacts", "--clear", GONE]) == 0
    assert list(ContactBook(spool.db).unreachable()) == [KEPT]


def dsn(recipient: str, digest_id: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464)."""
    return (
        "From: MAILER-DAEMON@mx.gm0363.example\r\n"
        "To: meldingen@ibd.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-b"\r\n'
        "\r\n"
        "--dsn-b\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.gm0363.example. Your message could not be delivered.\r\n"
        "\r\n--dsn-b\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.gm0363.example\r\n"
        "Arrival-Date: Mon, 1 Jun 2026 10:00:00 +0200 (CEST)\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown\r\n"
        "\r\n--dsn-b\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{digest_id}@ibd.example>\r\n"
        f"X-NSM-Digest-Id: {digest_id}\r\n"
        "Subject: [TLP:AMBER] [IBD] 1 kwetsbaar systeem gemeld voor Amsterdam\r\n"
        "\r\n--dsn-b--\r\n"
    ).encode("ascii")


def test_a_dsn_marks_its_contact_and_a_delay_or_other_mail_marks_nobody(spool, tmp_path, capsys):
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    with SmtpSink() as sink:
        assert deliver(spool, smtp(sink), now=1)["delivered"] == 1
        digest_id = sink.messages[0][2]["X-NSM-Digest-Id"]
    [bounce] = bounces.parse(dsn(GONE, digest_id))
    assert (bounce.recipient, bounce.status, bounce.digest_id, bounce.permanent) == (GONE, "5.1.1", digest_id, True)
    assert not bounces.parse(dsn(GONE, digest_id, action="delayed", status="4.4.1"))[0].permanent
    assert bounces.parse(b"Subject: Out of office\r\n\r\nI am away.\r\n") == []
    (tmp_path / "bounce.eml").write_bytes(dsn(GONE, digest_id))
    (tmp_path / "delay.eml").write_bytes(dsn(KEPT, digest_id, action="delayed", status="4.4.1"))
    spool_file = str(tmp_path / "spool.sqlite")
    assert main(["spool", spool_file, "bounces", str(tmp_path / "bounce.eml"), str(tmp_path / "delay.eml")]) == 0
    assert "1 contact(s) marked unreachable." in capsys.readouterr().out
    [row] = ContactBook(spool.db).rows()
    assert (row["address"], row["org_id"], row["source"], row["digest_id"]) == (GONE, "GM0363", "dsn", digest_id)
    assert "delivery status 5.1.1 (failed): 550 5.1.1" in row["reason"]


def test_the_delivery_round_reads_the_bounce_maildir_once(spool, tmp_path):
    spool.add(findings_of(event(1, [AMSTERDAM])), now=0)
    maildir = tmp_path / "bounces"
    folder = mailbox.Maildir(str(maildir), create=True)
    with SmtpSink() as sink:
        assert deliver(spool, smtp(sink), now=1)["delivered"] == 1
        digest_id = sink.messages[0][2]["X-NSM-Digest-Id"]
        folder.add(dsn(GONE, digest_id))
        spool.add(findings_of(event(2, [AMSTERDAM])), now=2)
        assert deliver(spool, smtp(sink), now=3, bounce_maildir=str(maildir))["delivered"] == 1
        assert [rcpt for _, rcpt, _ in sink.messages][-1] == [KEPT]
    assert list(ContactBook(spool.db).unreachable()) == [GONE]
    assert [m.get_subdir() for m in mailbox.Maildir(str(maildir), create=False)] == ["cur"]
    ContactBook(spool.db).clear(GONE)
    assert deliver(spool, smtp(SmtpSink()), now=4, bounce_maildir=str(maildir))["formed"] == 0
    assert ContactBook(spool.db).rows() == []  # read once: not marked again


def test_stale_lists_organisations_whose_contacts_failed_or_who_answered_nothing(spool, tmp_path, capsys):
    spool_file = tmp_path / "spool.sqlite"
    day = 86400.0
    ledger = Ledger(sqlite_url(spool_file), name="ibd-mail")
    utrecht = organisation("GM0344", "Utrecht")
    groningen = organisation("GM0014", "Groningen")
    from intelmq_nsm.digest.notify import accept

    for n, org in enumerate([AMSTERDAM, utrecht, groningen]):
        accept(event(n, [org]), spool, ledger, now=0)
    with SmtpSink() as sink:
        Deliverer(spool, smtp(sink), LOG, max_age=0, ledger=ledger).run_once(now=1)
    # Groningen answered on day 50; Amsterdam's first contact bounced on day 10; Utrecht is silent.
    [groningen_finding] = [r for r in ledger.records(org_id="GM0014")]
    ledger.record_answer(groningen_finding["finding_id"], "GM0014", "fixed-reported", "owner", now=50 * day)
    ContactBook(spool.db).mark(GONE, "RCPT answered 550 5.1.1 User unknown", "smtp", "GM0363", now=10 * day)
    found = stale(ContactBook(spool.db), ledger, days=30, now=60 * day)
    assert [(o["org_id"], bool(o["unreachable"]), bool(o["silent"])) for o in found] == [
        ("GM0344", False, True),
        ("GM0363", True, True),
    ]
    assert stale(ContactBook(spool.db), ledger, days=30, now=20 * day) == []  # nothing is 30 days old yet
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"organisations:\n  - {{id: GM0363, contacts: [{GONE}, {KEPT}]}}\n")
    args = ["constituency", "stale", str(spool_file), "--days", "30", "-d", str(registry), "--json"]
    # The command reads the clock: today everything above is decades old, and stale.
    assert main(args) == 1
    listed = {o["org_id"]: o for o in json.loads(capsys.readouterr().out)}
    assert sorted(listed) == ["GM0344", "GM0363"]
    assert listed["GM0363"]["reachable"] == [KEPT] and listed["GM0363"]["unreachable"][0]["address"] == GONE
    assert listed["GM0344"]["silent"]["findings"] == 1 and listed["GM0344"]["silent"]["last_answer"] is None
    assert main(args[:-1]) == 1
    out = capsys.readouterr().out
    assert f"unreachable since 1970-01-11T00:00:00+00:00: {GONE}" in out
    assert "2 organisation(s) with contacts that failed or answered nothing for 30 days." in out
    ledger.close()
