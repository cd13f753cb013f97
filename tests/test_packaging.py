"""The package as IntelMQ sees it: entry points, `intelmqctl list bots`, the bot catalogue."""

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import intelmq_nsm
from intelmq_nsm._entrypoints import bot_modules
from intelmq_nsm.cli.bots import installed_bots

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(intelmq_nsm.__file__).parent
TREE_BOTS = bot_modules(PACKAGE_DIR)


def test_installed_entry_points_match_the_source_tree():
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ".nsm." in ep.name}
    assert installed == {name: f"{module}:BOT.run" for name, module in TREE_BOTS.items()}


@pytest.mark.e2e
def test_intelmqctl_lists_every_bot_with_description_and_parameters(intelmq_pipeline):
    pipeline = intelmq_pipeline({})
    result = pipeline.ctl("-t", "json", "list", "bots")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    listed = {info["module"]: info for group in listing.values() for info in group.values()}
    assert "intelmq.bots.outputs.file.output" in listed  # the core bots are still there
    for name in TREE_BOTS:
        assert name in listed, f"{name} is missing from intelmqctl list bots."
        assert listed[name]["description"] not in ("", "Missing description")
        assert isinstance(listed[name]["parameters"], dict)


#: What the IntelMQ Manager's palette shows for each bot: the key of ``intelmqctl list
#: bots``, which IntelMQ derives from the class name without its CollectorBot/ParserBot/
#: ExpertBot/OutputBot ending (intelmq.lib.utils.list_all_bots).
PALETTE = {
    "intelmq.bots.collectors.nsm.intake": ("Collector", "NSMIntake"),
    "intelmq.bots.parsers.nsm.report": ("Parser", "NSMReport"),
    "intelmq.bots.experts.nsm.constituency": ("Expert", "NSMConstituency"),
    "intelmq.bots.outputs.nsm.digest": ("Output", "NSMDigest"),
    "intelmq.bots.parsers.nsm.forwarded": ("Parser", "NSMForwarded"),
    "intelmq.bots.outputs.nsm.forward_record": ("Output", "NSMForwardRecord"),
}


@pytest.mark.e2e
def test_intelmqctl_shows_each_bot_under_a_name_that_says_nsm(intelmq_pipeline):
    assert set(PALETTE) == set(TREE_BOTS)
    result = intelmq_pipeline({}).ctl("-t", "json", "list", "bots")
    assert result.returncode == 0, result.stderr
    shown = {
        info["module"]: (group, name)
        for group, bots in json.loads(result.stdout).items()
        for name, info in bots.items()
        if ".nsm." in info["module"]
    }
    assert shown == PALETTE
    for page in (REPO / "bots").glob("*-*.md"):
        module = next(m for m in PALETTE if m in page.read_text(encoding="utf-8"))
        assert f"*{PALETTE[module][1]}*" in page.read_text(encoding="utf-8"), f"{page.name} does not name the bot."


@pytest.mark.parametrize("name", sorted(TREE_BOTS))
def test_every_bot_has_a_catalogue_page_naming_each_parameter_and_default(name):
    info = installed_bots()[name]
    group, _, bot = name.split(".")[2:]
    page = REPO / "bots" / f"{bot}-{group[:-1]}.md"
    assert page.exists(), f"{name} has no page {page.relative_to(REPO)}."
    text = page.read_text(encoding="utf-8")
    assert name in text
    for param, default in info["parameters"].items():
        # One table row per parameter: | `name` | type | `default as JSON` | description |
        row = re.search(rf"^\|\s*`{re.escape(param)}`\s*\|[^|]*\|\s*`?([^|`]*)`?\s*\|", text, re.MULTILINE)
        assert row, f"{page.name} has no table row for parameter {param!r}."
        assert row.group(1).strip() == json.dumps(default), (
            f"{page.name}: default of {param!r} is {row.group(1).strip()!r}, the code says {json.dumps(default)}."
        )


def build_wheel(directory: Path) -> Path:
    """The package built as a wheel in ``directory`` from a copy of the checkout (removed after)."""
    import shutil
    import subprocess
    import sys

    source = directory / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(directory), "."],
        cwd=source, check=True, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(source)
    [wheel] = directory.glob("intelmq_nsm-*.whl")
    return wheel


def test_a_wheel_ships_the_example_the_demo_runs(tmp_path):
    """Built as a wheel and imported from outside the checkout, ``intelmq-nsm demo`` finds
    the example NSM→IBD pipeline inside the installed package."""
    import subprocess
    import sys
    import zipfile

    wheel = build_wheel(tmp_path)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import json, sys\n"
        "from intelmq_nsm.demo import Demo\n"
        "from intelmq_nsm.demo.example import default_example, rescans\n"
        "example = default_example()\n"
        "demo = Demo(example, sys.argv[1])\n"
        "runtime = demo.preflight()\n"
        "print(json.dumps({'module': sys.modules['intelmq_nsm.demo.run'].__file__,\n"
        "    'example': str(example), 'bots': sorted(runtime), 'reports': [p.name for p in demo.chain.reports()],\n"
        "    'rescans': [p.name for p in rescans(example)], 'feeds': [p.name for p in demo.chain.feeds()],\n"
        "    'feed_rescans': [p.name for p in demo.chain.feeds('rescan')]}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "work")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    checkout = REPO / "runtime-examples" / "nsm-ibd"
    assert Path(found["module"]).is_relative_to(site), found["module"]
    assert found["example"] == str(site / "intelmq_nsm" / "demo" / "example")
    assert found["bots"] == sorted(yaml_keys(checkout / "runtime.yaml"))
    assert found["reports"] == sorted(
        p.name for p in (checkout / "reports").iterdir() if p.suffix in (".json", ".jsonl", ".csv")
        and not p.name.endswith(".case.json")
    )  # fmt: skip
    # Round two of the demo: the rescan and the owners' answers ship too.
    assert found["rescans"] == sorted(
        p.name for p in (checkout / "reports" / "rescan").iterdir() if p.suffix in (".json", ".jsonl", ".csv")
        and p.name != "answers.json"
    ) and found["rescans"]  # fmt: skip
    # The second source: the feed's reports of both rounds and the schema they need.
    assert found["feeds"] == sorted(p.name for p in (checkout / "feeds").glob("*.csv")) and found["feeds"]
    assert found["feed_rescans"] == sorted(p.name for p in (checkout / "feeds" / "rescan").glob("*.csv"))
    assert found["feed_rescans"]
    for name in (
        "tokens.json",
        "demo-token.txt",
        "registry/registry.yaml",
        "reports/divd-2024-00031.case.json",
        "reports/rescan/answers.json",
        "feeds/shadowserver-schema.json",
        *(f"feeds/{name}" for name in found["feeds"]),
        *(f"feeds/rescan/{name}" for name in found["feed_rescans"]),
    ):
        assert (Path(found["example"]) / name).read_bytes() == (checkout / name).read_bytes()


def yaml_keys(path: Path) -> list:
    import yaml

    return list(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_demo_without_an_example_says_where_it_looked(tmp_path, capsys):
    from intelmq_nsm.cli import main

    assert main(["demo", "--example", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "work")]) == 1
    assert f"No example runtime at {tmp_path / 'nowhere' / 'runtime.yaml'}" in capsys.readouterr().err
