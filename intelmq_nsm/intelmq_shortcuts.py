"""Every place where intelmq-nsm goes past IntelMQ's public Message and Bot API, in one module.

Each shortcut avoids a cost measured on the per-message path (see benchmarks/RESULTS.md)
or reaches something IntelMQ has no public call for. ``tests/test_intelmq_shortcuts.py``
compares each one with the public API on the installed IntelMQ: when IntelMQ changes,
that test and this file show what broke.
"""

from intelmq.lib.message import Event


def put(event, key: str, value) -> None:
    """Store an already checked ``value`` under ``key``: what ``event.add(key, value,
    overwrite=True)`` stores, without its per-call harmonization look-ups.

    Only for values IntelMQ keeps as they are: ``extra.*`` keys (IntelMQ 3.5 checks their
    name by its form only, and the names are fixed in ``event_contract``), and a value that
    ``add`` stored once already (the constituency expert's ``constituency``). ``add``'s
    look-ups were a tenth of the expert's time per event."""
    dict.__setitem__(event, key, value)


def get(event, key: str, default=None):
    """``event.get(key, default)`` without ``Message.__getitem__``'s harmonization look-up per call."""
    return dict.get(event, key, default)


def as_dict(event) -> dict:
    """The event's flat keys and harmonised values, as ``event.to_dict()`` gives them
    (without ``jsonify_raw``), without its per-key type look-ups: a third of the digest
    output's own cost per event."""
    return dict(event)


def clone(template: Event) -> Event:
    """A copy of an Event whose values are already checked, without checking them again.

    An Event is a dict plus its harmonization (``Message.__init__`` sets
    ``harmonization_config`` and ``iterable``); ``Message.copy()`` re-runs the checks,
    a quarter of the parser's cost per event."""
    event = Event.__new__(Event)
    event.harmonization_config = template.harmonization_config
    event.iterable = {}
    dict.update(event, template)
    return event


def dump(bot, error: str, message) -> None:
    """Write ``message`` (a Message, or bytes of its JSON) to the bot's dump file with the
    reason ``error``, as IntelMQ does for a message that failed, and go on.

    IntelMQ dumps only the message being processed when ``process`` raises; a bot that
    must dump one record of a report (or a spooled report) and keep the rest has no public
    call, so this is ``Bot._dump_message``."""
    bot._dump_message(error, message)
