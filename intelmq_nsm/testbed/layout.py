"""An example IntelMQ configuration laid out in a private working directory.

The examples (``runtime-examples/``) are written for a standard IntelMQ installation, with
their files under ``/opt/intelmq/``; here their paths and ports move into a working
directory of their own, so that several can run side by side on one machine.
"""

import json
import shutil
from pathlib import Path

from intelmq_nsm.testbed.pipeline import LOOPBACK

#: Where the examples keep their files in a standard IntelMQ installation; this prefix
#: moves into the working directory.
INTELMQ_PREFIX = "/opt/intelmq/"
#: A SQLite database's URL (a ledger's) opens so, its absolute path follows.
SQLITE_URL = "sqlite:///"
#: IntelMQ's file collector: a feed's reports are files dropped into its ``path``.
FILE_COLLECTOR_MODULE = "intelmq.bots.collectors.file.collector_file"
#: An example's feeds (``feeds/``: the reports a file collector picks up, ``feeds/rescan/``
#: those of round two) and the Shadowserver schema its reports need.
FEEDS = "feeds"
SHADOWSERVER_SCHEMA = "shadowserver-schema.json"


def localise_value(value, workdir: Path):
    """One value of an example's configuration (a runtime's parameter, a feedback.yaml's
    key) as it is laid out in ``workdir``: a path under ``/opt/intelmq/``, or a ``sqlite:///``
    URL of one, moves to ``workdir/``; a list, item by item; anything else stays."""
    if isinstance(value, str) and value.startswith(INTELMQ_PREFIX):
        return str(Path(workdir) / value[len(INTELMQ_PREFIX) :])
    if isinstance(value, str) and value.startswith(SQLITE_URL + INTELMQ_PREFIX):
        return SQLITE_URL + localise_value(value[len(SQLITE_URL) :], workdir)
    if isinstance(value, list):
        return [localise_value(v, workdir) for v in value]
    return value


def localise_runtime(runtime: dict, workdir: Path, overrides: dict) -> dict:
    """The example runtime with its paths moved under ``workdir`` and some parameters set.

    Every parameter under ``/opt/intelmq/`` moves to ``workdir/`` (``localise_value``); the
    parameters named in ``overrides`` (ports, and the digests' ``max_age`` so that the demo
    does not wait an hour) get the given values wherever a bot has them, and
    ``smtp_host`` becomes the loopback address. Nothing else changes.
    """
    runtime = json.loads(json.dumps(runtime))
    for bot_id, bot in runtime.items():
        if bot_id == "global":
            continue
        parameters = bot.setdefault("parameters", {})
        for key, value in list(parameters.items()):
            parameters[key] = localise_value(value, workdir)
        for key, value in overrides.items():
            if key in parameters:
                parameters[key] = value
        if "smtp_host" in parameters:
            parameters["smtp_host"] = LOOPBACK
    return runtime


def install_example_files(example: Path, workdir: Path) -> None:
    """Put the example's registry and token file (an example with an intake has one) where
    its localised runtime expects them."""
    target = workdir / "etc" / "nsm"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(example / "registry", target / "registry", dirs_exist_ok=True)
    if (example / "tokens.json").exists():
        shutil.copy2(example / "tokens.json", target / "tokens.json")


def example_feeds(example: Path, folder: str = "") -> list:
    """The feed reports of ``example`` (of its rescan: ``folder="rescan"``), sorted: CSV files
    a file collector picks up."""
    return sorted((Path(example) / FEEDS / folder).glob("*.csv"))


def bots_of(runtime: dict, module: str) -> list:
    """The ids of ``runtime``'s bots of ``module``."""
    return [b for b, bot in runtime.items() if b != "global" and bot.get("module") == module]


def feed_folders(runtime: dict) -> list:
    """The folders the runtime's file collectors read (``path``), one per collector."""
    return [Path(runtime[b]["parameters"]["path"]) for b in bots_of(runtime, FILE_COLLECTOR_MODULE)]


def install_feed_files(example: Path, runtime: dict, intelmq_root: Path) -> None:
    """Make the folders the file collectors read, and put the example's Shadowserver schema
    where IntelMQ's Shadowserver parser reads it (its state folder: ``var/lib/bots``)."""
    for folder in feed_folders(runtime):
        folder.mkdir(parents=True, exist_ok=True)
    schema = Path(example) / FEEDS / SHADOWSERVER_SCHEMA
    if schema.exists():
        state = Path(intelmq_root) / "var" / "lib" / "bots"
        state.mkdir(parents=True, exist_ok=True)
        shutil.copy2(schema, state / SHADOWSERVER_SCHEMA)


def drop_feed_file(report: Path, folder: Path) -> Path:
    """Deliver one feed report into a collector's folder as a whole: written under another
    name, then renamed, so that the collector never reads half a file."""
    target = Path(folder) / Path(report).name
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(report, partial)
    partial.replace(target)
    return target
