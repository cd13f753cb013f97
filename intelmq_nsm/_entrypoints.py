"""Derive the IntelMQ entry points of this package from its source tree.

Kept free of imports beyond the standard library: ``setup.py`` loads this file by path
before the package or IntelMQ is installed, and the packaging test compares the installed
entry points against it, so the registry of bots cannot drift from the code.
"""

import ast
from pathlib import Path

#: IntelMQ takes a bot's group from the third part of its import path
#: (``intelmq.lib.utils.list_all_bots``), so bots must live at bots/<group>/<name>/<kind>.py.
GROUPS = ("collectors", "parsers", "experts", "outputs")
KINDS = {"collectors": "collector", "parsers": "parser", "experts": "expert", "outputs": "output"}
ORG = "nsm"


def _defines_bot(path: Path) -> bool:
    """True if the module assigns ``BOT`` at top level."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "BOT" for t in node.targets)
        for node in tree.body
    )


def bot_modules(package_dir: Path) -> dict[str, str]:
    """Map IntelMQ bot names (``intelmq.bots.<group>.nsm.<name>``) to module paths."""
    found = {}
    for group in GROUPS:
        for module in sorted((package_dir / "bots" / group).glob(f"*/{KINDS[group]}.py")):
            if _defines_bot(module):
                name = module.parent.name
                found[f"intelmq.bots.{group}.{ORG}.{name}"] = f"intelmq_nsm.bots.{group}.{name}.{KINDS[group]}"
    return found


def console_scripts(package_dir: Path) -> list[str]:
    """The ``console_scripts`` lines setup.py registers: one per bot, plus the CLI."""
    lines = [f"{name} = {module}:BOT.run" for name, module in bot_modules(package_dir).items()]
    lines.append("intelmq-nsm = intelmq_nsm.cli:main")
    return lines
