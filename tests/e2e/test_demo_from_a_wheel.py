"""``intelmq-nsm demo`` as a newcomer runs it after a plain ``pip install`` of the wheel (not
an editable install, no checkout in reach): the packaged example plays round one, the
rescan of round two with the owners' answers, and the feedback round, and the charts it
names are there after it exits, and with ``--workdir`` every mail, signed, as an .eml file."""

import importlib.metadata
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_packaging import build_wheel

pytestmark = pytest.mark.e2e


def fresh_venv(path: Path) -> Path:
    """A new virtual environment with pip, whose other packages (IntelMQ and the rest of
    intelmq-nsm's dependencies) are those of the tests' environment: no registry is asked.

    The tests' site-packages is appended to its path by a .pth file, so the venv's own
    site-packages (where the wheel goes) comes first; IntelMQ's programs (intelmqctl and
    its core bots, which intelmqctl starts by name from the venv's bin) get launchers in the
    venv's bin, as installing IntelMQ there would make them.
    """
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "tests-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    for entry in importlib.metadata.distribution("intelmq").entry_points:
        if entry.group != "console_scripts":
            continue
        launcher = path / "bin" / entry.name
        launcher.write_text(
            f"#!{python}\nimport importlib, sys\n"
            f"target = importlib.import_module({entry.module!r})\n"
            f"for name in {entry.attr!r}.split('.'):\n"
            "    target = getattr(target, name)\n"
            "sys.exit(target())\n",
            encoding="utf-8",
        )
        launcher.chmod(0o755)
    return path


def test_the_demo_from_an_installed_wheel_plays_both_rounds_and_the_owners_answers(tmp_path, redis_server):
    wheel = build_wheel(tmp_path)  # from a copy of the checkout, removed: none stays in reach
    venv = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    here = tmp_path / "newcomer"
    here.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    probe = "from intelmq_nsm.demo.example import default_example; print(default_example())"
    example = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd=here, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert Path(example).is_relative_to(venv), example  # the packaged example, from the wheel

    result = subprocess.run(
        [str(venv / "bin" / "intelmq-nsm"), "demo", "--redis-url", f"redis://127.0.0.1:{redis_server.port}",
         "--json", "summary.json", "--timeout", "120", "--workdir", "work"],
        cwd=here, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((here / "summary.json").read_text(encoding="utf-8"))
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    one, two = summary["rounds"]
    assert one["organisations"] and all(r["status"] == 202 for r in one["submitted"])
    # The second source ships in the wheel too: the feed's reports, by kind of abuse.
    assert len(one["feeds"]) == 3 and one["organisations"]["GM0034"]["kinds_of_abuse"]["compromised"] == ["192.0.2.41"]
    # Round two: the rescan was submitted and delivered, the owners' answer recorded.
    assert two["submitted"] and all(r["status"] == 202 for r in two["submitted"]) and two["refused"] == []
    assert {a["state"] for a in two["answers"]} == {"fixed-reported"}
    assert any(org["kinds"]["fixed"] for org in two["organisations"].values())
    assert summary["cases"]["ibd"]["DIVD-2024-00012"]["reopened"] == 1
    # The feedback round: one owner's answer of each kind, the researcher's view of each case.
    assert {a["choice"] for a in summary["feedback"]["answers"]} == {
        "fixed",
        "accepted-risk",
        "not-ours",
        "false-positive",
    }
    assert "Round two: the researchers' rescan a week later" in result.stdout
    # Every chart the demo printed is kept after it exited, in charts/ where it was run.
    printed = [line.removeprefix("Chart: ") for line in result.stdout.splitlines() if line.startswith("Chart: ")]
    assert printed and sorted(printed) == sorted(summary["feedback"]["charts"].values())
    for path in printed:
        assert Path(path).parent == here / "charts"
        assert Path(path).read_text(encoding="utf-8").startswith("<svg")
    # Every mail signed with the key the demo made, kept with its public half in work/mails/,
    # and the closing note shows one checked by gpg.
    mails = summary["mail"]
    kept = sorted((here / "work" / "mails").glob("*.eml"))
    assert kept and [m["file"] for m in mails["mails"]] == [str(p) for p in kept]
    assert mails["signed"] == len(kept) and mails["checked"]["good"]
    assert (here / "work" / "mails" / "signing-key.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK")
    assert f"Every mail the SMTP sink received is kept in {here / 'work' / 'mails'}/ as an .eml file" in result.stdout
    assert "$ gpg --verify signature.asc signed-part" in result.stdout and "gpg: Good signature from" in result.stdout
    assert mails["languages"]["en"] == ["SSC-DRECHTSTEDEN"]
