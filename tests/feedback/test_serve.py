"""``intelmq-nsm serve`` as a process: its configuration file, its secret, its answers."""

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from intelmq_nsm.feedback import config as config_mod

pytestmark = pytest.mark.e2e

COMMAND = str(Path(sys.executable).parent / "intelmq-nsm")


@contextlib.contextmanager
def serving(*arguments):
    """``intelmq-nsm serve ARGUMENTS`` running: its base URL once it listens."""
    process = subprocess.Popen(
        [COMMAND, "serve", *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Feedback service listening on http://127.0.0.1:"), line + process.stderr.read()
        yield line.split()[4].rstrip("/")
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        process.stdout.close()
        process.stderr.close()


def test_the_configuration_file_is_checked(tmp_path):
    path = tmp_path / "feedback.yaml"
    path.write_text("ledger_url: sqlite:///spool.sqlite\nledger_name: x\nsecret_file: secret\nsecret_fiel: y\n")
    with pytest.raises(config_mod.ConfigError, match=r"unknown key.*secret_fiel"):
        config_mod.load(path)
    path.write_text("ledger_name: x\n")
    with pytest.raises(config_mod.ConfigError, match=r"lacks the key.*ledger_url.*secret_file"):
        config_mod.load(path)
    path.write_text("ledger_url: sqlite:///spool.sqlite\nledger_name: x\nsecret_file: secret\n")
    loaded = config_mod.load(path)
    assert loaded.ledger_url == f"sqlite:///{tmp_path / 'spool.sqlite'}"
    assert loaded.secret_file == str(tmp_path / "secret")


def test_the_runtime_example_configuration_loads():
    example = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd" / "feedback.yaml"
    loaded = config_mod.load(example)
    assert loaded.ledger_name == "ibd-digest-mail" and loaded.host == "127.0.0.1"


def test_serve_starts_answers_and_stops(tmp_path):
    path = tmp_path / "feedback.yaml"
    path.write_text(
        "ledger_url: sqlite:///spool.sqlite\nledger_name: ibd-digest-mail\nsecret_file: secret\n"
        "host: 127.0.0.1\nport: 0\nbase_url: https://feedback.ibd.example\n"
    )
    missing = subprocess.run([COMMAND, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "cannot be read" in missing.stderr
    with serving("--config", str(path), "--create-secret") as url:
        document = requests.get(url + "/v1/openapi.json", timeout=10).json()
        assert document["servers"] == [{"url": "https://feedback.ibd.example"}]
        refused = requests.get(url + "/feedback?link=nonsense", timeout=10)
        assert refused.status_code == 400 and "Deze link kan niet worden gebruikt" in refused.text
        assert requests.post(url + "/v1/feedback", json={}, timeout=10).status_code == 503
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_the_demo_keeps_what_its_feedback_service_ran_with_and_serve_runs_it_again(tmp_path):
    """``intelmq-nsm demo --workdir DIR`` keeps the service's configuration, secret and token
    files beside the ledger: ``intelmq-nsm serve --config`` on them serves the kept state."""
    import re
    import shutil

    from intelmq_nsm.demo.feedback_round import CONFIG_FILE, SERVICE_FOLDER, FeedbackRound
    from intelmq_nsm.testbed.chain import DIGEST_MODULE
    from tests.feedback.conftest import LEDGER, deliver, standard_events

    delivered = deliver(tmp_path, "http://127.0.0.1:1", standard_events())
    workdir = tmp_path / "demo"
    spool = workdir / "var" / "lib" / "bots" / LEDGER / "spool.sqlite"
    spool.parent.mkdir(parents=True)
    shutil.copy(delivered.spool_file, spool)
    # The mail output signed its links with the service's secret: the one the demo makes.
    (workdir / SERVICE_FOLDER).mkdir(parents=True)
    shutil.copy(delivered.secret_file, workdir / SERVICE_FOLDER / "feedback-secret")
    runtime = {LEDGER: {"module": DIGEST_MODULE, "parameters": {"smtp_port": 25, "spool_file": str(spool)}}}
    demo = FeedbackRound(workdir, progress=lambda message: None)
    demo.start(runtime)
    demo.stop()
    folder = workdir / SERVICE_FOLDER
    assert demo.config_file == folder / CONFIG_FILE
    assert runtime[LEDGER]["parameters"]["feedback_secret_file"] == str(folder / "feedback-secret")
    # The kept folder, moved elsewhere, is served again.
    moved = shutil.move(str(workdir), str(tmp_path / "kept"))
    config = Path(moved) / SERVICE_FOLDER / CONFIG_FILE
    assert config_mod.load(config).ledger_name == LEDGER
    with serving("--config", str(config), "--port", "0") as url:
        link = re.sub(r"^https?://[^/]+", url, delivered.documents()["GM0363"]["feedback_url"])
        page = requests.get(link, timeout=10)
        assert page.status_code == 200 and "198.51.100.2" in page.text
        operator = (Path(moved) / SERVICE_FOLDER / "operator-token.txt").read_text().strip()
        login = requests.get(url + "/operators/login", timeout=10).text
        fields = dict(re.findall(r'name="(nonce|csrf)" value="([^"]*)"', login))
        started = requests.post(
            url + "/operators/login", data={**fields, "token": operator}, allow_redirects=False, timeout=10
        )
        assert started.status_code == 303, started.text
        cookie = {"Cookie": started.headers["Set-Cookie"].split(";")[0]}  # Secure: sent here by hand
        overview = requests.get(url + "/operators", headers=cookie, timeout=10)
        assert overview.status_code == 200 and "Amsterdam (GM0363)" in re.sub(r"</?bdi>", "", overview.text)
        tickets = (Path(moved) / SERVICE_FOLDER / "feedback-token.txt").read_text().strip()
        answer = {"finding_id": "nf1-" + "0" * 32, "organisation": "GM0363", "state": "open", "reference": "T-1"}
        refused = requests.post(
            url + "/v1/feedback", json=answer, headers={"Authorization": f"Bearer {tickets}"}, timeout=10
        )
        assert refused.status_code == 404  # the ticket system's token is taken; the finding is unknown
