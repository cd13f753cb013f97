"""A hub refreshing its CERTs' claims: a real HTTP server on 127.0.0.1 serving each CERT's file,
or failing to; each CERT's claims are taken or kept on their own, and the hub says which."""

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from intelmq_nsm.cli import main
from intelmq_nsm.constituency import load_registry
from intelmq_nsm.constituency.claims import ClaimsPolicy, ClaimsSource, read_status, source_problems, stale
from intelmq_nsm.constituency.update import update_claims
from tests.constituency.claims_data import claims, policy

IBD = claims("ibd", ["192.0.2.0/24"], exported_at="2026-11-30T08:00:00+00:00")
SURF = claims("surf", ["198.51.100.0/24"], exported_at="2026-11-30T08:00:00+00:00")


class CertServer(ThreadingHTTPServer):
    """Each CERT's claims at ``/<key>.json``; ``behaviour[key]`` says how to answer: ``"serve"``
    (the bytes in ``files[key]``), an HTTP status, ``"slow"`` (nothing for 3 s), ``"truncated"``
    (half the bytes, then the connection closes)."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # a client that gave up (a timeout, the cap) leaves a broken pipe behind

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.behaviour = {}, {}
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{key}.json"

    def publish(self, document: dict, behaviour="serve") -> None:
        key = document["claims"]["constituency"] if isinstance(document, dict) else None
        self.files[key] = json.dumps(document).encode("utf-8")
        self.behaviour[key] = behaviour


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        key = self.path.strip("/").removesuffix(".json")
        behaviour, body = self.server.behaviour.get(key, 404), self.server.files.get(key, b"")
        if behaviour == "slow":
            time.sleep(3)
            behaviour = "serve"
        if isinstance(behaviour, int):
            self.send_error(behaviour)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def certs():
    server = CertServer()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def sources(folder, certs, max_size=1 << 20):
    return ClaimsPolicy([
        ClaimsSource(key, certs.url(key), folder / f"claims-{key}.json", key == "ibd", max_size)
        for key in ("ibd", "surf")
    ])  # fmt: skip


def refresh(folder, certs, **options):
    """One --update-database round: ``{key: status}``."""
    with requests.Session() as session:
        done = update_claims(session, sources(folder, certs, **options).sources, folder, timeout=1)
    return {source.key: status for source, status in done}


def newer(document, exported_at="2026-12-01T08:00:00+00:00", **changes):
    document = copy.deepcopy(document)
    document["claims"]["exported_at"] = exported_at
    document.update(changes)
    return document


def routed(folder, certs, address):
    registry = load_registry([folder], claims=sources(folder, certs))
    return [(r.constituency, [o.id for o in r.organisations]) for r in registry.index.decide([("source.ip", address)])]


def with_contacts(document):
    document = newer(document)
    document["constituencies"][0]["contacts"] = ["cert@surf.example"]
    return document


def speaking_for_ibd(document):
    document = newer(document)
    document["assets"].append({"network": "203.0.113.0/24", "organisation": "cert:ibd"})
    document["claims"]["assets"] += 1
    return document


@pytest.mark.parametrize(
    "publish, reason",
    [
        (lambda c: c.publish(newer(SURF), 500), "cannot download {url}: 500 Server Error"),
        (lambda c: c.publish(newer(SURF), "slow"), "Read timed out. (read timeout=1)"),
        (lambda c: c.publish(newer(SURF), "truncated"), "Connection broken: IncompleteRead"),
        (lambda c: c.publish(newer(SURF, version="x" * 300_000)), "{url} is 300"),
        (
            lambda c: c.publish(with_contacts(SURF)),
            "{url}, constituencies[0], field 'contacts': a claims file names no",
        ),
        (lambda c: c.publish(speaking_for_ibd(SURF)), "{url}, assets[1], field 'organisation': cert:ibd stands for"),
        (lambda c: c.publish(newer(SURF, exported_at="2026-11-01T08:00:00+00:00")), "before the claims in use"),
        (lambda c: c.publish(newer(SURF, assets=[])), "field 'claims.assets': the header counts 1 assets, the file"),
    ],
    ids=["HTTP 500", "timeout", "truncated", "too large", "contacts", "another CERT's", "older", "invalid"],
)
def test_a_cert_whose_download_fails_keeps_its_claims_loudly_and_the_others_are_taken(tmp_path, certs, publish, reason):
    folder = tmp_path / "hub"
    folder.mkdir()
    certs.publish(IBD)
    certs.publish(SURF)
    first = refresh(folder, certs)
    assert [first[key]["taken"] for key in ("ibd", "surf")] == [True, True]
    assert first["surf"]["in_use"]["exported_at"] == "2026-11-30T08:00:00+00:00"
    kept = (folder / "claims-surf.json").read_bytes()

    certs.publish(newer(IBD, assets=[{"network": "192.0.2.0/25"}]))
    publish(certs)
    second = refresh(folder, certs, max_size=200_000)

    surf = second["surf"]
    assert surf["taken"] is False and reason.format(url=certs.url("surf")) in surf["reason"], surf["reason"]
    assert (folder / "claims-surf.json").read_bytes() == kept
    assert surf["in_use"]["exported_at"] == "2026-11-30T08:00:00+00:00"
    assert read_status(folder / "claims-surf.json") == surf
    # The other CERT's fresh claims are taken all the same.
    assert second["ibd"]["taken"] is True and second["ibd"]["in_use"]["exported_at"] == "2026-12-01T08:00:00+00:00"
    assert routed(folder, certs, "192.0.2.200") == []  # the IBD's new claims: 192.0.2.0/25 only
    assert routed(folder, certs, "198.51.100.9") == [("surf", ["cert:surf"])]  # SURF's kept claims
    # Said loudly, naming the CERT, the URL and the reason, wherever an operator looks.
    message = stale(surf)
    assert message.startswith(f"The claims of constituency 'surf' from {certs.url('surf')} were not taken at ")
    assert message.endswith("; the claims exported at 2026-11-30T08:00:00+00:00 stay in use.")
    assert source_problems(sources(folder, certs)) == [("error", message)]
    assert not list(folder.glob(".*")) and sorted(p.name for p in folder.iterdir()) == [
        "claims-ibd.json", "claims-ibd.status", "claims-surf.json", "claims-surf.status",
    ]  # fmt: skip


def test_validate_says_which_claims_are_stale_until_a_download_is_taken_again(tmp_path, certs, capsys):
    folder = tmp_path / "hub"
    folder.mkdir()
    certs.publish(IBD)
    certs.publish(SURF)
    refresh(folder, certs)
    assert main(["constituency", "validate", str(folder)]) == 0
    certs.publish(newer(SURF), 500)
    refresh(folder, certs)
    capsys.readouterr()
    assert main(["constituency", "validate", str(folder)]) == 4
    err = capsys.readouterr().err
    assert f"Stale: The claims of constituency 'surf' from {certs.url('surf')} were not taken at " in err
    assert "500 Server Error" in err and "the claims exported at 2026-11-30T08:00:00+00:00 stay in use." in err
    certs.publish(newer(SURF))
    assert refresh(folder, certs)["surf"]["taken"] is True
    assert main(["constituency", "validate", str(folder)]) == 0


def test_a_cert_never_taken_has_no_claims_and_the_hub_says_so(tmp_path, certs):
    folder = tmp_path / "hub"
    folder.mkdir()
    certs.publish(IBD)
    statuses = refresh(folder, certs)  # SURF publishes nothing yet: 404
    assert statuses["surf"]["in_use"] is None and "404" in statuses["surf"]["reason"]
    assert stale(statuses["surf"]).endswith("; the hub has no claims of 'surf': nothing is routed to it by claims.")
    assert not (folder / "claims-surf.json").exists()
    (folder / "claims-surf.status").unlink()
    [(level, message)] = source_problems(sources(folder, certs))
    assert level == "warning" and message.startswith(
        f"No claims of constituency 'surf' have been taken from {certs.url('surf')} yet"
    )


def test_claims_put_in_place_by_hand_stay_when_a_download_fails(tmp_path, certs):
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "claims-surf.json").write_text(json.dumps(SURF), "utf-8")  # no status: not downloaded
    certs.publish(IBD)
    certs.publish(newer(SURF), 503)
    surf = refresh(folder, certs)["surf"]
    assert surf["in_use"] == {} and json.loads((folder / "claims-surf.json").read_text("utf-8")) == SURF
    assert stale(surf).endswith(
        ": 503 Server Error: Service Unavailable for url: "
        + certs.url("surf")
        + "; the claims the hub has stay in use."
    )


def test_the_claims_parameter_names_each_cert_its_url_and_what_it_may_do(tmp_path):
    from intelmq_nsm.constituency.claims import claims_policy

    parameter = {
        "ibd": {"url": "https://ibd.example/claims.yaml", "builtin_municipalities": True},
        "surf": "https://surf.example/c",
    }
    found = claims_policy(parameter, str(tmp_path), 1000)
    assert [(s.key, s.url, s.path.name, s.builtin_municipalities, s.max_size) for s in found.sources] == [
        ("ibd", "https://ibd.example/claims.yaml", "claims-ibd.yaml", True, 1000),
        ("surf", "https://surf.example/c", "claims-surf.json", False, 1000),
    ]
    assert claims_policy(None, str(tmp_path)) is None and claims_policy({}, str(tmp_path)) is None
    for wrong, message in [
        ({"IBD": "https://x.example/c"}, "claims names 'IBD', which is not a constituency key"),
        ({"ibd": "ftp://x.example/c"}, "claims.ibd.url must be an http(s) URL"),
        ({"ibd": {"url": "https://x.example/c", "contacts": True}}, "claims.ibd must be a URL or a mapping"),
        ({"ibd": {"url": "https://x.example/c", "builtin_municipalities": "yes"}}, "must be true or false"),
        (["https://x.example/c"], "claims must map each constituency key"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            claims_policy(wrong, str(tmp_path))
    with pytest.raises(ValueError, match="database to be one directory"):
        claims_policy(parameter, [str(tmp_path), str(tmp_path / "other")])
    assert policy(tmp_path, "ibd").sources[0].path == tmp_path / "claims-ibd.json"
