"""The two-tier example's feedback services run on its own feedback.yaml files: the hub's
(``POST /v1/outcomes``) as ``Tiers`` starts it, the IBD's owners' page as the two-tier demo
starts it, each laid out in its instance's folder as the runtime is; a file with an error
is refused, naming the file, the key and the reason, before anything starts."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from intelmq_nsm.demo.feedback_round import FeedbackRound
from intelmq_nsm.demo.tiers import TWO_TIERS
from intelmq_nsm.testbed.feedback_file import FeedbackFile
from intelmq_nsm.testbed.layout import localise_runtime, localise_value
from intelmq_nsm.testbed.pipeline import VENV_BIN, HarnessError
from intelmq_nsm.testbed.tiers import read_tiers, start_outcomes

MAIL_OUTPUT = "ibd-digest-mail"


def copy_example(tmp_path: Path) -> Path:
    """runtime-examples/two-tiers in ``tmp_path``, its links to the one-installation example
    copied as files (a test may change them without changing the example)."""
    return Path(shutil.copytree(TWO_TIERS, tmp_path / "two-tiers"))


def edit(path: Path, **changes) -> None:
    """Set (a value) or remove (None) keys of the YAML file ``path``."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def test_each_instance_with_a_feedback_yaml_has_it_read_as_written():
    hub, certs = read_tiers(TWO_TIERS)
    assert hub.feedback.path == TWO_TIERS / "hub" / "feedback.yaml"
    assert hub.feedback.config.ledger_name == "hub-forwarded"
    assert hub.feedback.config.limits.max_batch_items == 500  # the file's, not the default 1000
    ibd = {tier.name: tier for tier in certs}["ibd"]
    assert ibd.feedback.config.ledger_name == MAIL_OUTPUT and ibd.feedback.config.port == 8731
    assert {tier.name: tier for tier in certs}["surf"].feedback is None


def test_a_feedback_yaml_is_laid_out_as_its_runtime_is(tmp_path):
    hub, _ = read_tiers(TWO_TIERS)
    laid_out = hub.feedback.localised(tmp_path / "hub", 40123).config
    assert laid_out.ledger_url == f"sqlite:///{tmp_path}/hub/var/lib/bots/hub-forwarded/ledger.sqlite"
    assert laid_out.secret_file == str(tmp_path / "hub" / "etc" / "nsm" / "feedback-secret")
    assert laid_out.cert_tokens_file == str(tmp_path / "hub" / "etc" / "nsm" / "cert-tokens.json")
    assert (laid_out.host, laid_out.port, laid_out.base_url) == ("127.0.0.1", 40123, "http://127.0.0.1:40123")
    assert laid_out.ledger_name == "hub-forwarded" and laid_out.limits.max_batch_items == 500
    # One home for the moving: the forward records' ledger file moves to the same place.
    runtime = localise_runtime(hub.runtime, tmp_path / "hub", {})
    record = runtime["ibd-forward-record"]["parameters"]["ledger_file"]
    assert laid_out.ledger_url == f"sqlite:///{record}"
    assert localise_value("https://meldpunt.example", tmp_path) == "https://meldpunt.example"


@pytest.mark.e2e
def test_the_hubs_outcomes_service_runs_on_the_examples_feedback_yaml(tmp_path):
    hub, certs = read_tiers(TWO_TIERS)
    service = start_outcomes(hub, hub.runtime, tmp_path, [tier.name for tier in certs])
    try:
        assert service.url.startswith("http://127.0.0.1:") and service.port != 8732
        base = service.url.removesuffix("/v1/outcomes")
        document = requests.get(base + "/v1/openapi.json", timeout=10).json()
        assert document["servers"] == [{"url": base}]
        # The file's max_batch_items (500) at work: a batch of 501 changes is refused whole.
        changes = [{"change_id": f"ibd/ibd-digest-mail/{n}"} for n in range(501)]
        body = {"format": "nsm-outcomes/1", "instance": "ibd", "changes": changes}
        headers = {"Authorization": f"Bearer {service.tokens['ibd']}"}
        refused = requests.post(service.url, json=body, headers=headers, timeout=10)
        assert refused.status_code == 413 and "at most 500" in refused.json()["message"]
        # Its secret and the CERTs' token file where the file says, in the hub's folder.
        nsm = tmp_path / "hub" / "etc" / "nsm"
        assert (nsm / "feedback-secret").stat().st_mode & 0o777 == 0o600
        assert (nsm / "cert-tokens.json").exists()
        ledger = service.ledger()
        try:
            assert ledger.records() == []  # the hub's ledger, named as the file names it
        finally:
            ledger.close()
        assert (tmp_path / "hub" / "var" / "lib" / "bots" / "hub-forwarded" / "ledger.sqlite").exists()
    finally:
        service.stop()


@pytest.mark.e2e
def test_the_ibds_owners_page_runs_on_its_feedback_yaml(tmp_path):
    """The demo's owners' page at the IBD takes ibd/feedback.yaml: its ledger, its token
    files and its limits (here a burst of 2, which the demo's own configuration never has)."""
    example = copy_example(tmp_path)
    edit(example / "ibd" / "feedback.yaml", burst=2, requests_per_minute=1)
    _, certs = read_tiers(example)
    ibd = {tier.name: tier for tier in certs}["ibd"]
    workdir = tmp_path / "work" / "ibd"
    runtime = localise_runtime(ibd.runtime, workdir, {})
    page = FeedbackRound(workdir, progress=lambda message: None, configured=ibd.feedback)
    page.start(runtime)
    try:
        config = page.server.context.config
        assert page.output == MAIL_OUTPUT and config.ledger_name == MAIL_OUTPUT
        parameters = runtime[MAIL_OUTPUT]["parameters"]
        assert config.ledger_url == f"sqlite:///{parameters['spool_file']}"
        port = page.server.port
        assert parameters["feedback_base_url"] == f"http://127.0.0.1:{port}" == config.base_url
        nsm = workdir / "etc" / "nsm"
        assert parameters["feedback_secret_file"] == str(nsm / "feedback-secret")
        assert (nsm / "feedback-secret").stat().st_mode & 0o777 == 0o600
        assert (nsm / "operator-tokens.json").exists() and (nsm / "operator-token.txt").exists()
        # The ticket system's token from the file's tokens_file is taken (the finding is
        # unknown); the third request within the file's burst of 2 is refused.
        tickets = (nsm / "feedback-token.txt").read_text().strip()
        answer = {"finding_id": "nf1-" + "0" * 32, "organisation": "GM0363", "state": "open", "reference": "T-1"}
        statuses = [
            requests.post(
                f"http://127.0.0.1:{port}/v1/feedback",
                json=answer,
                headers={"Authorization": f"Bearer {tickets}"},
                timeout=10,
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [404, 404, 429]
    finally:
        page.stop()
    assert page.config_file is None  # the example's configuration, not one the demo wrote


#: A mistake in an example's feedback.yaml: ``(instance, changes, key named, reason said)``.
MISTAKES = [
    ("hub", {"ledger_nmae": "hub-forwarded"}, "ledger_nmae", "unknown key"),
    ("hub", {"max_batch_items": "many"}, "max_batch_items", "must be a number"),
    ("hub", {"cert_tokens_file": None}, "cert_tokens_file", "is not set"),
    ("hub", {"ledger_name": "hub-forwarding"}, "ledger_name", "no ledger the runtime's"),
    (
        "hub",
        {"ledger_url": "sqlite:////opt/intelmq/var/lib/bots/hub/ledger.sqlite"},
        "ledger_url",
        "is not where ibd-forward-record writes the ledger 'hub-forwarded'",
    ),
    ("ibd", {"ledger_name": "ibd-digest-archiv"}, "ledger_name", "no ledger the runtime's"),
    ("ibd", {"secret_file": "feedback-secret"}, "secret_file", "is not under /opt/intelmq/"),
    ("ibd", {"ledger_url": "postgresql://nsm@db.ibd.example/nsm"}, "ledger_url", "is not under /opt/intelmq/"),
]


@pytest.mark.parametrize(("instance", "changes", "key", "reason"), MISTAKES)
def test_a_mistake_in_an_examples_feedback_yaml_is_named_with_its_file_and_key(
    tmp_path, instance, changes, key, reason
):
    example = copy_example(tmp_path)
    path = example / instance / "feedback.yaml"
    edit(path, **changes)
    with pytest.raises(HarnessError) as raised:
        read_tiers(example)
    message = str(raised.value)
    assert str(path) in message and key in message and reason in message, message


def test_the_two_tier_demo_reports_a_mistake_in_a_feedback_yaml_before_anything_starts(tmp_path):
    example = copy_example(tmp_path)
    path = example / "ibd" / "feedback.yaml"
    edit(path, secret_fiel="/opt/intelmq/etc/nsm/feedback-secret")
    workdir = tmp_path / "work"
    argv = [str(VENV_BIN / "intelmq-nsm"), "demo", "--tiers", "2", "--example", str(example), "--workdir", str(workdir)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(rf"{re.escape(str(path))} has unknown key\(s\): secret_fiel", result.stderr), result.stderr
    # Before any instance was laid out (its Redis, its bots) or RabbitMQ was started.
    assert "Starting" not in result.stdout
    assert not any((workdir / name).exists() for name in ("hub", "ibd", "surf", "rabbitmq"))


def test_an_example_without_a_feedback_yaml_has_none(tmp_path):
    assert FeedbackFile.read(tmp_path) is None
