"""The main command in two tiers (``intelmq-nsm demo --tiers 2``, what ``scripts/main`` runs), as
a user runs it: the Meldpunt hub and the IBD's and SURFcert's own instances of
runtime-examples/two-tiers, each its own IntelMQ root and Redis, a private RabbitMQ between
them (its own, started by the command), a real SMTP sink at the IBD, the owners' answers on
the IBD's real feedback page, the hub's real ``POST /v1/outcomes`` and intake."""

import csv
import email
import email.policy
import io
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from intelmq_nsm.testbed.pipeline import VENV_BIN
from intelmq_nsm.testbed.rabbitmq import rabbitmq_available
from tests.harness import csv_attachment

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq]

REPO = Path(__file__).resolve().parents[2]
#: The states the owners' answers on the IBD's page leave a finding in.
ANSWERED = ("fixed-reported", "accepted-risk", "disputed", "false-positive")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not rabbitmq_available():
        pytest.skip("Debian's rabbitmq-server is not installed (scripts/test as root installs it).")
    folder = tmp_path_factory.mktemp("two-tiers")
    summary = folder / "summary.json"
    argv = ["demo", "--tiers", "2", "--json", str(summary), "--workdir", str(folder / "work")]
    result = subprocess.run(
        [str(VENV_BIN / "intelmq-nsm"), *argv, "--charts", str(folder / "charts")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout, json.loads(summary.read_text(encoding="utf-8")), folder


def test_the_hub_forwards_to_each_certs_instance_which_delivers_to_its_own(run):
    _, summary, _ = run
    assert summary["tiers"] == 2
    hub = summary["hub"]
    assert hub["forwarded"]["ibd"] > 0 and hub["forwarded"]["surf"] > 0
    for key in ("ibd", "surf"):
        [first, _second] = summary[key]["rounds"]
        organisations = first["organisations"]
        assert organisations and {o["constituency"] for o in organisations.values()} == {key}
        assert summary[key]["dumped"] == {}
    # The municipalities are the IBD's: the hub knows none of them, only cert:ibd.
    assert any(org.startswith("GM") for org in summary["ibd"]["rounds"][0]["organisations"])


def test_the_hub_shows_names_only_of_the_cert_that_shares_them(run):
    _, summary, _ = run
    views = [c for view in summary["hub"]["cases"].values() for c in view["constituencies"] if "downstream" in c]
    surf = [c["downstream"] for c in views if c["constituency"] == "surf"]
    ibd = [c["downstream"] for c in views if c["constituency"] == "ibd"]
    assert surf and ibd
    # SURFcert sends its institutions' names (upstream_share_names); the IBD sends none.
    assert all(d["organisations"] and all(o["name"] for o in d["organisations"]) for d in surf), surf
    assert all("organisations" not in d and d["organisations_count"] >= 1 for d in ibd), ibd


def test_no_municipality_is_mailed_a_finding_twice(run):
    _, _, folder = run
    seen = Counter()
    for path in sorted((folder / "work" / "mails").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for row in csv.DictReader(io.StringIO(csv_attachment(message))):
            seen[(message["To"], row["finding_id"], row["kind"])] += 1
    assert seen and max(seen.values()) == 1, [k for k, n in seen.items() if n > 1]


def test_the_researchers_case_view_at_the_hub_shows_the_owners_answers_and_the_verified_fix(run):
    stdout, summary, _ = run
    answers = summary["ibd"]["feedback"]["answers"]
    assert {a["choice"] for a in answers} == {"fixed", "accepted-risk", "not-ours", "false-positive"}
    cases = summary["hub"]["cases"]
    downstream = {}
    for case_id, view in cases.items():
        for constituency in view["constituencies"]:
            if constituency["constituency"] == "ibd":
                downstream[case_id] = constituency["downstream"]
    assert downstream and all(d["certs"] == ["cert:ibd"] for d in downstream.values())
    states = Counter()
    for block in downstream.values():
        states.update(block["by_state"])
    # An owner's answer at the IBD and the rescan the IBD verified, both in the researcher's view.
    assert states["fixed-verified"] >= 1, states
    assert sum(states[s] for s in ANSWERED) >= 1, states
    # Every answer reached the hub: its finding is in the answer's state there, or in what the
    # rescan made of it since (verified fixed, or back).
    at_hub = summary["hub"]["by_state"]["ibd"]
    assert sum(at_hub.get(s, 0) for s in (*ANSWERED, "fixed-verified", "reopened")) >= len(answers), at_hub
    assert {"disputed", "false-positive"} <= set(at_hub), at_hub
    for answer in answers:
        if answer["case_id"] in downstream:
            assert downstream[answer["case_id"]]["reported"] >= 1
    # The hub's ledger agrees with what the case views count.
    assert sum(summary["hub"]["by_state"]["ibd"].values()) == summary["hub"]["forwarded"]["ibd"]
    assert "The researcher's view of" in stdout and "== The Meldpunt hub" in stdout
