"""``intelmq-nsm feedback answers``: the answers of owners and the ticket system, as CSV or JSON."""

from intelmq_nsm.cli.terminal import say_csv, say_json, warn


def _answers(args) -> int:
    from intelmq_nsm.auth.tokens import parse_time
    from intelmq_nsm.digest.ledger import Ledger
    from intelmq_nsm.feedback import config as config_mod
    from intelmq_nsm.feedback import export

    try:
        config = config_mod.load(args.config)
        since = parse_time(args.since).timestamp() if args.since else None
    except (config_mod.ConfigError, ValueError) as exc:
        warn(f"intelmq-nsm feedback answers: {exc}")
        return 2
    ledger = Ledger(config.ledger_url, name=config.ledger_name)
    try:
        rows = export.answers(ledger, since)
    finally:
        ledger.close()
    if args.json:
        say_json(rows, ensure_ascii=False)
    else:
        say_csv(export.to_csv(rows))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("feedback", help="the feedback service's records: the answers given")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    answers = actions.add_parser("answers", help="every answer (owners' and the ticket system's), CSV by default")
    answers.add_argument("--config", required=True, help="the feedback service's configuration file")
    answers.add_argument("--since", help="only answers from this ISO 8601 date or time on")
    answers.add_argument("--json", action="store_true", help="JSON instead of CSV")
    answers.set_defaults(func=_answers)
