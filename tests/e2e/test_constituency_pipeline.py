"""The constituency expert in a real pipeline: named paths, live registry changes, --update-database."""

import functools
import json
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.harness import VENV_BIN

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "constituency" / "data"
MODULE = "intelmq.bots.experts.nsm.constituency"


@pytest.fixture
def http_directory(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a directory: ``(directory, base URL)``."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def file_output(path):
    return {"module": "intelmq.bots.outputs.file.output", "parameters": {"file": str(path)}}


def routing_to_files(tmp_path, **parameters):
    """``(runtime, {path name: output file})``: the expert with ``parameters`` and its three
    paths, each to a file output."""
    out = {name: tmp_path / f"{name}.jsonl" for name in ("ibd", "surf", "default")}
    queues = {"_default": ["default-out-queue"], "ibd": ["ibd-out-queue"], "surf": ["surf-out-queue"]}
    runtime = {
        "constituency": {"module": MODULE, "parameters": {**parameters, "destination_queues": queues}},
        **{f"{name}-out": file_output(path) for name, path in out.items()},
    }
    return runtime, out


def event(**fields):
    return {"__type": "Event", "classification.type": "vulnerable-system", **fields}


def organisations(events):
    return [[o["id"] for o in e["extra.nsm.organisations"]] for e in events]


def until(pipeline, out, done, timeout=15.0):
    """Probe the bot with an unmatched event at a time until ``done()``: the bot looks at the
    registry files' mtimes when an event arrives, at most every ``reload_check_interval``."""
    deadline = time.monotonic() + timeout
    probes = len(pipeline.read_file_output(out))
    while not done():
        assert time.monotonic() < deadline, "the registry change was not picked up"
        probes += 1
        pipeline.push("constituency", event(**{"source.ip": "192.0.2.200"}))
        pipeline.wait_for_file_output(out, probes)
        time.sleep(0.1)


def test_events_leave_on_named_paths_and_registry_changes_are_picked_up(tmp_path, intelmq_pipeline, http_directory):
    registry = tmp_path / "registry"
    registry.mkdir()
    for name in ("registry.yaml", "more-assets.csv"):
        shutil.copy(DATA / name, registry / name)
    served, base_url = http_directory
    runtime, out = routing_to_files(
        tmp_path, database=str(registry), reload_check_interval=1, database_url=f"{base_url}/registry.yaml"
    )
    pipeline = intelmq_pipeline(runtime)
    pipeline.start()

    # Named paths: one municipality, one asset of two constituencies, one excluded address.
    pipeline.push("constituency", event(**{"source.ip": "192.0.2.5"}))
    pipeline.push("constituency", event(**{"source.ip": "203.0.113.5"}))
    pipeline.push("constituency", event(**{"source.ip": "192.0.2.200"}))
    ibd = pipeline.wait_for_file_output(out["ibd"], 2)
    [surf] = pipeline.wait_for_file_output(out["surf"], 1)
    [unmatched] = pipeline.wait_for_file_output(out["default"], 1)
    assert [e["source.ip"] for e in ibd] == ["192.0.2.5", "203.0.113.5"]
    assert {e["constituency"] for e in ibd} == {"ibd"} and organisations(ibd) == [["GM0363"], ["GM0363"]]
    assert (surf["constituency"], organisations([surf])) == ("surf", [["SURF-UNI1"]])
    assert unmatched["source.ip"] == "192.0.2.200" and "constituency" not in unmatched

    # A new registry file while the pipeline runs: picked up by the mtime check.
    (registry / "late.csv").write_text("type,value,organisation\nnetwork,2001:db8:ffff::/48,GM0014\n", "utf-8")
    until(pipeline, out["default"], lambda: "A registry file changed, reloading." in pipeline.log("constituency"))
    pipeline.push("constituency", event(**{"source.ip": "2001:db8:ffff::1"}))
    ibd = pipeline.wait_for_file_output(out["ibd"], 3)
    assert organisations(ibd[2:]) == [["GM0014"]]

    # A broken file is refused; the last good registry keeps routing.
    (registry / "broken.csv").write_text("type,value,organisation\nnetwork,192.0.2.1/24,GM0014\n", "utf-8")
    until(pipeline, out["default"], lambda: pipeline.log_lines(["constituency"], level="ERROR"))
    pipeline.push("constituency", event(**{"source.ip": "2001:db8:ffff::2"}))
    ibd = pipeline.wait_for_file_output(out["ibd"], 4)
    assert organisations(ibd[3:]) == [["GM0014"]]
    [error] = pipeline.log_lines(["constituency"], level="ERROR")
    assert "Reload failed, the last good registry" in error and "broken.csv, line 2, field 'network'" in error
    (registry / "broken.csv").unlink()

    # --update-database: a valid download is swapped in and the bot reloaded (SIGHUP).
    (served / "registry.yaml").write_text("assets:\n  - {domain: updated.example, organisation: GM0034}\n", "utf-8")
    update = pipeline._run([str(VENV_BIN / MODULE), "--update-database", "--verbose"])
    assert update.returncode == 0, update.stdout + update.stderr
    assert (registry / "downloaded.yaml").exists()
    assert "constituency: reload done, the bot is running." in update.stdout
    # A bot blocked on its Redis queue handles the SIGHUP when the next message arrives:
    # it puts the message back, runs init() again and then routes it with the new registry.
    pipeline.push("constituency", event(**{"source.fqdn": "www.updated.example"}))
    ibd = pipeline.wait_for_file_output(out["ibd"], 5)
    assert organisations(ibd[4:]) == [["GM0034"]]
    assert "Handling SIGHUP, initializing again now." in pipeline.log("constituency")

    # An invalid download changes nothing.
    (served / "registry.yaml").write_text("assets:\n  - {domain: updated.example, organisation: GM9999}\n", "utf-8")
    update = pipeline._run([str(VENV_BIN / MODULE), "--update-database"])
    assert update.returncode == 1 and "unknown organisation 'GM9999'" in update.stderr
    assert "GM0034" in (registry / "downloaded.yaml").read_text("utf-8")
    assert not list(registry.glob(".*"))

    pipeline.wait_drained()
    assert pipeline.status("constituency") == "running"
    assert pipeline.dumps() == {}


def test_a_hub_routes_by_its_certs_claims_and_keeps_a_certs_last_good_claims(
    tmp_path, intelmq_pipeline, http_directory
):
    from tests.constituency.claims_data import claims

    served, base_url = http_directory
    hub = tmp_path / "hub"
    hub.mkdir()
    publish = lambda document: (served / f"{document['claims']['constituency']}.json").write_text(  # noqa: E731
        json.dumps(document), "utf-8"
    )
    publish(claims("ibd", ["192.0.2.0/25"]))
    publish(claims("surf", ["198.51.100.0/24"]))
    claims_urls = {
        "ibd": {"url": f"{base_url}/ibd.json", "builtin_municipalities": True},
        "surf": f"{base_url}/surf.json",
    }
    runtime, out = routing_to_files(tmp_path, database=str(hub), claims=claims_urls)
    pipeline = intelmq_pipeline(runtime)
    # The hub takes its CERTs' claims before its first start (an empty registry cannot start).
    update = pipeline._run([str(VENV_BIN / MODULE), "--update-database", "--verbose"])
    assert update.returncode == 0, update.stdout + update.stderr
    assert "constituency: the claims of surf exported at 2026-11-30T08:00:00+00:00 were taken from" in update.stdout
    pipeline.start()
    for address in ("192.0.2.5", "192.0.2.200", "198.51.100.5"):
        pipeline.push("constituency", event(**{"source.ip": address}))
    [ibd] = pipeline.wait_for_file_output(out["ibd"], 1)
    [surf] = pipeline.wait_for_file_output(out["surf"], 1)
    [unclaimed] = pipeline.wait_for_file_output(out["default"], 1)
    assert (ibd["source.ip"], organisations([ibd])) == ("192.0.2.5", [["cert:ibd"]])
    assert (surf["source.ip"], organisations([surf])) == ("198.51.100.5", [["cert:surf"]])
    assert unclaimed["source.ip"] == "192.0.2.200" and ibd["extra.nsm.organisations"][0]["contacts"] == []

    # The IBD widens its claims; SURF's new file names a contact: the IBD's are taken, SURF's kept.
    publish(claims("ibd", ["192.0.2.0/24"], exported_at="2026-12-01T08:00:00+00:00"))
    leaking = claims("surf", ["198.51.100.0/25"], exported_at="2026-12-01T08:00:00+00:00")
    leaking["constituencies"][0]["contacts"] = ["cert@surf.example"]
    publish(leaking)
    update = pipeline._run([str(VENV_BIN / MODULE), "--update-database"])
    assert update.returncode == 1
    assert (
        f"constituency: ERROR: The claims of constituency 'surf' from {base_url}/surf.json were not taken"
        in update.stderr
    )
    assert "field 'contacts': a claims file names no contacts" in update.stderr
    assert "cert@surf.example" not in (hub / "claims-surf.json").read_text("utf-8")
    # The bot was reloaded: its log says it too, and it routes by the IBD's new claims and SURF's kept ones.
    pipeline.push("constituency", event(**{"source.ip": "192.0.2.201"}))
    pipeline.push("constituency", event(**{"source.ip": "198.51.100.200"}))
    ibd = pipeline.wait_for_file_output(out["ibd"], 2)
    surf = pipeline.wait_for_file_output(out["surf"], 2)
    assert (ibd[1]["source.ip"], surf[1]["source.ip"]) == ("192.0.2.201", "198.51.100.200")
    [error] = pipeline.log_lines(["constituency"], level="ERROR")
    assert f"The claims of constituency 'surf' from {base_url}/surf.json were not taken at " in error
    assert "the claims exported at 2026-11-30T08:00:00+00:00 stay in use." in error
    pipeline.wait_drained()
    assert pipeline.status("constituency") == "running" and pipeline.dumps() == {}
