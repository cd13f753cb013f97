"""Report parser: events/s on a 100,000-row DIVD CSV against IntelMQ's generic CSV parser,
and peak memory on 1,000,000-finding reports of each format.

Method (the same for both parsers): each bot is built in IntelMQ's library mode
(``BotLibSettings``) and its ``process()`` is called directly on one Report message;
``send_message`` is replaced by a function that serialises each event exactly as the
pipeline would before handing it to Redis, and drops it (no Redis, no output list, so
memory is the parser's own). Run as an unprivileged user (IntelMQ refuses root):

    python benchmarks/report_parser.py            # throughput, 100,000 rows, 3 rounds
    python benchmarks/report_parser.py --memory   # peak memory, 1,000,000 findings per format
"""

import argparse
import base64
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The case parameter of the parser's catalogue page; the parser's tests use it too.
CASE = json.loads((REPO / "harmonization" / "examples" / "case-parameter.json").read_text(encoding="utf-8"))
HEADER = "ip,abuse,prefix,asn,holder,country,city,abuse_source\n"
CORE_COLUMNS = [
    "source.ip",
    "source.abuse_contact",
    "source.network",
    "source.asn",
    "source.as_name",
    "source.geolocation.cc",
    "source.geolocation.city",
    "extra.abuse_source",
]


def address(i: int) -> str:
    # Distinct addresses from the documentation prefix 2001:db8::/32 (findings must differ,
    # or the parser rightly merges them).
    return f"2001:db8::{i >> 16:x}:{i & 0xFFFF:x}"


def divd_csv(rows: int) -> str:
    lines = [HEADER]
    for i in range(rows):
        lines.append(f"{address(i)},abuse@isp.example,2001:db8::/32,64496,Example ISP B.V.,NL,Utrecht,ripe\n")
    return "".join(lines)


def nuclei_jsonl(rows: int) -> str:
    lines = []
    for i in range(rows):
        ip = address(i)
        line = {
            "template-id": "CVE-2024-3400",
            "info": {
                "name": "Example Gateway - Command Injection",
                "severity": "critical",
                "classification": {"cve-id": ["cve-2024-3400"]},
            },
            "type": "http",
            "host": ip,
            "port": "443",
            "scheme": "https",
            "url": f"https://[{ip}]:443",
            "matched-at": f"https://[{ip}]:443/global-protect/login.esp",
            "ip": ip,
            "timestamp": "2024-04-15T08:30:00.123456789Z",
            "matcher-status": True,
        }
        lines.append(json.dumps(line) + "\n")
    return "".join(lines)


def nsm_report(rows: int) -> str:
    parts = ['{"schema": "nsm-report/1", "case": ', json.dumps(CASE), ', "findings": [']
    for i in range(rows):
        if i:
            parts.append(", ")
        parts.append(
            json.dumps(
                {
                    "ip": address(i),
                    "port": 443,
                    "transport": "tcp",
                    "protocol": "https",
                    "observed": "2024-04-15T08:30:00Z",
                    "evidence": "Server: Example-Gateway/10.2.7",
                }
            )
        )
    parts.append("]}")
    return "".join(parts)


def make_report(text: str):
    from intelmq.lib.message import Report

    raw = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return Report({"feed.name": "Benchmark", "raw": raw}, auto=True)


def make_bot(kind: str):
    from intelmq.lib.bot import BotLibSettings

    settings = dict(BotLibSettings, logging_level="WARNING")
    if kind == "core-csv":
        from intelmq.bots.parsers.generic.parser_csv import GenericCsvParserBot

        settings.update(columns=CORE_COLUMNS, skip_header=True, type="vulnerable-system")
        return GenericCsvParserBot("bench-core-csv", settings=settings)
    from intelmq_nsm.bots.parsers.report.parser import NSMReportParserBot

    settings.update(case=CASE)
    return NSMReportParserBot("bench-nsm-report", settings=settings)


def run(bot, report) -> tuple:
    """Process one report; return (events, wall seconds, CPU seconds of this process)."""
    from intelmq.lib.message import MessageFactory

    counter = {"events": 0}

    def send_message(*messages, path="_default", **_):
        for message in messages:
            MessageFactory.serialize(message)  # what the pipeline does before Redis
            counter["events"] += 1

    bot.send_message = send_message
    bot.receive_message = lambda: report
    bot.acknowledge_message = lambda: None
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    bot.process()
    return counter["events"], time.perf_counter() - start, time.process_time() - cpu_start


def throughput(rows: int, rounds: int):
    """Both parsers in turns on the same report. On a machine shared with other work, wall
    time depends on the neighbours; CPU time of this process much less, so the ratio is
    taken from CPU time, and wall time is printed beside it."""
    report = make_report(divd_csv(rows))
    bots = {"core-csv": make_bot("core-csv"), "nsm-report": make_bot("nsm-report")}
    best = {}
    for round_number in range(1, rounds + 1):
        for name, bot in bots.items():  # alternate, so that both see the same machine state
            events, wall, cpu = run(bot, report)
            assert events == rows, f"{name} sent {events} events of {rows}."
            best[name] = max(best.get(name, 0), events / cpu)
            print(
                f"round {round_number} {name:>10}: {events} events, {events / cpu:6.0f} events/s of CPU time "
                f"({cpu:5.1f} s), {events / wall:6.0f} events/s of wall time ({wall:5.1f} s)",
                flush=True,
            )
    ratio = best["nsm-report"] / best["core-csv"]
    print(
        f"best of {rounds} (CPU time): nsm-report {best['nsm-report']:.0f} events/s, "
        f"core generic CSV {best['core-csv']:.0f} events/s, ratio {ratio:.2f}x"
    )


def status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def memory_child(fmt: str, rows: int):
    """One format in a fresh process: RSS with the report built (as an IntelMQ Report
    message), and the peak RSS while the parser works through it."""
    bot = make_bot("nsm-report")
    text = {"divd-csv": divd_csv, "nuclei": nuclei_jsonl, "nsm-report/1": nsm_report}[fmt](rows)
    size = len(text)
    report = make_report(text)
    del text
    gc.collect()
    before = status_mib("VmRSS")
    reset_peak()
    events, seconds, _ = run(bot, report)
    peak = status_mib("VmHWM")
    result = {
        "format": fmt,
        "findings": rows,
        "report_mib": round(size / 2**20, 1),
        "events": events,
        "seconds": round(seconds, 1),
        "rss_with_report_mib": round(before),
        "peak_during_parse_mib": round(peak),
        "growth_mib": round(peak - before),
    }
    print(json.dumps(result))


def memory(rows: int):
    for fmt in ("divd-csv", "nuclei", "nsm-report/1"):
        result = subprocess.run(
            [sys.executable, __file__, "--memory-child", fmt, "--rows", str(rows)],
            capture_output=True,
            text=True,
            check=False,
        )
        print(result.stdout.strip() or result.stderr[-2000:], flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-child", default=None)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.rows)
    elif args.memory:
        memory(args.rows or 1_000_000)
    else:
        throughput(args.rows or 100_000, args.rounds)


if __name__ == "__main__":
    main()
