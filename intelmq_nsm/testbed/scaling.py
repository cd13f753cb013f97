"""Runtime layouts past one process per bot: N instances behind ``load_balance``, two hosts.

Plain dictionary work on a runtime (as loaded from runtime.yaml), shared by the tests and
benchmarks/chain.py, so that what is measured is what is tested.
"""

import json

#: The bots that may run as several instances of one bot id's parameters (see README, Scaling).
SCALABLE = ("nsm-report-parser", "nsm-constituency-expert")


class LayoutError(ValueError):
    """A runtime cannot be laid out as asked."""


def instance_ids(bot_id: str, instances: int) -> list:
    return [f"{bot_id}-{n}" for n in range(1, instances + 1)]


def scale_out(runtime: dict, bot_id: str, instances: int) -> dict:
    """``runtime`` with ``bot_id`` replaced by ``instances`` bot ids of the same parameters.

    Each bot that sent to ``bot_id``'s queue sends to the instances' queues instead, with
    ``load_balance: true``, which hands each message to one queue in turn. IntelMQ 3.5 keeps
    one turn counter for all paths of a bot, so a load-balancing bot's paths must all have
    the same number of queues (else IndexError): that is checked here.
    """
    runtime = json.loads(json.dumps(runtime))
    if instances < 1:
        raise LayoutError(f"instances must be at least 1, not {instances}.")
    if instances == 1:
        return runtime
    if bot_id not in runtime:
        raise LayoutError(f"The runtime has no bot {bot_id!r} to scale out.")
    template = runtime.pop(bot_id)
    queue = template.get("parameters", {}).get("source_queue") or f"{bot_id}-queue"
    ids = instance_ids(bot_id, instances)
    upstream = 0
    for other_id, other in runtime.items():
        if other_id == "global":
            continue
        parameters = other.get("parameters", {})
        paths = parameters.get("destination_queues", {})
        if not any(queue in queues for queues in paths.values()):
            continue
        upstream += 1
        for path, queues in paths.items():
            if queues == [queue]:
                paths[path] = [f"{i}-queue" for i in ids]
            elif queue in queues:
                raise LayoutError(
                    f"{other_id} sends path {path!r} to {queue} and other queues: load_balance would "
                    "deal those out too."
                )
        if len({len(queues) for queues in paths.values()}) > 1:
            raise LayoutError(
                f"{other_id}'s paths have different numbers of queues, which IntelMQ's load_balance cannot take."
            )
        parameters["load_balance"] = True
    if not upstream:
        raise LayoutError(f"No bot sends to {queue}: nothing to balance.")
    for n, instance in enumerate(ids, start=1):
        bot = json.loads(json.dumps(template))
        bot["bot_id"] = instance
        bot["name"] = f"{template.get('name', bot_id)} ({n} of {instances})"
        bot.get("parameters", {}).pop("source_queue", None)
        runtime[instance] = bot
    return runtime


def split_hosts(runtime: dict, hosts: dict) -> dict:
    """One runtime per host: ``hosts`` maps a host name to the bot ids it runs.

    Every bot goes to exactly one host; the ``global`` settings go to all. A bot's
    destination queues stay as they are: the queues live on the shared broker, so a bot on
    one host sends to a bot on the other by queue name alone.
    """
    bots = [b for b in runtime if b != "global"]
    placed = [b for ids in hosts.values() for b in ids]
    if sorted(placed) != sorted(bots):
        missing, extra = set(bots) - set(placed), set(placed) - set(bots)
        twice = {b for b in placed if placed.count(b) > 1}
        raise LayoutError(
            f"Every bot on one host: missing {sorted(missing)}, unknown {sorted(extra)}, twice {sorted(twice)}."
        )
    result = {}
    for host, ids in hosts.items():
        part = {"global": json.loads(json.dumps(runtime.get("global", {})))}
        for bot_id in ids:
            part[bot_id] = json.loads(json.dumps(runtime[bot_id]))
        result[host] = part
    return result
