"""Replacing a registry with a download: a real HTTP server on loopback, real files."""

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from intelmq_nsm.constituency import load_registry
from intelmq_nsm.constituency.update import UpdateError, download_target, signature, update_registry

GOOD = "assets:\n  - {domain: updated.example, organisation: GM0034}\n"
UNKNOWN_ORGANISATION = "assets:\n  - {domain: updated.example, organisation: GM9999}\n"


@pytest.fixture
def served(tmp_path):
    """``(directory, base URL)`` of a real HTTP server on 127.0.0.1."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_valid_download_replaces_the_file_in_a_directory_and_an_invalid_one_changes_nothing(tmp_path, served):
    folder, base = served
    database = tmp_path / "registry"
    database.mkdir()
    (database / "own.csv").write_text("type,value,organisation\nnetwork,192.0.2.0/24,GM0363\n", "utf-8")
    (folder / "registry.yaml").write_text(GOOD, "utf-8")
    with requests.Session() as session:
        target = update_registry(session, f"{base}/registry.yaml", str(database))
        assert target == database / "downloaded.yaml" and target.read_text("utf-8") == GOOD
        assert load_registry(database).stats()["domains"] == 1
        before = signature(str(database))
        (folder / "registry.yaml").write_text(UNKNOWN_ORGANISATION, "utf-8")
        with pytest.raises(
            UpdateError,
            match=r"downloaded\.yaml is unchanged: .*registry\.yaml, line 2, .*unknown organisation 'GM9999'",
        ):
            update_registry(session, f"{base}/registry.yaml", str(database))
        with pytest.raises(UpdateError, match=r"cannot download .*missing\.yaml"):
            update_registry(session, f"{base}/missing.yaml", str(database))
    assert target.read_text("utf-8") == GOOD and signature(str(database)) == before
    assert sorted(p.name for p in database.iterdir()) == ["downloaded.yaml", "own.csv"]  # no leftovers


def test_the_target_is_the_file_itself_or_named_after_the_url_and_a_list_is_refused(tmp_path):
    assert download_target(str(tmp_path / "r.yaml"), "http://127.0.0.1/x.csv") == tmp_path / "r.yaml"
    assert download_target(tmp_path, "http://127.0.0.1/export.CSV?day=1") == tmp_path / "downloaded.csv"
    assert download_target([str(tmp_path)], "http://127.0.0.1/export") == tmp_path / "downloaded.yaml"
    with pytest.raises(UpdateError, match="one file or one directory"):
        download_target([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], "http://127.0.0.1/x.yaml")
