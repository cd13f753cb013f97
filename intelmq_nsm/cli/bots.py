"""``intelmq-nsm bots``: list the installed intelmq-nsm bots as IntelMQ sees them."""

import json

from intelmq_nsm.cli.terminal import say, say_json


def installed_bots() -> dict:
    """This package's bots from IntelMQ's own listing, keyed by entry-point name."""
    from intelmq.lib.utils import list_all_bots

    return {
        info["module"]: {"group": group, **info}
        for group, bots in list_all_bots().items()
        for info in bots.values()
        if ".nsm." in info["module"]
    }


def run(args) -> int:
    bots = installed_bots()
    if args.json:
        say_json(bots, sort_keys=True, default=str)
        return 0
    if not bots:
        say("No intelmq-nsm bots are installed.")
        return 1
    for name, info in sorted(bots.items()):
        say(f"{name}  ({info['group']})")
        say(f"    {info['description'].splitlines()[0]}")
        for param, default in sorted(info["parameters"].items()):
            say(f"      {param} = {json.dumps(default, default=str)}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bots", help="list the installed intelmq-nsm bots, their descriptions and parameters"
    )
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.set_defaults(func=run)
