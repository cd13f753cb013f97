"""The example NSM→IBD runtime, whole: intake → parser → deduplicator → constituency → digests.

These run the example as ``intelmq-nsm demo`` does (real redis-server, real intelmqctl,
real HTTP submissions, a real SMTP server) and check who received what, finding by finding.
"""

import csv
import io
import re
from pathlib import Path

import pytest
import yaml

from intelmq_nsm import tlp
from intelmq_nsm.demo import Demo, Summary, finding_address
from intelmq_nsm.testbed.layout import install_example_files, localise_runtime
from intelmq_nsm.testbed.pipeline import Pipeline
from intelmq_nsm.testbed.signing import make_signing_keys
from intelmq_nsm.testbed.spools import spool_digests
from tests.digest.gpg import Home, signed_and_signature
from tests.harness import csv_attachment

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"
#: The example's stand-in for the CERT's key: an operator puts theirs there, the demo a fresh one.
EXAMPLE_FINGERPRINT = "0" * 40

#: Who owns what in runtime-examples/nsm-ibd/registry/registry.yaml, worked out by hand
#: from the registry and the three sample reports.
EXPECTED = {
    ("GM0014", "ibd"): {"192.0.2.35", "https://portal.groningen.example:8443/global-protect/login.esp"},
    ("GM0080", "ibd"): {"https://remote.leeuwarden.example:443/oauth/idp/.well-known/openid-configuration"},
    ("GM0106", "ibd"): {"192.0.2.170"},
    ("GM0150", "ibd"): {"192.0.2.236"},
    ("GM0344", "ibd"): {"[2001:db8:4::443]:443"},
    # vpn.amsterdam.example by its domain; gw.weesp.example: Weesp's domain passed to Amsterdam.
    ("GM0363", "ibd"): {"vpn.amsterdam.example:443", "gw.weesp.example:443"},
    ("GM0505", "ibd"): {"198.51.100.5:443"},  # Dordrecht's /28 beats the shared-service /26
    ("GM0518", "ibd"): {"192.0.2.19:4443", "198.51.100.70:443"},
    ("GM0599", "ibd"): {
        "192.0.2.10:443",
        "2001:db8:2::25",
        "https://adc.rotterdam.example:443/oauth/idp/.well-known/openid-configuration",
    },
    # 198.51.100.70 belongs to Den Haag and its shared-service organisation: both are told.
    ("SSC-DEN-HAAG-REGIO", "ibd"): {"198.51.100.70:443"},
    ("SSC-DRECHTSTEDEN", "ibd"): {
        "198.51.100.40:443",
        "https://adc.drechtsteden.example:443/oauth/idp/.well-known/openid-configuration",
    },
    ("SURF-UNI-VOORBEELD", "surf"): {"203.0.113.20:443", "203.0.113.99"},
}
#: The second source, Shadowserver's reports (feeds/): Almere's infected host (one finding
#: over three connections from three client ports), its brute-forcer and its open RDP;
#: Zeewolde's infected host.
EXPECTED_FEEDS = {
    ("GM0034", "ibd"): {"192.0.2.41", "192.0.2.42", "192.0.2.43:3389"},
    ("GM0050", "ibd"): {"192.0.2.66"},
}
EXPECTED_FEEDS_BY_KIND = {
    "GM0034": {"compromised": ["192.0.2.41"], "misbehaving": ["192.0.2.42"], "exposed": ["192.0.2.43:3389"]},
    "GM0050": {"compromised": ["192.0.2.66"]},
}
#: What the demo delivers in round one: the researchers' findings and the feed's.
EXPECTED_DEMO = {**EXPECTED, **EXPECTED_FEEDS}
#: An excluded address, an excluded domain, and an address nobody claims.
EXPECTED_DEFAULT = {
    "192.0.2.5:443",
    "203.0.113.200:443",
    "https://hosting.rotterdam.example:443/oauth/idp/.well-known/openid-configuration",
}
#: Round two: the rescan a week later (reports/rescan/), by kind. Findings the rescan did
#: not see get nothing; 192.0.2.10 was reported fixed by Rotterdam between the rounds.
EXPECTED_ROUND_TWO = {
    ("GM0014", "ibd"): {"reminder": {"https://portal.groningen.example:8443/global-protect/login.esp"}},
    ("GM0080", "ibd"): {
        "reminder": {"https://remote.leeuwarden.example:443/oauth/idp/.well-known/openid-configuration"}
    },
    ("GM0344", "ibd"): {"fixed": {"[2001:db8:4::443]:443"}},
    ("GM0363", "ibd"): {"reminder": {"vpn.amsterdam.example:443"}},
    # The infected host, seen again by the feed from two new client ports: a reminder, not a
    # second "new". Zeewolde's was not in the feed's next report: nothing.
    ("GM0034", "ibd"): {"reminder": {"192.0.2.41"}},
    ("GM0505", "ibd"): {"fixed": {"198.51.100.5:443"}},
    ("GM0518", "ibd"): {"fixed": {"192.0.2.19:4443"}},
    ("GM0599", "ibd"): {
        "reopened": {"192.0.2.10:443"},
        "fixed": {"https://adc.rotterdam.example:443/oauth/idp/.well-known/openid-configuration"},
    },
    ("SSC-DRECHTSTEDEN", "ibd"): {
        "reminder": {
            "198.51.100.40:443",
            "https://adc.drechtsteden.example:443/oauth/idp/.well-known/openid-configuration",
        }
    },
}
CONTACTS = {
    "GM0363": "ciso@amsterdam.example",
    "GM0599": "security@rotterdam.example",
    "GM0518": "security@s-gravenhage.example",
    "GM0505": "security@dordrecht.example",
    "SSC-DRECHTSTEDEN": "soc@drechtsteden.example",
    "SSC-DEN-HAAG-REGIO": "soc@haaglanden-ict.example",
}


def test_example_runtime_passes_intelmqctl_check_without_errors_or_warnings(tmp_path, redis_server):
    runtime = yaml.safe_load((EXAMPLE / "runtime.yaml").read_text(encoding="utf-8"))
    install_example_files(EXAMPLE, tmp_path)
    runtime = localise_runtime(runtime, tmp_path, {})
    keys = make_signing_keys(runtime, tmp_path)  # the mail output signs: a key in its home, as the demo makes
    try:
        pipeline = Pipeline(tmp_path / "intelmq", redis_server, runtime).setup()
        result = pipeline.ctl("check")
        lines = (result.stdout + result.stderr).splitlines()
        assert result.returncode == 0, lines
        assert [line for line in lines if "error" in line.lower() or "warning" in line.lower()] == []
        check = pipeline.check()
        assert check["status"] == "success"
        assert check["lines"] and {level for level, _ in check["lines"]} == {"info"}
    finally:
        for key in keys:
            key.close()


def test_the_example_signs_its_mail_with_a_key_an_operator_must_make(tmp_path, redis_server):
    """As written, the example names a key no home holds: intelmqctl check says so, as an
    error, and nothing would be sent unsigned; the key is never part of the example."""
    runtime = yaml.safe_load((EXAMPLE / "runtime.yaml").read_text(encoding="utf-8"))
    parameters = runtime["ibd-digest-mail"]["parameters"]
    assert parameters["openpgp_fingerprint"] == EXAMPLE_FINGERPRINT
    assert set(parameters) >= {"openpgp_home", "openpgp_passphrase_file"}
    assert not parameters.get("openpgp_allow_unsigned")
    assert not any(path.suffix in (".gpg", ".kbx", ".key") for path in EXAMPLE.rglob("*"))
    assert "PRIVATE KEY" not in "".join(p.read_text(errors="replace") for p in EXAMPLE.rglob("*") if p.is_file())
    install_example_files(EXAMPLE, tmp_path)
    runtime = localise_runtime(runtime, tmp_path, {})
    Path(runtime["ibd-digest-mail"]["parameters"]["openpgp_home"]).mkdir(parents=True, mode=0o700)
    pipeline = Pipeline(tmp_path / "intelmq", redis_server, runtime).setup()
    errors = [message for level, message in pipeline.check()["lines"] if level == "error"]
    assert any(
        f"The signing key {parameters['openpgp_fingerprint']} is not in the GnuPG home" in message
        and "no digest is sent until it can" in message
        for message in errors
    ), errors


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    demo = Demo(EXAMPLE, workdir / "run", progress=lambda message: None, timeout=240, charts=workdir / "charts")
    summary = demo.run()
    return demo, summary


def test_every_organisation_gets_exactly_its_own_findings(demo_run):
    _, summary = demo_run
    delivered = {(row["organisation"], row["constituency"]): set(row["findings"]) for row in summary.rows}
    assert delivered == EXPECTED_DEMO
    assert set(summary.default_findings) == EXPECTED_DEFAULT
    assert all(row["failed"] == [] for row in summary.rows)
    assert summary.dumped == {}


def test_the_second_source_s_findings_are_shown_by_kind_in_the_summary_and_its_json(demo_run):
    _, summary = demo_run
    assert summary.feeds == [
        "2026-11-02-event4_honeypot_brute_force-nsm-example.csv",
        "2026-11-02-event4_sinkhole_http-nsm-example.csv",
        "2026-11-02-scan_rdp-nsm-example.csv",
    ]
    rows = {row["organisation"]: row for row in summary.rows}
    for organisation, by_kind in EXPECTED_FEEDS_BY_KIND.items():
        assert rows[organisation]["abuse"] == by_kind
        assert rows[organisation]["sources"] == {"Shadowserver": by_kind}
    researchers_only = [row for row in summary.rows if row["organisation"] not in EXPECTED_FEEDS_BY_KIND]
    assert {kind for row in researchers_only for kind in row["abuse"]} == {"vulnerable"}
    text = summary.render()
    assert "GM0034 Almere" in text and "compromised 1, misbehaving 1, exposed 1" in text
    assert "GM0034 Almere, compromised: 192.0.2.41" in text
    assert re.search(r"^Shadowserver +2 +1 +0 +1$", text, re.M)
    assert re.search(r"^DIVD +0 +0 +\d+ +0$", text, re.M)
    document = summary.as_json()
    almere = document["rounds"][0]["organisations"]["GM0034"]
    assert almere["kinds_of_abuse"] == {
        "compromised": ["192.0.2.41"],
        "misbehaving": ["192.0.2.42"],
        "vulnerable": [],
        "exposed": ["192.0.2.43:3389"],
    }
    assert almere["sources"] == {"Shadowserver": EXPECTED_FEEDS_BY_KIND["GM0034"]}
    assert document["rounds"][0]["feeds"] == summary.feeds
    # Round two: the infected host seen again is a reminder, in the words for what is seen.
    two = document["rounds"][1]["organisations"]["GM0034"]
    assert two["kinds"]["reminder"] == ["192.0.2.41"] and two["kinds"]["new"] == []
    assert "GM0034 Almere, still seen by the feed: 192.0.2.41 (a reminder)" in summary.round_two.render()


def test_one_digest_tells_the_three_kinds_of_the_feed_in_their_own_words(demo_run):
    demo, summary = demo_run
    spool = demo.workdir / "var" / "lib" / "bots" / "ibd-digest-mail" / "spool.sqlite"
    [(_, digest)] = [
        (s, d)
        for s, d in spool_digests(spool)
        if d.organisation["id"] == "GM0034" and d.id in rows_digests(summary, "GM0034")
    ]
    from intelmq_nsm.digest import render

    text = render.to_text(digest, "nl")
    for title in ("BESMET OF GEHACKT (1)", "MISBRUIK VANAF UW SYSTEEM (1)", "BLOOTGESTELD (1)"):
        assert title in text
    assert "Wij hebben meldingen over 3 systemen die bij uw organisatie (GM0034) horen:" in text
    assert "Onderzoekers hebben" not in text
    assert "bronpoort: 49152" in text and "192.0.2.41:49152" not in text
    assert "== Gemeld door Shadowserver / Sinkhole-HTTP-Events ==" in text
    [finding] = [f for f in digest.findings if f["kind_of_abuse"] == "compromised"]
    assert finding["times_seen"] == 1  # three events of one report: one observation
    assert render.subject(digest, "nl").startswith(
        "[TLP:AMBER] [IBD] 3 systemen gemeld voor Almere: 1 besmet of gehackt, 1 misbruik, 1 blootgesteld"
    )


def rows_digests(summary, organisation: str) -> set:
    return {d for row in summary.rows if row["organisation"] == organisation for d in row["digests"]}


def test_ibd_digests_go_by_mail_and_to_the_archive(demo_run):
    _, summary = demo_run
    for row in summary.rows:
        expected = {"file", "smtp"} if row["constituency"] == "ibd" else {"file"}
        assert set(row["channels"]) == expected, row
    assert summary.mails == len([row for row in summary.rows if row["constituency"] == "ibd"])


def test_each_mail_goes_to_its_organisation_and_holds_only_its_findings(demo_run):
    demo, summary = demo_run
    spool = demo.workdir / "var" / "lib" / "bots" / "ibd-digest-mail" / "spool.sqlite"
    digests = {digest.id: digest for _, digest in spool_digests(spool)}
    assert len(demo.chain.sink.messages) == len(digests)
    first_round = {d for row in summary.rows for d in row["digests"]}
    for _, recipients, message in demo.chain.sink.messages:
        digest = digests[message["X-NSM-Digest-Id"]]
        organisation = digest.organisation["id"]
        if organisation in CONTACTS:
            assert recipients == [CONTACTS[organisation]]
        by_kind = {}
        for row in csv.DictReader(io.StringIO(csv_attachment(message))):
            by_kind.setdefault(row["kind"], set()).add(finding_address(row))
        if digest.id in first_round:
            assert by_kind == {"new": EXPECTED_DEMO[(organisation, "ibd")]}
        else:
            assert by_kind == EXPECTED_ROUND_TWO[(organisation, "ibd")]


def test_round_two_sends_reminders_fixes_and_the_reopened_finding_once(demo_run):
    _, summary = demo_run
    two = summary.round_two
    assert two is not None and two.round_no == 2
    assert two.refused == []  # the rescan's not-vulnerable results need the report format's `result`
    got = {(r["organisation"], r["constituency"]): {k: set(v) for k, v in r["kinds"].items()} for r in two.rows}
    assert got == EXPECTED_ROUND_TWO
    assert two.mails == len(EXPECTED_ROUND_TWO) and two.dumped == {}
    assert [(a["organisation"], a["target"], a["state"]) for a in two.answers] == [
        ("GM0599", "192.0.2.10:443", "fixed-reported"),
        ("GM0599", "192.0.2.10:443", "fixed-reported"),
    ]  # in the mail output's ledger and in the archive's
    case = two.cases["ibd"]["DIVD-2024-00012"]
    assert (case["findings"], case["notified"], case["open"], case["fixed_verified"], case["reopened"]) == (
        10,
        10,
        7,
        3,
        1,
    )
    # The rescan's not-vulnerable result for an unclaimed finding is filtered off the
    # _default path (the example's unclaimed-filter): an abuse contact is never told it.
    assert two.default_findings == []
    text = summary.render()
    assert "Round two: the researchers' rescan a week later" in text
    assert "GM0599 Rotterdam, found again: 192.0.2.10:443" in text
    document = summary.as_json()
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert document["rounds"][1]["organisations"]["GM0599"]["kinds"]["reopened"] == ["192.0.2.10:443"]
    assert document["cases"]["ibd"]["DIVD-2024-00012"]["by_state"]["reopened"] == 1


def test_the_summary_names_every_organisation_and_the_default_path(demo_run):
    _, summary = demo_run
    text = summary.render()
    for organisation, _ in EXPECTED_DEMO:
        assert organisation in text
    assert "3 findings claimed by no constituency went to the _default path" in text
    assert isinstance(summary, Summary) and "NOT DELIVERED" not in text


def test_the_demo_ends_with_one_answer_per_kind_on_the_owners_page_and_the_researcher_s_view(demo_run):
    demo, summary = demo_run
    feedback = summary.feedback
    answered = {a["choice"]: a["state"] for a in feedback["answers"]}
    assert answered == {
        "fixed": "fixed-reported",
        "accepted-risk": "accepted-risk",
        "not-ours": "disputed",
        "false-positive": "false-positive",
    }
    assert all(a["confirmation_status"] == 200 for a in feedback["answers"])
    # Each answer is in the mail output's ledger, as the owner's, with the comment.
    from intelmq_nsm.digest.ledger import Ledger, sqlite_url

    spool = demo.chain.pipeline.runtime["ibd-digest-mail"]["parameters"]["spool_file"]
    ledger = Ledger(sqlite_url(spool), name="ibd-digest-mail")
    try:
        for a in feedback["answers"]:
            [record] = [r for r in ledger.history_of(a["finding_id"]) if r["org_id"] == a["organisation"]]
            last = record["history"][-1]
            assert (last["state"], last["source"], last["note"]) == (a["state"], "owner", a["comment"])
    finally:
        ledger.close()
    view = feedback["cases"]["DIVD-2024-00012"]
    assert view["findings"] >= 10 and view["notified"] >= 10 and view["daily"]
    surf = [c for c in view["constituencies"] if c["constituency"] == "surf"]
    ibd = [c for c in view["constituencies"] if c["constituency"] == "ibd"]
    assert surf and [o["name"] for o in surf[0]["organisations"]] == ["Universiteit Voorbeeld"]
    assert ibd and "organisations" not in ibd[0]  # the IBD's registry entry does not share names
    for case_id, path in feedback["charts"].items():
        assert Path(path).read_text(encoding="utf-8").startswith("<svg") and case_id in feedback["cases"]
        # Kept in the charts folder the demo was given, not in its working folder.
        assert Path(path) == demo.charts.resolve() / f"{case_id}.svg"
    text = summary.render()
    assert "The researcher's view of DIVD-2024-00012 (GET /v1/cases/DIVD-2024-00012):" in text
    assert f"Chart: {feedback['charts']['DIVD-2024-00012']}" in text
    assert summary.as_json()["feedback"]["cases"]["DIVD-2024-00012"] == view
    # What the feedback service ran with stays in the demo's folder, to serve it again.
    from intelmq_nsm.feedback import config as config_mod

    kept = config_mod.load(demo.feedback.config_file)
    assert kept.ledger_url == sqlite_url(Path(spool).resolve()) and kept.ledger_name == "ibd-digest-mail"
    assert all(Path(p).exists() for p in (kept.secret_file, kept.tokens_file, kept.operator_tokens_file))


# -- the mails: signed, labelled, kept, one organisation in English -------------------------

#: The organisation of the example registry that reads its digests in English.
ENGLISH = "SSC-DRECHTSTEDEN"


@pytest.fixture(scope="module")
def receiver(demo_run):
    """A receiver's GnuPG home that knows only the public half the demo kept."""
    demo, _ = demo_run
    with Home() as home:
        home.import_key((demo.workdir / "mails" / "signing-key.asc").read_bytes())
        yield home


def test_every_mail_is_pgp_mime_signed_and_gpg_verifies_it_with_the_kept_public_key(demo_run, receiver):
    demo, summary = demo_run
    [key] = demo.chain.signing_keys
    report = summary.mail_report
    assert report["keys"] == [{"outputs": ["ibd-digest-mail"], "fingerprint": key.fingerprint}]
    # A fresh key, made in the output's GnuPG home inside the working folder, its passphrase
    # in a file only its owner reads.
    assert key.home == demo.workdir / "var" / "lib" / "bots" / "ibd-digest-mail" / "gnupg"
    assert key.passphrase_file.stat().st_mode & 0o777 == 0o600
    assert key.fingerprint != EXAMPLE_FINGERPRINT
    raws = demo.chain.sink.raw
    assert len(raws) == summary.mails + summary.round_two.mails and report["signed"] == len(raws)
    for raw in raws:
        signed, signature = signed_and_signature(raw[raw.index(b"Content-Type: multipart/signed") :])
        result = receiver.verify(signed, signature)
        assert result.returncode == 0, result.stderr.decode()
        assert b"Good signature" in result.stderr and key.fingerprint.encode() in result.stderr
        # The text and the CSV are what is signed.
        assert b"Content-Type: multipart/mixed" in signed and b"text/csv" in signed


def test_every_mail_is_kept_as_received_with_the_public_half_of_the_key_beside_them(demo_run):
    demo, summary = demo_run
    folder = demo.workdir / "mails"
    kept = sorted(folder.glob("*.eml"))
    assert [path.read_bytes() for path in kept] == demo.chain.sink.raw
    assert [Path(m["file"]) for m in summary.mail_report["mails"]] == kept
    for path, (_, recipients, _) in zip(kept, demo.chain.sink.messages):
        assert path.name.endswith(f"-{recipients[0]}.eml")
    public = (folder / "signing-key.asc").read_text(encoding="ascii")
    assert public.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----") and "PRIVATE" not in public
    assert set(p.name for p in folder.iterdir()) == {*(p.name for p in kept), "signing-key.asc"}


def test_every_mail_carries_its_tlp_label_in_the_subject_the_first_line_and_the_header(demo_run):
    demo, summary = demo_run
    for _, _, message in demo.chain.sink.messages:
        label = message["X-NSM-TLP"]
        assert label == "AMBER"  # the sample cases' label, or the output's default
        assert message["Subject"].startswith(f"[TLP:{label}] ")
        first_line = message.get_body(("plain",)).get_content().splitlines()[0]
        assert first_line.startswith(f"TLP:{label} ")
        assert {row["tlp"] for row in csv.DictReader(io.StringIO(csv_attachment(message)))} == {label}
    assert summary.mail_report["tlp"] == {"AMBER": len(demo.chain.sink.messages)}


def test_the_organisation_that_asks_for_english_gets_its_digests_in_english_the_others_in_dutch(demo_run):
    demo, summary = demo_run
    english, dutch = [], []
    for _, recipients, message in demo.chain.sink.messages:
        text = message.get_body(("plain",)).get_content()
        (english if recipients == [CONTACTS[ENGLISH]] else dutch).append((message["Subject"], text))
    assert len(english) == 2  # round one's findings and round two's reminders
    for subject, text in english:
        assert "vulnerable system" in subject and "(digest " in subject
        assert text.splitlines()[0] == "TLP:AMBER " + tlp.sentence("AMBER", "en")
        assert "Recipients may share" in text and "kwetsba" not in text.lower()
    assert dutch
    for subject, text in dutch:
        assert "(overzicht " in subject
        assert text.splitlines()[0] == "TLP:AMBER " + tlp.sentence("AMBER", "nl")
    assert summary.mail_report["languages"]["en"] == [ENGLISH]
    assert ENGLISH not in summary.mail_report["languages"]["nl"]


def test_the_summary_names_the_key_the_labels_and_shows_one_mail_checked_by_gpg(demo_run):
    demo, summary = demo_run
    [key] = demo.chain.signing_keys
    report = summary.mail_report
    checked = report["checked"]
    assert checked["good"] and Path(checked["file"]).parent == demo.workdir / "mails"
    assert any(line.startswith("Content-Type: multipart/signed;") for line in checked["headers"])
    assert any(line.startswith("Subject: [TLP:AMBER] ") for line in checked["headers"])
    [imported, verified] = checked["gpg"]
    assert imported["command"] == "gpg --import signing-key.asc"
    assert verified["command"] == "gpg --verify signature.asc signed-part"
    assert any(line.startswith("gpg: Good signature from ") for line in verified["output"])
    text = summary.render()
    count = len(demo.chain.sink.raw)
    assert f"{count} of them PGP/MIME-signed with {key.fingerprint} (ibd-digest-mail)" in text
    assert f"TLP labels: TLP:AMBER {count}." in text
    assert f"In English: 2 mails to {ENGLISH}." in text
    assert "$ gpg --verify signature.asc signed-part" in text and "gpg: Good signature from" in text
    assert "THE SIGNATURE DID NOT VERIFY" not in text
    assert summary.as_json()["mail"] == report
