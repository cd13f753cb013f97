"""``intelmq-nsm … | head``: a command whose reader goes away stops quietly.

Each command runs as the installed program with its standard output a pipe. Either the
reader takes one line and closes the pipe while the command is still writing (its output
is larger than the pipe's buffer), or it closes the pipe before the command writes at all
(a short output, written when the command ends). Neither may end in a traceback.
"""

import subprocess
from pathlib import Path

import pytest

from intelmq_nsm.cli import EXIT_PIPE_CLOSED
from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url
from tests.harness import VENV_BIN

DATA = Path(__file__).resolve().parents[1] / "constituency" / "data"
T0 = 1_780_000_000.0
FINDINGS = 2000  # some 300 kB of listing: several times a pipe's buffer


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipes") / "spool.sqlite"
    ledger = Ledger(sqlite_url(path), name="ibd-mail")
    ledger.observe(
        [
            Observation(f"nf1-{n:032x}", "GM0363", f"e{n}", org_name="Amsterdam", constituency="ibd",
                        case_id="DIVD-2024-00031", target=f"192.0.2.{n % 250}:443")
            for n in range(FINDINGS)
        ],
        now=T0,
    )  # fmt: skip
    ledger.close()
    return path


def run_closed(argv, read_first_line: bool):
    """Run ``intelmq-nsm ARGV``, read one line of its output (or none) and close the pipe."""
    process = subprocess.Popen(
        [str(VENV_BIN / "intelmq-nsm"), *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    line = process.stdout.readline() if read_first_line else b""
    process.stdout.close()
    err = process.stderr.read().decode("utf-8", "replace")
    process.stderr.close()
    return line, err, process.wait(timeout=300)


def lookups():
    return ["constituency", "lookup", "-d", DATA, *(f"192.0.2.{n % 256}" for n in range(3000))]


@pytest.mark.parametrize(
    "argv",
    [
        lambda db: ["ledger", db, "list"],
        lambda db: ["ledger", db, "list", "--json"],
        lambda db: lookups(),
        lambda db: [*lookups(), "--json"],
    ],
    ids=["ledger list", "ledger list --json", "constituency lookup", "constituency lookup --json"],
)
def test_a_reader_that_stops_after_one_line_ends_the_command_quietly(ledger_file, argv):
    line, err, code = run_closed(argv(ledger_file), read_first_line=True)
    assert line  # it was writing
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == EXIT_PIPE_CLOSED


@pytest.mark.parametrize(
    "argv",
    [
        lambda db: ["ledger", db, "stats"],
        lambda db: ["constituency", "stats", "-d", DATA],
        lambda db: ["constituency", "validate", DATA],
    ],
    ids=["ledger stats", "constituency stats", "constituency validate"],
)
def test_a_reader_gone_before_the_output_is_written_ends_the_command_quietly(ledger_file, argv):
    _, err, code = run_closed(argv(ledger_file), read_first_line=False)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == EXIT_PIPE_CLOSED
