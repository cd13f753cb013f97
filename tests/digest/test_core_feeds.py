"""Abuse information of every kind, as IntelMQ's own core parsers make it from the samples
IntelMQ ships (Shadowserver, Shodan, n6, generic CSV, Team Cymru, Spamhaus CERT, Microsoft
CTIP, Zone-H): routed by the constituency expert, identified (one finding per infected host
whatever its client ports), worded per kind, followed up round after round."""

import re

import pytest

from intelmq_nsm import abuse_kinds
from intelmq_nsm.digest import render
from intelmq_nsm.digest.event_findings import FindingError, findings_of, identify, kind_of_abuse
from intelmq_nsm.digest.ledger import sqlite_url
from intelmq_nsm.digest.ledger.stats import stats
from intelmq_nsm.digest.spool import Digest
from intelmq_nsm.testbed.sample_events import organisation
from tests.core_feeds import in_documentation_space, names_a_host, parsed, reencoded, route, run_parser
from tests.digest.mechanism import Output

DAY = 86400.0
T0 = 1_780_000_000.0
AMSTERDAM = organisation("GM0363", "Amsterdam")


@pytest.fixture(scope="module")
def samples():
    """``(parser, event)`` of every sample event, in documentation space."""
    return in_documentation_space(parsed())


@pytest.fixture(scope="module")
def routed(samples):
    return route([event for _, event in samples])


@pytest.fixture
def output(tmp_path):
    path = tmp_path / "ibd-digest-mail.spool.sqlite"
    out = Output(tmp_path, sqlite_url(path), spool_file=path, formats=("json", "txt"), name="ibd-digest-mail")
    yield out
    out.close()


def text_of(output, digest: dict) -> str:
    return (output.directory / f"{digest['id']}.txt").read_text(encoding="utf-8")


def test_the_samples_hold_every_kind_of_abuse(samples):
    kinds = {kind_of_abuse(event) for _, event in samples}
    assert kinds == set(abuse_kinds.KINDS)
    assert {name for name, _ in samples} == {
        "shadowserver", "shodan", "n6", "generic", "cymru", "spamhaus", "microsoft", "zoneh"
    }  # fmt: skip


def test_every_sample_event_that_names_a_host_is_routed_and_delivered(samples, routed, output):
    hosts = [event for _, event in samples if names_a_host(event)]
    assert len(hosts) == len(samples) - 1  # n6's report without an address
    assert len(routed["ibd"]) == len(hosts) and routed["surf"] == []
    dumped = []
    for event in routed["ibd"]:
        try:
            output.take(event, T0)
        except FindingError as exc:
            dumped.append(exc)
    assert dumped == []
    digests = output.round([], T0)
    delivered = {(d["organisation"]["id"], f["finding_id"]) for d in digests for f in d["findings"]}
    records = output.ledger.records()
    assert delivered == {(r["org_id"], r["finding_id"]) for r in records}
    assert {r["abuse"] for r in records} == set(abuse_kinds.KINDS)
    # The events of one report about one finding are one finding, one observation.
    assert len(records) < len(routed["ibd"]) and {r["times_seen"] for r in records} == {1}
    # The operators' and researchers' figures per kind of abuse.
    [ibd] = stats(output.ledger)["constituencies"]
    assert set(ibd["by_kind"]) == set(abuse_kinds.KINDS)
    assert sum(kind["findings"] for kind in ibd["by_kind"].values()) == ibd["findings"] == len(records)


def test_an_event_that_says_neither_where_nor_what_is_refused_naming_what_can_be_set(samples):
    [nowhere] = [event for _, event in samples if not names_a_host(event)]
    with pytest.raises(FindingError) as raised:
        identify(nowhere)
    assert raised.value.field == "source.ip"
    assert "source.ip, source.fqdn or source.url" in raised.value.reason
    with pytest.raises(FindingError) as raised:
        identify({"source.ip": "192.0.2.1"})
    assert raised.value.field == "classification.type"
    for field in ("classification.type", "classification.identifier", "malware.name", "extra.nsm.case_id"):
        assert field in raised.value.reason
    # extra.nsm.case_id is no longer what a feed's infected host is asked for.
    infected = {"source.ip": "192.0.2.1", "classification.type": "infected-system", "malware.name": "conficker"}
    assert identify(infected).startswith("nf2-")


def n6_sinkhole(port: int, observed: str) -> list:
    """n6's sinkhole sample (an infected host connecting from ``port``) as a report made at ``observed``."""
    from intelmq.tests.bots.parsers.n6 import test_parser

    def moved(data):
        return {**data, "sport": port, "time": observed.replace("+00:00", "Z")}

    report = {**reencoded(test_parser.EXAMPLE_REPORT, moved), "time.observation": observed}
    # The parser makes a second event of it that names no host: it never leaves the expert's _default.
    return [e for e in run_parser("n6.test_parser", "TestN6StompParserBot", [report], {}) if names_a_host(e)]


def ctip(port_offset: int, observed: str) -> list:
    """Microsoft CTIP's sample (five botnet connections of one host) from other client ports."""
    from intelmq.tests.bots.parsers.microsoft import test_parser_ctip

    def moved(data):
        return [{**item, "networksourceport": item["networksourceport"] + port_offset} for item in data]

    report = {**reencoded(test_parser_ctip.EXAMPLE_REPORT, moved), "time.observation": observed}
    return run_parser("microsoft.test_parser_ctip", "TestMicrosoftCTIPParserBot", [report], {})


def test_an_infected_host_is_one_finding_whatever_its_client_ports(output):
    days = [f"2026-06-{day:02d}T06:00:00+00:00" for day in (1, 2, 9)]
    rounds = [
        n6_sinkhole(port, day) + ctip(offset, day) for port, offset, day in zip((22308, 51234, 40001), (0, 7, 13), days)
    ]
    ports = {e["source.port"] for events in rounds for e in events}
    assert {22308, 51234, 40001, 1204, 1211} <= ports
    mapped = in_documentation_space([("feed", e) for events in rounds for e in events])
    per_round = [[e for _, e in mapped[i * 6 : i * 6 + 6]] for i in range(3)]
    ids = [{identify(e) for e in events} for events in per_round]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 6  # sality, and CTIP's five botnets
    assert all(i.startswith("nf2-") for i in ids[0])

    first = output.round(route(per_round[0])["ibd"], T0)
    assert sorted(f["kind"] for d in first for f in d["findings"]) == ["new"] * 6
    assert output.round(route(per_round[1])["ibd"], T0 + DAY) == []  # seen again: no second "new"
    third = output.round(route(per_round[2])["ibd"], T0 + 8 * DAY)
    assert sorted(f["kind"] for d in third for f in d["findings"]) == ["reminder"] * 6
    assert {f["times_seen"] for d in third for f in d["findings"]} == {3}
    text = "\n".join(text_of(output, d) for d in third)
    assert "######## Nog steeds gezien ########" in text and "Nog steeds kwetsbaar" not in text
    assert "BESMET OF GEHACKT (" in text and "Onderzoekers hebben" not in text
    # The client port is told as such, never as the host's service.
    assert "bronpoort: " in text and not re.search(r"\d+\.\d+\.\d+\.\d+:(22308|51234|40001)", text)


def test_each_kind_has_its_own_words_and_each_finding_its_own_context(samples, routed, output):
    for event in routed["ibd"]:
        output.take(event, T0)
    digests = output.round([], T0)
    texts = {d["organisation"]["id"]: text_of(output, d) for d in digests}
    documents = {d["organisation"]["id"]: d for d in digests}
    words = {
        "compromised": "BESMET OF GEHACKT",
        "misbehaving": "MISBRUIK VANAF UW SYSTEEM",
        "vulnerable": "KWETSBAAR",
        "exposed": "BLOOTGESTELD",
    }
    seen = set()
    for org, document in documents.items():
        text = texts[org]
        by_kind = document["counts_by_kind_of_abuse"]
        assert sum(by_kind.values()) == document["counts"]["vulnerable"] == len(document["findings"])
        for kind, n in by_kind.items():
            assert f"{words[kind]} ({n})" in text
            seen.add(kind)
        if set(by_kind) != {"vulnerable"}:
            assert "Onderzoekers hebben" not in text and "Wij hebben meldingen over" in text
        for finding in document["findings"]:
            assert finding["kind_of_abuse"] in by_kind
            # Its own description (event_description.text) is in the text people read.
            if finding["description"]:
                assert finding["description"] in text
    assert seen == set(abuse_kinds.KINDS)
    # A subject counts by kind.
    mixed = next(d for d in digests if len(d["counts_by_kind_of_abuse"]) > 1)
    assert re.search(r"\d+ systemen gemeld voor .*: \d+ ", render.subject(Digest(**digest_fields(mixed)), "nl"))


def digest_fields(document: dict) -> dict:
    return {
        "id": document["id"],
        "organisation": document["organisation"],
        "constituency": document["constituency"],
        "created": 0.0,
        "findings": document["findings"],
    }


def rows_for(events, org=AMSTERDAM) -> list:
    rows = []
    for event in events:
        event = {**event, "constituency": "ibd", "extra.nsm.organisations": [org]}
        rows += [f.row for f in findings_of(event)]
    return rows


def finding_block(text: str, needle: str) -> str:
    """The lines of the finding whose first line holds ``needle``, up to the next finding."""
    start = text.index(needle)
    start = text.rindex("\n- ", 0, start) + 1
    end = text.find("\n- ", start + 1)
    return text[start : end if end != -1 else len(text)]


@pytest.mark.parametrize("feeds", ["as sent", "without feed names"])
def test_no_finding_shows_another_findings_link_or_advice(samples, feeds):
    """A Spamhaus finding's lookup link and description stand with it, never above another
    finding of its group (another spam source of the same feed) nor above a Shodan finding
    of the same digest, also when none has a case or a feed name to group by."""
    spamhaus = next(e for name, e in samples if name == "spamhaus" and e.get("event_description.url"))
    other_spam = next(
        e for name, e in samples if name == "spamhaus" and e is not spamhaus and kind_of_abuse(e) == "misbehaving"
    )
    shodan = next(e for name, e in samples if name == "shodan")
    events = [other_spam, spamhaus, shodan]
    if feeds == "without feed names":
        events = [{k: v for k, v in e.items() if not k.startswith("feed.")} for e in events]
    digest = Digest(id="d" * 64, organisation=AMSTERDAM, constituency="ibd", created=0.0, findings=rows_for(events))
    for language, label in (("nl", "meer informatie: "), ("en", "more information: ")):
        text = render.to_text(digest, language)
        url = spamhaus["event_description.url"]
        assert text.count(url) == 1
        assert f"{label}{url}" in finding_block(text, spamhaus["source.ip"])
        for other in (other_spam, shodan):
            assert url not in finding_block(text, other["source.ip"])
            assert spamhaus["event_description.text"] not in finding_block(text, other["source.ip"])
        assert spamhaus["event_description.text"] in finding_block(text, spamhaus["source.ip"])
        # No group header speaks for findings whose context differs.
        assert not re.search(r"^(Meer informatie|More information|Advies|Recommendation|Omschrijving): ", text, re.M)


def test_a_group_of_findings_that_share_their_context_shows_it_once_above_them(samples):
    defacements = [e for name, e in samples if name == "zoneh"]
    digest = Digest(
        id="d" * 64, organisation=AMSTERDAM, constituency="ibd", created=0.0, findings=rows_for(defacements)
    )
    text = render.to_text(digest, "nl")
    assert "== Gemeld door ZoneH Defacements ==" in text
    assert text.count("Omschrijving: defacement") == 1 and "  omschrijving:" not in text


def test_a_compromised_finding_no_longer_seen_is_not_called_fixed_and_comes_back_as_seen_again(output):
    output.ledger.quiet_after = 14 * DAY
    day = "2026-06-01T06:00:00+00:00"
    [event] = [e for _, e in in_documentation_space([("n6", e) for e in n6_sinkhole(22308, day)])]
    assert len(output.round(route([event])["ibd"], T0)) == 1
    [record] = output.ledger.records()
    assert record["abuse"] == "compromised" and record["state"] == "notified"
    # Two weeks without a report: no longer seen; never a verified fix, no digest about it.
    assert output.ledger.quiet(now=T0 + 13 * DAY) == []
    [quiet] = output.ledger.quiet(now=T0 + 15 * DAY)
    assert quiet["state"] == "no-longer-seen"
    assert output.ledger.quiet(now=T0 + 16 * DAY) == []  # once
    assert output.round([], T0 + 15 * DAY) == []
    history = output.ledger.history_of(record["finding_id"])[0]["history"]
    assert history[-1]["state"] == "no-longer-seen" and "No longer seen for 14 days" in history[-1]["note"]
    [ibd] = stats(output.ledger)["constituencies"]
    assert (ibd["fixed_verified"], ibd["no_longer_seen"], ibd["open"]) == (0, 1, 0)
    assert ibd["by_kind"]["compromised"]["no_longer_seen"] == 1
    # Seen again: reopened, in words for what is seen rather than scanned.
    later = in_documentation_space([("n6", e) for e in n6_sinkhole(40100, "2026-06-20T06:00:00+00:00")])
    [again] = output.round(route([later[0][1]])["ibd"], T0 + 20 * DAY)
    assert [f["kind"] for f in again["findings"]] == ["reopened"]
    assert "######## Opnieuw gezien ########" in text_of(output, again)
    # A vulnerable finding never goes quiet: only a rescan says it is fixed.
    vulnerable = next(r for r in output.ledger.records() if r["abuse"] == "compromised")
    assert vulnerable["state"] == "reopened"
