"""``intelmq-nsm demo``: run the example NSM→IBD pipeline end to end and show who got what, in
round one and in the researchers' rescan a week later."""

import tempfile
import time
from pathlib import Path

from intelmq_nsm.cli.terminal import say, say_lines, warn


def run(args) -> int:
    from intelmq_nsm.demo import Demo, DemoError
    from intelmq_nsm.demo.example import default_example
    from intelmq_nsm.testbed.pipeline import HarnessError

    started = time.monotonic()

    def progress(message: str) -> None:
        say(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    try:
        example = Path(args.example) if args.example else default_example()
    except DemoError as exc:
        warn(f"intelmq-nsm demo: {exc}")
        return 1
    keep = args.workdir is not None
    # Absolute: the bots' paths in the runtime it lays out must not depend on their working directory.
    workdir = Path(args.workdir).resolve() if keep else Path(tempfile.mkdtemp(prefix="intelmq-nsm-demo-"))
    if args.tiers == 2:
        return run_two_tiers(args, workdir, keep, progress)
    demo = Demo(
        example,
        workdir,
        redis_url=args.redis_url,
        progress=progress,
        timeout=args.timeout,
        broker=args.broker,
        charts=Path(args.charts),
    )
    try:
        summary = demo.run()
    except (DemoError, HarnessError) as exc:
        warn(f"intelmq-nsm demo: {exc}")
        warn(f"Logs and dumps are in {workdir / 'intelmq' / 'var' / 'log'}.")
        return 1
    say()
    say_lines(summary.render())
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(summary.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say()
        say(f"The summary of both rounds is in {args.json}.")
    if summary.feedback.get("charts"):
        say()
        say(f"The cases' charts are kept in {Path(args.charts).resolve()}.")
    if keep:
        mails = summary.mail_report
        if mails.get("mails"):
            kept = Path(mails["folder"]).resolve()
            key = mails["public_key"]
            say()
            say(
                f"Every mail the SMTP sink received is kept in {kept}/ as an .eml file"
                + (f", the signing key's public half as {Path(key).resolve()}." if key else ".")
            )
        say()
        say(f"Everything the demo wrote is in {workdir}.")
        if demo.feedback.config_file is not None:
            folder = demo.feedback.config_file.parent
            say(f"Serve its feedback service again: intelmq-nsm serve --config {demo.feedback.config_file}")
            say(f"(the overview at /operators/login takes the token in {folder / 'operator-token.txt'}).")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_two_tiers(args, workdir: Path, keep: bool, progress) -> int:
    """The hub and the CERTs' instances of runtime-examples/two-tiers (``--tiers 2``)."""
    from intelmq_nsm.demo import DemoError
    from intelmq_nsm.demo.tiers import TWO_TIERS, TwoTierDemo, as_json, render
    from intelmq_nsm.testbed.pipeline import HarnessError

    folder = Path(args.example) if args.example else TWO_TIERS
    demo = TwoTierDemo(workdir, folder, progress=progress, timeout=args.timeout, charts=Path(args.charts))
    try:
        result = demo.run()
    except (DemoError, HarnessError) as exc:
        warn(f"intelmq-nsm demo: {exc}")
        warn(f"Each instance's logs and dumps are in {workdir}/<instance>/intelmq/var/log.")
        return 1
    say()
    say_lines("\n".join(render(result)))
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(as_json(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say()
        say(f"Each tier's summary is in {args.json}.")
    if keep:
        say()
        say(f"Everything the demo wrote is in {workdir} (a folder per instance: hub, ibd, surf).")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the example NSM→IBD pipeline on a private Redis and print who got which findings",
    )
    parser.add_argument(
        "--example",
        help="the example folder (default: runtime-examples/nsm-ibd of a source checkout, else the installed copy)",
    )
    parser.add_argument(
        "--workdir",
        help="keep everything in this folder, every mail as DIR/mails/*.eml with the signing key's public half "
        "(default: a temporary folder, removed)",
    )
    parser.add_argument(
        "--charts",
        default="charts",
        metavar="DIR",
        help="keep each case's chart in DIR, which outlives the demo (%(default)s, in the current folder)",
    )
    parser.add_argument("--redis-url", help="use this Redis (redis://host:port) instead of a private redis-server")
    parser.add_argument("--json", metavar="FILE", help="also write the summary of both rounds as JSON to FILE")
    parser.add_argument(
        "--broker",
        choices=("redis", "amqp"),
        default="redis",
        help="carry messages on Redis or on a private RabbitMQ (amqp; statistics stay on Redis) (%(default)s)",
    )
    parser.add_argument(
        "--tiers",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: the example as one installation; 2: the Meldpunt hub and the CERTs' own instances of "
        "runtime-examples/two-tiers, joined by a private RabbitMQ and the hub's feedback service (%(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for delivery (%(default)s)")
    parser.set_defaults(func=run)
