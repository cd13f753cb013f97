"""Runtime layouts for several instances and several hosts (intelmq_nsm.testbed.scaling)."""

from pathlib import Path

import pytest
import yaml

from intelmq_nsm.testbed.scaling import LayoutError, scale_out, split_hosts

EXAMPLE = Path(__file__).resolve().parents[1] / "runtime-examples" / "nsm-ibd" / "runtime.yaml"


@pytest.fixture
def runtime():
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def test_scale_out_replaces_a_bot_by_instances_and_balances_the_bot_in_front(runtime):
    scaled = scale_out(runtime, "nsm-constituency-expert", 3)
    ids = [f"nsm-constituency-expert-{n}" for n in (1, 2, 3)]
    assert "nsm-constituency-expert" not in scaled
    for bot_id in ids:
        assert scaled[bot_id]["bot_id"] == bot_id
        assert scaled[bot_id]["parameters"] == {**runtime["nsm-constituency-expert"]["parameters"]}
    front = scaled["deduplicator-expert"]["parameters"]
    assert front["load_balance"] is True
    assert front["destination_queues"] == {"_default": [f"{b}-queue" for b in ids]}
    assert runtime["deduplicator-expert"]["parameters"].get("load_balance") is None  # input untouched


def test_scale_out_by_one_changes_nothing(runtime):
    assert scale_out(runtime, "nsm-report-parser", 1) == runtime


def test_scale_out_refuses_a_bot_in_front_whose_paths_differ_in_length(runtime):
    """IntelMQ 3.5's load_balance shares one turn counter between paths: IndexError otherwise."""
    runtime["deduplicator-expert"]["parameters"]["destination_queues"]["audit"] = ["a-queue", "b-queue"]
    with pytest.raises(LayoutError, match="different numbers of queues"):
        scale_out(runtime, "nsm-constituency-expert", 3)
    assert scale_out(runtime, "nsm-constituency-expert", 2)["deduplicator-expert"]["parameters"]["load_balance"]


def test_scale_out_refuses_a_path_that_also_feeds_another_queue(runtime):
    runtime["deduplicator-expert"]["parameters"]["destination_queues"]["_default"].append("audit-queue")
    with pytest.raises(LayoutError, match="other queues"):
        scale_out(runtime, "nsm-constituency-expert", 2)


def test_split_hosts_puts_every_bot_on_exactly_one_host(runtime):
    hosts = {
        "a": ["nsm-intake", "nsm-report-parser"],
        "b": [b for b in runtime if b not in ("global", "nsm-intake", "nsm-report-parser")],
    }
    parts = split_hosts(runtime, hosts)
    assert set(parts["a"]) == {"global", "nsm-intake", "nsm-report-parser"}
    assert parts["a"]["global"] == parts["b"]["global"] == runtime["global"]
    with pytest.raises(LayoutError, match="missing"):
        split_hosts(runtime, {"a": ["nsm-intake"]})
