"""``intelmq-nsm serve`` as a process: its configuration file, its secret, its answers."""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from intelmq_nsm.feedback import config as config_mod

pytestmark = pytest.mark.e2e

COMMAND = str(Path(sys.executable).parent / "intelmq-nsm")


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
    process = subprocess.Popen(
        [COMMAND, "serve", "--config", str(path), "--create-secret"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Feedback service listening on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[4].rstrip("/")
        document = requests.get(url + "/v1/openapi.json", timeout=10).json()
        assert document["servers"] == [{"url": "https://feedback.ibd.example"}]
        refused = requests.get(url + "/feedback?link=nonsense", timeout=10)
        assert refused.status_code == 400 and "Deze link kan niet worden gebruikt" in refused.text
        assert requests.post(url + "/v1/feedback", json={}, timeout=10).status_code == 503
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        process.stdout.close()
        process.stderr.close()
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
