"""Wall time of the whole example chain, from the first submission to the last digest delivered.

The example runtime (runtime-examples/nsm-ibd) runs as ``intelmq-nsm demo`` runs it: a
private redis-server, every bot started by intelmqctl, the reports POSTed to the intake.
The load is synthetic: NSM reports of 5,000 findings each, spread over the example
registry's municipal IPv6 networks, so every finding is routed to a municipality and
delivered twice (by mail to the SMTP sink and as a file to the archive).

In the same run, the same chain with the constituency expert replaced by a pass-through
expert (benchmarks/passthrough_expert.py): it cannot route, so its events leave on
``_default`` for the core file output, and its clock stops when the last event is
written there. The ratio therefore compares routing *plus* digest delivery against
writing events to a file: it bounds what intelmq-nsm's routing and delivery cost.

    python benchmarks/chain.py [--findings 10000 100000]

With ``--broker`` or ``--instances`` it compares layouts of the same chain instead:
``--broker redis amqp`` (messages on Redis or on a private RabbitMQ, IntelMQ's AMQP
pipeline, statistics on Redis either way) and ``--instances 1 2`` (the constituency
expert as N bot ids behind ``load_balance``), every combination once per round, rounds
alternating the order so that a change of the machine's load hits all alike. Each run
prints its wall time, the load average before and after, and the CPU time each bot
process (and the broker) used per finding, read from /proc after the run.

    python benchmarks/chain.py --broker redis amqp --instances 1 --findings 10000 --rounds 2

Run it as an unprivileged user with the venv that scripts/test or scripts/main built.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intelmq_nsm.demo.summary import Summary, Tally  # noqa: E402
from intelmq_nsm.testbed.chain import ExampleChain  # noqa: E402
from intelmq_nsm.testbed.pipeline import VENV_BIN, Pipeline, wait_for  # noqa: E402
from intelmq_nsm.testbed.rabbitmq import RabbitMQServer  # noqa: E402
from intelmq_nsm.testbed.scaling import scale_out  # noqa: E402
from intelmq_nsm.testbed.synthetic import synthetic_example  # noqa: E402

EXAMPLE = ROOT / "runtime-examples" / "nsm-ibd"
PER_REPORT = 5000
EXPERT = "nsm-constituency-expert"
#: intelmqctl starts a bot by running its module name as a program: the pass-through
#: expert gets a launcher of that name in the venv's bin for the time of the run.
PASSTHROUGH_MODULE = "intelmq.bots.experts.nsm_benchmark_passthrough"


def install_passthrough() -> Path:
    launcher = VENV_BIN / PASSTHROUGH_MODULE
    launcher.write_text(
        f"#!{sys.executable}\nimport runpy, sys\n"
        f"runpy.run_path({str(ROOT / 'benchmarks' / 'passthrough_expert.py')!r}, run_name='__main__')\n",
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return launcher


def passthrough_runtime(example: Path) -> None:
    """Replace the constituency expert of ``example``'s runtime by the pass-through expert."""
    path = example / "runtime.yaml"
    runtime = yaml.safe_load(path.read_text(encoding="utf-8"))
    runtime[EXPERT]["module"] = PASSTHROUGH_MODULE
    runtime[EXPERT]["parameters"] = {"destination_queues": {"_default": ["unclaimed-file-output-queue"]}}
    path.write_text(yaml.safe_dump(runtime), encoding="utf-8")


def run(variant: str, findings: int, workdir: Path) -> dict:
    example, expected = synthetic_example(EXAMPLE, workdir / "example", findings, PER_REPORT)
    if variant == "passthrough":
        passthrough_runtime(example)
    chain = ExampleChain(example, workdir / "run", timeout=3600)
    runtime = chain.runtime()
    try:
        # intelmqctl check imports every bot's module, which the launcher is not.
        chain.start(runtime, check=variant == "nsm")
        started = time.perf_counter()
        for report in chain.reports():
            status, _ = chain.submit(report)
            assert status == 202, status
        submitted = time.perf_counter() - started
        if variant == "passthrough":
            out = Path(chain.pipeline.runtime["unclaimed-file-output"]["parameters"]["file"])
            wait_for(lambda: len(Pipeline.read_file_output(out)) >= findings, timeout=3600, interval=0.2)
        else:
            wait_for(chain.settled, timeout=3600, interval=0.2, what="delivery")
        wall = time.perf_counter() - started
        summary = Tally(chain).summarise(Summary()) if variant == "nsm" else None
    finally:
        chain.close()
    result = {"variant": variant, "findings": findings, "submit_s": submitted, "wall_s": wall}
    result["events_per_s"] = findings / wall
    if summary is not None:
        delivered = sum(len(row["findings"]) for row in summary.rows)
        result["delivered_findings"] = delivered
        result["digests"] = sum(len(row["digests"]) for row in summary.rows)
        assert delivered == len(expected), (delivered, len(expected))
    return result


def single_chain(findings: int, workdir: Path, variant: str = "single-chain") -> dict:
    """The example chain's run (``run("nsm", ...)``) as the federation benchmarks report it
    beside their own: findings/s, digests and the load before and after."""
    load_before = os.getloadavg()
    result = run("nsm", findings, workdir)
    return {
        "variant": variant,
        "findings": findings,
        "wall_s": round(result["wall_s"], 1),
        "findings_per_s": round(result["events_per_s"]),
        "delivered_findings": result["delivered_findings"],
        "digests": result["digests"],
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_seconds(pid) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(chain, rabbitmq) -> dict:
    """CPU seconds so far of every bot process, the Redis and (on AMQP) the RabbitMQ node."""
    cpu = {bot_id: cpu_seconds(chain.pipeline.pid(bot_id)) for bot_id in chain.pipeline.bot_ids}
    cpu["redis-server"] = cpu_seconds(chain.redis.process.pid)
    if chain.broker == "amqp":
        cpu["rabbitmq"] = sum(cpu_seconds(pid) for pid in rabbitmq._group_pids())
    return cpu


def run_layout(broker: str, instances: int, findings: int, workdir: Path, rabbitmq, per_report: int) -> dict:
    """The nsm chain with messages on ``broker`` and ``instances`` constituency experts."""
    example, expected = synthetic_example(EXAMPLE, workdir / "example", findings, per_report)
    chain = ExampleChain(example, workdir / "run", timeout=3600, broker=broker, rabbitmq=rabbitmq)
    runtime = scale_out(chain.runtime(), EXPERT, instances)
    load_before = os.getloadavg()
    try:
        chain.start(runtime)  # intelmqctl check included: see ExampleChain.start for AMQP
        idle = process_cpu(chain, rabbitmq)
        started = time.perf_counter()
        for report in chain.reports():
            status, _ = chain.submit(report)
            assert status == 202, status
        wait_for(chain.settled, timeout=3600, interval=0.2, what="delivery")
        wall = time.perf_counter() - started
        busy = process_cpu(chain, rabbitmq)
        summary = Tally(chain).summarise(Summary())
    finally:
        chain.close()
    delivered = sum(len(row["findings"]) for row in summary.rows)
    assert delivered == len(expected), (delivered, len(expected))
    # Instances of one bot count together: the CPU per finding of the bot, however scaled.
    per_bot = {}
    for name, seconds in busy.items():
        base = EXPERT if name.startswith(f"{EXPERT}-") else name
        per_bot[base] = per_bot.get(base, 0.0) + seconds - idle.get(name, 0.0)
    return {
        "broker": broker,
        "expert_instances": instances,
        "findings": findings,
        "per_report": per_report,
        "wall_s": round(wall, 1),
        "findings_per_s": round(findings / wall),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_ms_per_finding": {b: round(1000 * s / findings, 3) for b, s in sorted(per_bot.items())},
        "cpu_ms_per_finding_total": round(1000 * sum(per_bot.values()) / findings, 3),
    }


def compare_layouts(args) -> None:
    layouts = [(b, n) for b in args.broker for n in args.instances]
    rabbitmq = RabbitMQServer(intelmqctl_port=False).start() if "amqp" in args.broker else None
    results = {layout: [] for layout in layouts}
    try:
        for findings in args.findings:
            for number in range(args.rounds):
                order = layouts if number % 2 == 0 else list(reversed(layouts))
                for broker, instances in order:
                    workdir = Path(tempfile.mkdtemp(prefix=f"nsm-chain-{broker}-{instances}-"))
                    try:
                        result = run_layout(broker, instances, findings, workdir, rabbitmq, args.per_report)
                    finally:
                        shutil.rmtree(workdir, ignore_errors=True)
                    result["round"] = number + 1
                    results[(broker, instances)].append(result)
                    print(json.dumps(result), flush=True)
                line = ", ".join(f"{b} x{n}: {results[(b, n)][-1]['wall_s']} s" for b, n in layouts)
                print(f"round {number + 1}, {findings} findings: {line}", flush=True)
    finally:
        if rabbitmq is not None:
            rabbitmq.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--broker", nargs="+", choices=("redis", "amqp"), help="compare brokers (see above)")
    parser.add_argument("--instances", type=int, nargs="+", help="constituency expert instances to compare")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the layout comparison (%(default)s)")
    # On AMQP a report must be parsed within IntelMQ's fixed 10 s heartbeat (about 20 s
    # before the broker drops the connection and delivers it again): see README, Scaling.
    parser.add_argument(
        "--per-report", type=int, default=500, help="findings per report of the comparison (%(default)s)"
    )
    args = parser.parse_args()
    if args.broker or args.instances:
        args.broker = args.broker or ["redis"]
        args.instances = args.instances or [1]
        compare_layouts(args)
        return
    launcher = install_passthrough()
    try:
        for findings in args.findings:
            results = {}
            for variant in ("nsm", "passthrough"):
                workdir = Path(tempfile.mkdtemp(prefix=f"nsm-chain-{variant}-"))
                try:
                    results[variant] = run(variant, findings, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                print(json.dumps(results[variant]), flush=True)
            nsm, passthrough = results["nsm"], results["passthrough"]
            print(
                f"{findings} findings: chain {nsm['wall_s']:.1f} s ({nsm['events_per_s']:.0f} findings/s, "
                f"{nsm['digests']} digests); pass-through chain {passthrough['wall_s']:.1f} s "
                f"({passthrough['events_per_s']:.0f} events/s); ratio {passthrough['wall_s'] / nsm['wall_s']:.2f}",
                flush=True,
            )
    finally:
        launcher.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
