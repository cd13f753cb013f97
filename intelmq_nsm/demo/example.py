"""The example the demo runs and what it must hold before anything starts.

``runtime-examples/nsm-ibd`` of a source checkout, else the copy an installed package ships
(setup.py packs that folder as ``intelmq_nsm/demo/example``, its rescan included): its
runtime.yaml, registry, token file, the researcher's token (``demo-token.txt``), the sample
reports of round one (``reports/``) and of the rescan a week later with the owners' answers
(``reports/rescan/``).
"""

import json
from pathlib import Path
from typing import Optional

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.testbed.chain import DIGEST_MODULE, TOKEN_FILE, example_reports
from intelmq_nsm.testbed.layout import bots_of
from intelmq_nsm.testbed.pipeline import VENV_BIN, HarnessError, redis_server_binary
from intelmq_nsm.testbed.rabbitmq import rabbitmq_available

CHECKOUT_EXAMPLE = Path(__file__).resolve().parents[2] / "runtime-examples" / "nsm-ibd"
PACKAGED_EXAMPLE = Path(__file__).resolve().parent / "example"
RESCAN_FOLDER = "rescan"
ANSWERS_FILE = "answers.json"


def default_example() -> Path:
    """The example the demo runs: the checkout's runtime-examples/nsm-ibd, else the packaged copy."""
    for folder in (CHECKOUT_EXAMPLE, PACKAGED_EXAMPLE):
        if (folder / "runtime.yaml").exists():
            return folder
    raise DemoError(
        f"No example pipeline in {CHECKOUT_EXAMPLE} or {PACKAGED_EXAMPLE}: "
        "give the example folder with --example (runtime-examples/nsm-ibd of the source)."
    )


def preflight(example: Path, redis_url: Optional[str] = None, broker: str = "redis", rabbitmq=None) -> None:
    """Check what the demo needs before starting anything; say what to do when it is missing."""
    if not (VENV_BIN / "intelmqctl").exists():
        raise DemoError(f"intelmqctl is not in {VENV_BIN}: install intelmq-nsm (scripts/main does).")
    runtime_file = example / "runtime.yaml"
    if not runtime_file.exists():
        raise DemoError(f"No example runtime at {runtime_file}: give the example folder with --example.")
    if not (example / TOKEN_FILE).exists():
        raise DemoError(f"The example has no researcher token ({example / TOKEN_FILE}).")
    if not example_reports(example):
        raise DemoError(f"The example has no sample reports in {example / 'reports'}.")
    if not redis_url:
        try:
            redis_server_binary()
        except HarnessError as exc:
            raise DemoError(f"{exc} Or give a running Redis with --redis-url redis://host:port.") from exc
    if broker == "amqp" and rabbitmq is None and not rabbitmq_available():
        raise DemoError(
            "--broker amqp needs Debian's rabbitmq-server (/usr/lib/rabbitmq/bin) installed "
            "(scripts/main as root installs it)."
        )


def preflight_signing(runtime: dict) -> None:
    """A digest output of the example signs: gpg must be there to make its key and sign."""
    from intelmq_nsm.digest.openpgp import missing_programs

    signing = [b for b in bots_of(runtime, DIGEST_MODULE) if runtime[b]["parameters"].get("openpgp_fingerprint")]
    missing = missing_programs() if signing else []
    if missing:
        raise DemoError(
            f"{', '.join(signing)} of the example signs its digests, but {' and '.join(missing)} "
            "is not installed: install Debian's gnupg (scripts/main as root does)."
        )


def rescans(example: Path) -> list:
    """The rescan's reports (round two); none: the demo plays round one only."""
    return example_reports(example, RESCAN_FOLDER)


def owners_answers(example: Path) -> list:
    """The owners' answers recorded between the rounds (``{"case", "target", "state", "note"}``)."""
    path = example / "reports" / RESCAN_FOLDER / ANSWERS_FILE
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["answers"]
