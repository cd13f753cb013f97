"""``intelmq-nsm demo``: run the example NSM→IBD pipeline end to end and show who got what, in
round one and in the researchers' rescan a week later."""

import json
import shutil
import tempfile
import time
from pathlib import Path

from intelmq_nsm.cli.terminal import say, say_lines, warn


def run(args) -> int:
    from intelmq_nsm.demo import Demo, DemoError
    from intelmq_nsm.demo.example import default_example

    started = time.monotonic()

    def progress(message: str) -> None:
        say(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    if args.tiers == 2:
        return run_two_tiers(args, progress)
    try:
        example = Path(args.example) if args.example else default_example()
    except DemoError as exc:
        warn(f"intelmq-nsm demo: {exc}")
        return 1
    workdir, keep = working_directory(args)
    demo = Demo(
        example,
        workdir,
        redis_url=args.redis_url,
        progress=progress,
        timeout=args.timeout,
        broker=args.broker,
        charts=Path(args.charts),
    )
    summary = played(demo.run, f"Logs and dumps are in {workdir / 'intelmq' / 'var' / 'log'}.")
    if summary is None:
        return 1
    say()
    say_lines(summary.render())
    write_json(args.json, summary.as_json(), "The summary of both rounds")
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
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_two_tiers(args, progress) -> int:
    """The hub and the CERTs' instances of runtime-examples/two-tiers (``--tiers 2``)."""
    from intelmq_nsm.demo.tiers import TWO_TIERS, TwoTierDemo, as_json, render

    folder = Path(args.example) if args.example else TWO_TIERS
    workdir, keep = working_directory(args)
    demo = TwoTierDemo(workdir, folder, progress=progress, timeout=args.timeout, charts=Path(args.charts))
    result = played(demo.run, f"Each instance's logs and dumps are in {workdir}/<instance>/intelmq/var/log.")
    if result is None:
        return 1
    say()
    say_lines("\n".join(render(result)))
    write_json(args.json, as_json(result), "Each tier's summary")
    if keep:
        say()
        say(f"Everything the demo wrote is in {workdir} (a folder per instance: hub, ibd, surf).")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def working_directory(args) -> tuple:
    """``(folder, kept)``: ``--workdir`` (kept), else a new temporary folder (removed after)."""
    if args.workdir is None:
        return Path(tempfile.mkdtemp(prefix="intelmq-nsm-demo-")), False
    # Absolute: the bots' paths in the runtime it lays out must not depend on their working directory.
    return Path(args.workdir).resolve(), True


def played(play, logs: str):
    """What ``play()`` returns; None, once it is said why and where ``logs`` are, when the
    demo failed."""
    from intelmq_nsm.demo import DemoError
    from intelmq_nsm.testbed.pipeline import HarnessError

    try:
        return play()
    except (DemoError, HarnessError) as exc:
        warn(f"intelmq-nsm demo: {exc}")
        warn(logs)
        return None


def write_json(path, document: dict, what: str) -> None:
    """``document`` into the file ``path`` (``--json``; nothing without one)."""
    if path:
        Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say()
        say(f"{what} is in {path}.")


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
