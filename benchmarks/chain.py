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

Run it as an unprivileged user with the venv that scripts/test or scripts/main built.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intelmq_nsm.demo import Demo, Summary  # noqa: E402
from intelmq_nsm.demo.pipeline import VENV_BIN, Pipeline, wait_for  # noqa: E402
from intelmq_nsm.demo.synthetic import synthetic_example  # noqa: E402

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
    demo = Demo(example, workdir / "run", progress=lambda message: None, timeout=3600)
    runtime = demo.preflight()
    try:
        # intelmqctl check imports every bot's module, which the launcher is not.
        demo.start(runtime, check=variant == "nsm")
        started = time.perf_counter()
        for report in demo.reports():
            status, _ = demo.submit(report)
            assert status == 202, status
        submitted = time.perf_counter() - started
        if variant == "passthrough":
            out = Path(demo.pipeline.runtime["unclaimed-file-output"]["parameters"]["file"])
            wait_for(lambda: len(Pipeline.read_file_output(out)) >= findings, timeout=3600, interval=0.2)
        else:
            wait_for(demo.settled, timeout=3600, interval=0.2, what="delivery")
        wall = time.perf_counter() - started
        summary = demo.summarise(Summary()) if variant == "nsm" else None
    finally:
        demo.close()
    result = {"variant": variant, "findings": findings, "submit_s": submitted, "wall_s": wall}
    result["events_per_s"] = findings / wall
    if summary is not None:
        delivered = sum(len(row["findings"]) for row in summary.rows)
        result["delivered_findings"] = delivered
        result["digests"] = sum(len(row["digests"]) for row in summary.rows)
        assert delivered == len(expected), (delivered, len(expected))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
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
