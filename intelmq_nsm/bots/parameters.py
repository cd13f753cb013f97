"""Parameters as the IntelMQ Manager writes them: an empty string where the default is empty.

The Manager shows each parameter's default in a text field and saves what the field holds,
so a bot added from the palette and saved gets ``''`` for every parameter whose default is
``None`` (``case: ''``, ``spool_file: ''``). For the bots of this package an empty string
in an optional parameter (one whose type allows ``None``) means what leaving it out means:
the class default.
"""

import typing


def _allows_none(annotation) -> bool:
    if isinstance(annotation, str):  # postponed annotations
        return "Optional[" in annotation or "None" in annotation.split("|")
    return type(None) in typing.get_args(annotation)


def optional_parameters(bot_class) -> dict:
    """Name → class default of every optional parameter the class and its bases (up to
    IntelMQ's ``Bot``, whose own settings are not the bot's parameters) declare."""
    from intelmq.lib.bot import Bot

    found = {}
    for cls in bot_class.__mro__:
        if cls is Bot or not issubclass(cls, Bot):
            continue
        for name, annotation in vars(cls).get("__annotations__", {}).items():
            if not name.startswith("_") and name not in found and _allows_none(annotation):
                found[name] = getattr(bot_class, name, None)
    return found


def unset_empty(bot) -> list:
    """Give each optional parameter the bot got as ``''`` its class default; return their names."""
    names = [name for name in optional_parameters(type(bot)) if getattr(bot, name, None) == ""]
    for name in names:
        setattr(bot, name, getattr(type(bot), name))
    return names


def without_empty(bot_class, parameters: dict) -> dict:
    """``parameters`` (as ``check()`` gets them) without the optional ones that are ``''``."""
    optional = optional_parameters(bot_class)
    return {name: value for name, value in parameters.items() if not (value == "" and name in optional)}
