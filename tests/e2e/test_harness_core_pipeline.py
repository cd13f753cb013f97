"""The harness itself, on core IntelMQ bots only: file collector → generic CSV parser → file output."""

import shutil

import pytest

from tests.harness import redis_server_binary

pytestmark = pytest.mark.e2e

CSV = (
    "ip,port,first_seen\n"
    "192.0.2.10,443,2024-01-02T03:04:05+00:00\n"
    "not-an-address,80,2024-01-02T03:04:05+00:00\n"
    "198.51.100.7,8443,2024-01-02T04:05:06+00:00\n"
)


def core_runtime(inbox, events_file):
    return {
        "file-collector": {
            "module": "intelmq.bots.collectors.file.collector_file",
            "parameters": {
                "path": str(inbox),
                "postfix": ".csv",
                "delete_file": True,
                "rate_limit": 1,
                "name": "Harness CSV",
                "provider": "intelmq-nsm tests",
                "destination_queues": {"_default": ["csv-parser-queue"]},
            },
        },
        "csv-parser": {
            "module": "intelmq.bots.parsers.generic.parser_csv",
            "parameters": {
                "columns": ["source.ip", "source.port", "time.source"],
                "skip_header": True,
                "type": "vulnerable-system",
                "destination_queues": {"_default": ["file-output-queue"]},
            },
        },
        "file-output": {
            "module": "intelmq.bots.outputs.file.output",
            "parameters": {"file": str(events_file), "hierarchical_output": False},
        },
    }


def test_real_redis_and_intelmqctl_are_present():
    assert redis_server_binary()
    assert shutil.which("intelmqctl"), "intelmqctl is not on PATH: the package is not installed in this venv."


def test_core_bots_run_a_csv_report_to_a_file(tmp_path, intelmq_pipeline):
    inbox, events_file = tmp_path / "inbox", tmp_path / "events.jsonl"
    inbox.mkdir()
    pipeline = intelmq_pipeline(core_runtime(inbox, events_file))
    pipeline.start()
    (inbox / "report.csv").write_text(CSV, encoding="utf-8")

    events = pipeline.wait_for_file_output(events_file, count=2, timeout=60)

    assert [(e["source.ip"], e["source.port"]) for e in events] == [("192.0.2.10", 443), ("198.51.100.7", 8443)]
    assert {e["feed.name"] for e in events} == {"Harness CSV"}
    assert {e["classification.type"] for e in events} == {"vulnerable-system"}
    assert events[0]["time.source"] == "2024-01-02T03:04:05+00:00"
    pipeline.wait_drained()
    [dumped] = pipeline.wait_for_dumps("csv-parser")
    # The core parser dumps the report with the bad line (character-split, a known quirk
    # of ParserBot.recover_line_csv); the traceback names the value and the field.
    assert dumped["raw_text"].startswith("ip,port,first_seen\n")
    assert "InvalidValue" in dumped["traceback"]
    assert "'not-an-address'" in dumped["traceback"] and "source.ip" in dumped["traceback"]
    assert set(pipeline.dumps()) == {"csv-parser"}


def test_harness_injects_messages_and_reloads_a_running_bot(tmp_path, intelmq_pipeline):
    events_file = tmp_path / "events.jsonl"
    pipeline = intelmq_pipeline({
        "file-output": {
            "module": "intelmq.bots.outputs.file.output",
            "parameters": {"file": str(events_file)},
        },
    })  # fmt: skip
    pipeline.start()
    pipeline.push("file-output", {"__type": "Event", "source.ip": "192.0.2.1", "classification.type": "test"})
    assert pipeline.wait_for_file_output(events_file, count=1)[0]["source.ip"] == "192.0.2.1"

    pipeline.reload("file-output")
    pipeline.push("file-output", {"__type": "Event", "source.ip": "192.0.2.2", "classification.type": "test"})
    events = pipeline.wait_for_file_output(events_file, count=2)
    assert [e["source.ip"] for e in events] == ["192.0.2.1", "192.0.2.2"]
    pipeline.wait_drained()
    assert pipeline.status("file-output") == "running"
    assert pipeline.log_lines(level="ERROR") == []
