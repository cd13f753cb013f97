"""What an Endpoint declares, refused by the web stack on a real server on loopback: media
type, size, UTF-8, JSON depth; its refusals rendered its own way; connections counted per
client address."""

import http.client
import json
import logging

import pytest

from intelmq_nsm.web.app import Endpoint, Response, Routes
from intelmq_nsm.web.limits import Limits
from intelmq_nsm.web.refusal import Refusal
from intelmq_nsm.web.server import WebServer, client_key


def html_refusal(refusal, request):
    body = f"<p>{refusal.status} {refusal.code}</p>".encode()
    return Response(refusal.status, body, "text/html; charset=utf-8", refusal.headers)


def echo(request):
    return Response.json(200, {"media_type": request.media_type, "text": request.text})


def refuse(request):
    raise Refusal(409, "conflict", "Refused by the endpoint's code.")


@pytest.fixture
def server():
    json_body = Endpoint(echo, media_types=("application/json",), max_body=100, text=True, max_depth=3)
    page = Endpoint(refuse, media_types=("application/x-www-form-urlencoded",), max_body=100, refusal=html_refusal)
    routes = Routes().add("/json", post=json_body).add("/page", post=page)
    web = WebServer(routes, "127.0.0.1", 0, Limits(max_body_size=50), logging.getLogger("test-web")).start()
    yield web
    web.stop()


def post(server, path, body, content_type, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def test_a_body_that_fits_the_declaration_reaches_the_endpoint_decoded(server):
    status, _, body = post(server, "/json", '\ufeff{"a": [1]}'.encode(), "application/json; charset=UTF-8")
    assert (status, json.loads(body)) == (200, {"media_type": "application/json", "text": '{"a": [1]}'})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b"{}", "application/json; charset=latin-1", 415, "unsupported_charset"),
        (b"[" * 60, "application/json", 413, "too_large"),  # the server's cap (50) beats the endpoint's (100)
        (b"\xff{}", "application/json", 400, "invalid_encoding"),
        (b"[[[[]]]]", "application/json", 400, "too_deeply_nested"),
    ],
)
def test_what_does_not_fit_is_refused_in_json(server, body, content_type, status, error):
    answer = post(server, "/json", body, content_type)
    assert (answer[0], answer[1], json.loads(answer[2])["error"]) == (status, "application/json", error)


def test_an_endpoint_renders_the_stack_s_refusals_and_its_own_its_way(server):
    assert post(server, "/page", b"a=1", "text/plain") == (
        415,
        "text/html; charset=utf-8",
        b"<p>415 unsupported_media_type</p>",
    )
    assert post(server, "/page", b"a=1", "application/x-www-form-urlencoded")[2] == b"<p>409 conflict</p>"


def test_no_content_length_is_411_on_every_endpoint_that_takes_a_body(server):
    for path, content_type in (("/json", "application/json"), ("/page", "application/x-www-form-urlencoded")):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", content_type)
        conn.endheaders()  # neither Content-Length nor Transfer-Encoding
        response = conn.getresponse()
        assert response.status == 411 and b"length_required" in response.read()
        conn.close()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        (("192.0.2.7", 40000), "192.0.2.7"),
        (("2001:db8:1:2:aaaa::1", 40000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 40001, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:198.51.100.4", 40000, 0, 0), "198.51.100.4"),
    ],
)
def test_connections_are_counted_per_ipv4_address_and_per_ipv6_64(address, key):
    assert client_key(address) == key
