"""Each organisation its own way: the registry's language, channel, pace and OpenPGP key,
carried in ``extra.nsm.organisations`` to the digest output, whose parameters are the defaults."""

import datetime
import logging
from datetime import date

import pytest

from intelmq_nsm.constituency import RegistryError, load_registry
from intelmq_nsm.digest import channels, grouping
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.event_findings import FindingError, findings_of
from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.sample_events import event, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.harness import LOOPBACK

LOG = logging.getLogger("tests.digest.preferences")
TODAY = date(2026, 6, 1)
AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
REGISTRY = """
organisations:
  - id: GM0363
    contacts: [security@gm0363.example]
    language: en
    channel: rest
    pace: {daily_at: "08:00", immediate: critical}
    openpgp: {fingerprint: "0123 4567 89ab cdef 0123 4567 89AB CDEF 0123 4567", key_file: keys/gm0363.asc}
  - {id: GM0344, contacts: [security@gm0344.example]}
assets:
  - {network: 192.0.2.0/24, organisation: GM0363}
  - {network: 198.51.100.0/24, organisation: GM0344}
"""


def test_the_registry_carries_an_organisations_wishes_into_the_events_organisations(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "gm0363.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    registry = load_registry([tmp_path / "registry.yaml"], today=TODAY)
    [route] = registry.index.decide([("source.ip", "192.0.2.7")], day=TODAY)
    [amsterdam] = route.organisation_dicts()
    assert amsterdam == {
        "id": "GM0363", "name": "Amsterdam", "kind": "municipality", "contacts": ["security@gm0363.example"],
        "role": "network", "language": "en", "channel": "rest",
        "pace": {"daily_at": "08:00", "timezone": "Europe/Amsterdam", "immediate": "critical"},
        "openpgp": {
            "fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
            "key_file": str((tmp_path / "keys" / "gm0363.asc").resolve()),
        },
    }  # fmt: skip
    [route] = registry.index.decide([("source.ip", "198.51.100.7")], day=TODAY)
    assert set(route.organisation_dicts()[0]) == {
        "id",
        "name",
        "kind",
        "contacts",
        "role",
    }  # nothing set, nothing added
    # The digest output reads them by the same rules.
    [finding] = findings_of(event(1, [amsterdam]))
    assert finding.organisation["language"] == "en" and finding.organisation["pace"]["daily_at"] == "08:00"


@pytest.mark.parametrize(
    ("entry", "field", "reason"),
    [
        ("language: fr", "language", "'fr' is not one of nl, en"),
        ("channel: fax", "channel", "'fax' is not one of mail, rest, file"),
        ("pace: {daily_at: '25:00'}", "pace.daily_at", "'25:00' is not a time of day HH:MM"),
        ("pace: {max_age: 60, daily_at: '08:00'}", "pace", "give exactly one of max_age"),
        ("pace: {daily_at: '08:00', timezone: Mars/Olympus}", "pace.timezone", "'Mars/Olympus' is not a time zone"),
        ("pace: {max_age: 60, immediate: urgent}", "pace.immediate", "'urgent' is not one of info, low"),
        ("openpgp: {fingerprint: ABC, key_file: k.asc}", "openpgp.fingerprint", "is not a 40-digit fingerprint"),
        ("openpgp: {fingerprint: " + "A" * 40 + ", key_file: none.asc}", "openpgp.key_file", "is not a readable file"),
    ],
)
def test_a_wrong_wish_is_an_error_naming_file_line_and_field(tmp_path, entry, field, reason):
    path = tmp_path / "registry.yaml"
    path.write_text(f"organisations:\n  - id: GM0363\n    {entry}\n")
    with pytest.raises(RegistryError) as caught:
        load_registry([path], today=TODAY)
    [issue] = [i for i in caught.value.issues if i.level == "error"]
    assert (issue.file, issue.location, issue.field) == (str(path), "line 2", field)
    assert reason in issue.reason


def test_an_event_with_a_wish_the_registry_would_refuse_is_dumped_naming_it():
    with pytest.raises(FindingError, match="organisation 'GM0363': language: 'fr' is not one of nl, en"):
        findings_of(event(1, [dict(AMSTERDAM, language="fr")]))


def deliver(spool, channel, now, **settings):
    settings = {"max_events": 100, "max_age": 3600, **settings}
    return Deliverer(spool, channel, LOG, **settings).run_once(now=now)


def test_an_english_organisation_gets_english_mail_from_a_dutch_output(spool):
    spool.add(findings_of(event(1, [dict(AMSTERDAM, language="en")])), now=0)
    spool.add(findings_of(event(2, [UTRECHT])), now=0)
    with SmtpSink() as sink:
        smtp = channels.SmtpChannel(LOOPBACK, sink.port, "meldingen@ibd.example", security="none", language="nl")
        assert deliver(spool, smtp, now=1, max_age=0)["delivered"] == 2
        mails = {tuple(rcpt): message for _, rcpt, message in sink.messages}
    english, dutch = mails[("security@gm0363.example",)], mails[("security@gm0344.example",)]
    assert "1 vulnerable system reported for Amsterdam" in english["Subject"]
    assert "\nDear Amsterdam," in english.get_body(("plain",)).get_content()
    assert "1 kwetsbaar systeem gemeld voor Utrecht" in dutch["Subject"]


def _at(day: str, clock: str) -> float:
    """A moment in Amsterdam's time as seconds since the epoch."""
    return datetime.datetime.fromisoformat(f"{day}T{clock}+02:00").timestamp()


def test_a_daily_digest_goes_at_its_hour_and_critical_findings_go_at_once(spool):
    daily = dict(AMSTERDAM, pace={"daily_at": "08:00", "timezone": "Europe/Amsterdam", "immediate": "critical"})
    spool.add(findings_of(event(1, [daily])), now=_at("2026-06-01", "10:00"))
    spool.add(findings_of(event(2, [daily])), now=_at("2026-06-01", "23:00"))
    spool.add(findings_of(event(3, [daily], severity="critical")), now=_at("2026-06-01", "23:30"))
    # The output's own max_age (an hour) would have sent the first at 11:00; the organisation
    # wants one digest a day at 08:00, and critical findings at once.
    assert spool.form_digests(100, 3600, now=_at("2026-06-01", "23:31")) != []
    [urgent] = spool.digests()
    assert urgent["event_count"] == 1 and spool.load(urgent["id"]).findings[0]["severity"] == "critical"
    assert spool.form_digests(100, 3600, now=_at("2026-06-02", "07:59")) == []
    [daily_digest] = spool.form_digests(100, 3600, now=_at("2026-06-02", "08:00"))
    assert len(spool.load(daily_digest).findings) == 2


def test_next_daily_follows_the_local_clock_over_summer_time():
    # 27 March 2027 08:00 CET is 07:00 UTC; the next day, in summer time, 06:00 UTC.
    after = datetime.datetime(2027, 3, 27, 7, 30, tzinfo=datetime.timezone.utc).timestamp()
    moment = grouping.next_daily(after, "08:00", "Europe/Amsterdam")
    assert datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat() == "2027-03-28T06:00:00+00:00"


def test_an_organisations_max_age_replaces_the_outputs(spool):
    spool.add(findings_of(event(1, [dict(AMSTERDAM, pace={"max_age": 60})])), now=0)
    spool.add(findings_of(event(2, [UTRECHT])), now=0)
    assert len(spool.form_digests(100, 3600, now=60)) == 1
    assert [d["org_id"] for d in spool.digests()] == ["GM0363"]


def test_the_organisations_channel_is_picked_and_one_the_output_lacks_fails_visibly(spool, tmp_path):
    spool.add(findings_of(event(1, [dict(AMSTERDAM, channel="rest")])), now=0)
    spool.add(findings_of(event(2, [UTRECHT])), now=0)
    spool.add(findings_of(event(3, [organisation("GM0014", "Groningen") | {"channel": "mail"}])), now=0)
    with Receiver() as receiver:
        chosen = channels.Channels(
            {"file": channels.FileChannel(tmp_path / "out"), "rest": channels.RestChannel(receiver.url, "s3cret")},
            default="file",
        )
        result = deliver(spool, chosen, now=1, max_age=0)
        assert result == {"formed": 3, "delivered": 2, "retry": 0, "failed": 1}
        assert [doc["organisation"]["id"] for doc in receiver.accepted] == ["GM0363"]
    assert [p.stem for p in (tmp_path / "out").glob("*.json")] == [
        d["id"] for d in spool.digests("delivered") if d["org_id"] == "GM0344"
    ]
    [failed] = spool.digests("failed")
    assert failed["org_id"] == "GM0014"
    assert "asks for its digests by mail, for which this output has no parameters" in failed["last_error"]
    # An archive follows no organisation's wish: everything goes its one way.
    archive = channels.Channels(
        {"file": channels.FileChannel(tmp_path / "archive")}, "file", follow_organisations=False
    )
    assert spool.retry(failed["id"], now=2)
    assert deliver(spool, archive, now=2)["delivered"] == 1


def test_the_documented_schema_takes_the_wishes_and_refuses_a_wrong_pace():
    import json
    from pathlib import Path

    import jsonschema
    import yaml

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "harmonization" / "constituency-db.schema.json").read_text()
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(REGISTRY), schema)
    for pace in ({"max_age": 60, "daily_at": "08:00"}, {"daily_at": "8 uur"}, {"max_age": 60, "timezone": "UTC"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"organisations": [{"id": "GM0363", "pace": pace}]}, schema)
