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
