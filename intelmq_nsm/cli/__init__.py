"""The ``intelmq-nsm`` command.

Each module in this package that defines ``register(subparsers)`` adds one subcommand,
so a new command is a new module and nothing else changes.
"""

import argparse
import importlib
import os
import pkgutil
import sys

#: The exit status when the reader of standard output went away (``| head``): 128 + SIGPIPE,
#: what the shell reports for a tool that SIGPIPE ended, so that ``set -o pipefail`` notices
#: the output was cut short, and no status the commands use for an answer (1, 2, 3).
EXIT_PIPE_CLOSED = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="intelmq-nsm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            return args.func(args) or 0
        finally:
            sys.stdout.flush()  # here, not at exit, where a closed pipe could only be reported
    except BrokenPipeError:
        # The reader stopped reading: stop quietly. Standard output now points at
        # /dev/null, so that the interpreter's last flush finds nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED


if __name__ == "__main__":
    sys.exit(main())
