"""``intelmq-nsm serve``: the feedback service (owners' pages, the ticket system's API)."""

import logging
import signal
import sys
import threading

from intelmq_nsm.cli.terminal import say, warn
from intelmq_nsm.feedback.service import build


def _serve(args) -> int:
    from intelmq_nsm.feedback import config as config_mod
    from intelmq_nsm.feedback.links import SecretError, create_secret

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        warn(f"intelmq-nsm serve: {exc}")
        return 2
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.create_secret and create_secret(config.secret_file):
        warn(f"A new feedback secret was written to {config.secret_file}.")
    try:
        server = build(config).start()
    except (SecretError, OSError, ValueError) as exc:
        warn(f"intelmq-nsm serve: {exc}")
        return 2
    say(f"Feedback service listening on http://{config.host}:{server.port}/ (ledger {config.ledger_name}).")
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    server.context.store.close()
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the feedback service: owners' pages and POST /v1/feedback")
    parser.add_argument("--config", required=True, help="the service's configuration file (YAML)")
    parser.add_argument("--host", help="listen on this address instead of the file's host")
    parser.add_argument("--port", type=int, help="listen on this port instead of the file's port (0: any free one)")
    parser.add_argument(
        "--create-secret", action="store_true", help="write a new random secret to secret_file if there is none"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(func=_serve)
