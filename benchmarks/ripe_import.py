"""The RIPE database import on a synthetic split dump: objects/s on one core and peak memory.

Generates (once, kept in ``--dir``) a dump of ``--objects`` inetnum/inet6num objects plus
organisations (``ripe_dump_data.py``), then, each in a child process of its own so that
its peak resident memory is its own:

- ``import``: ``intelmq-nsm constituency import ripe DIR --country NL`` as an operator
  runs it (organisations pass, resources pass, review, registry and report written);
- ``parse``: every object of the resource dumps parsed in full by the RPSL reader (the
  work the import spares the objects that cannot match), for comparison.

Prints wall time, CPU time (user + system) of the child, objects/s of CPU and of wall
time, and the child's peak RSS; the load average before and after each run.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ripe_dump_data import write_dumps

ROOT = Path(__file__).resolve().parents[1]

IMPORT = """
import argparse, sys
from intelmq_nsm.cli import constituency
parser = argparse.ArgumentParser()
constituency.register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""

PARSE = """
import sys
from intelmq_nsm.constituency.rpsl import open_dump, read_objects
count = 0
for path in sys.argv[1:]:
    with open_dump(path) as stream:
        for attributes in read_objects(stream):
            count += attributes[0][0] in ("inetnum", "inet6num")
print(count)
"""


def child(code: str, argv: list) -> dict:
    """Run ``code`` in a fresh Python; its wall time, CPU time, peak RSS and standard output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode not in (0,):
        raise SystemExit(f"The child failed with exit code {proc.returncode}: {out}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024, "out": out}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5_000_000, help="inetnum + inet6num objects (default 5,000,000)")
    parser.add_argument("--dir", type=Path, help="where the dump is kept (default /tmp/nsm-ripe-bench-OBJECTS)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    directory = args.dir or Path(f"/tmp/nsm-ripe-bench-{args.objects}")
    stamp = directory / "complete"
    if not stamp.exists():
        started = time.perf_counter()
        counts = write_dumps(directory, args.objects)
        stamp.write_text(repr(counts))
        print(f"generated {counts} in {time.perf_counter() - started:.0f} s")
    counts = eval(stamp.read_text())  # noqa: S307 (our own file: a dict literal)
    sizes = {p.name: p.stat().st_size for p in sorted(directory.glob("ripe.db.*.gz"))}
    print(f"dump: {counts}; gzip sizes {', '.join(f'{n} {s / 2**20:.0f} MiB' for n, s in sizes.items())}")
    resources = counts["inetnum"] + counts["inet6num"]
    out = directory / "out"
    out.mkdir(exist_ok=True)
    dumps = [str(directory / "ripe.db.inetnum.gz"), str(directory / "ripe.db.inet6num.gz")]
    for round_number in range(1, args.rounds + 1):
        import_argv = [
            "constituency", "import", "ripe", str(directory), "--country", "NL", "--dump-date", "2026-12-01",
            "-o", str(out / "ripe-import.csv"), "--report", str(out / "review"),
        ]  # fmt: skip
        for name, code, argv in (("import", IMPORT, import_argv), ("parse", PARSE, dumps)):
            before = load()
            result = child(code, argv)
            summary = result["out"].strip().splitlines()[-1]
            print(
                f"round {round_number} {name:>6}: {resources} objects, CPU {result['cpu']:6.1f} s "
                f"({resources / result['cpu']:8,.0f} objects/s), wall {result['wall']:6.1f} s "
                f"({resources / result['wall']:8,.0f} objects/s), peak RSS {result['rss_mb']:5.0f} MB; "
                f"{before} -> {load()[13:]}"
            )
            print(f"    {summary}")


if __name__ == "__main__":
    main()
