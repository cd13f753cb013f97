"""The chain in two tiers against the chain as one installation, same run, same load.

Two tiers: runtime-examples/two-tiers as ``intelmq-nsm demo --tiers 2`` runs it (the test
bed's ``Tiers``: the hub, the IBD's and SURFcert's instances, each its own IntelMQ root and
Redis, a private RabbitMQ between them, the CERTs' claims taken by the hub, the return leg
to the hub's feedback service). One installation: benchmarks/chain.py's chain
(runtime-examples/nsm-ibd). The load is benchmarks/chain.py's: NSM reports of 5,000
findings each over the example registry's municipal IPv6 networks, every finding the
IBD's. The clock runs from the first report submitted (to the hub's intake, or the one
installation's) until every digest is delivered (at the IBD's instance, or the one
installation's); for the two tiers also until every CERT's outbox has reached the hub.
Rounds alternate the order, so that a change of the machine's load hits both alike.

    python benchmarks/two_tiers.py [--findings 10000 100000] [--rounds 1]

Run it as an unprivileged user with the venv that scripts/test built.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chain import PER_REPORT, single_chain  # noqa: E402
from intelmq_nsm.demo.summary import Summary, Tally  # noqa: E402
from intelmq_nsm.testbed.rabbitmq import RabbitMQServer  # noqa: E402
from intelmq_nsm.testbed.synthetic import synthetic_example  # noqa: E402
from intelmq_nsm.testbed.tiers import Tiers  # noqa: E402

EXAMPLE = ROOT / "runtime-examples" / "nsm-ibd"
TWO_TIERS = ROOT / "runtime-examples" / "two-tiers"
SNIPPETS = ROOT / "runtime-examples" / "forward-leg"


def run_tiers(findings: int, workdir: Path, rabbitmq) -> dict:
    """The two tiers with the synthetic reports submitted to the hub."""
    synthetic, expected = synthetic_example(EXAMPLE, workdir / "synthetic", findings, PER_REPORT)
    folder = workdir / "two-tiers"
    shutil.copytree(TWO_TIERS, folder, symlinks=False)
    shutil.rmtree(folder / "hub" / "reports")
    shutil.copytree(synthetic / "reports", folder / "hub" / "reports")
    tiers = Tiers.from_folders(folder, SNIPPETS, workdir / "run", rabbitmq, return_leg=True, timeout=7200)
    load_before = os.getloadavg()
    try:
        tiers.start()
        started = time.perf_counter()
        for report in tiers.hub.reports():
            status, _ = tiers.hub.submit(report)
            assert status == 202, status
        tiers.wait_until_delivered()
        delivered_s = time.perf_counter() - started
        tiers.wait_until_returned()
        returned_s = time.perf_counter() - started
        summary = Tally(tiers.chains["ibd"]).summarise(Summary())
    finally:
        tiers.close()
    delivered = sum(len(row["findings"]) for row in summary.rows)
    assert delivered == len(expected), (delivered, len(expected))
    return {
        "variant": "two-tiers",
        "findings": findings,
        "wall_s": round(delivered_s, 1),
        "findings_per_s": round(findings / delivered_s),
        "returned_s": round(returned_s, 1),
        "delivered_findings": delivered,
        "digests": sum(len(row["digests"]) for row in summary.rows),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, nargs="+", default=[10_000])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rabbitmq = RabbitMQServer(intelmqctl_port=False).start()
    try:
        for findings in args.findings:
            for number in range(args.rounds):
                order = ("two-tiers", "one-installation") if number % 2 == 0 else ("one-installation", "two-tiers")
                results = {}
                for variant in order:
                    workdir = Path(tempfile.mkdtemp(prefix=f"nsm-{variant}-"))
                    try:
                        if variant == "two-tiers":
                            results[variant] = run_tiers(findings, workdir, rabbitmq)
                        else:
                            results[variant] = single_chain(findings, workdir, variant)
                    finally:
                        shutil.rmtree(workdir, ignore_errors=True)
                    print(json.dumps({**results[variant], "round": number + 1}), flush=True)
                two, one = results["two-tiers"], results["one-installation"]
                print(
                    f"round {number + 1}, {findings} findings: two tiers {two['findings_per_s']} findings/s "
                    f"({two['wall_s']} s to the last digest, {two['returned_s']} s until the hub heard all), "
                    f"one installation {one['findings_per_s']} findings/s ({one['wall_s']} s): "
                    f"{two['findings_per_s'] / one['findings_per_s']:.2f}x",
                    flush=True,
                )
    finally:
        rabbitmq.stop()


if __name__ == "__main__":
    main()
