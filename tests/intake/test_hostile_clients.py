"""The intake against hostile and careless clients, with real sockets on loopback: slow
heads, too many connections, too many bytes in flight, bad framing, odd methods, garbage
and secrets in the request line. Every answer is JSON."""

import json
import logging
import socket
import threading
import time

import pytest

REPORT = {
    "schema": "nsm-report/1",
    "case": {"id": "DIVD-2024-00031", "title": "Exposed example admin panels"},
    "reporter": {"organisation": "DIVD"},
    "findings": [{"ip": "192.0.2.10", "port": 443}],
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def connect(intake, timeout=10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", intake.port), timeout=timeout)


def read_answer(sock, head_only=False) -> tuple:
    """``(status, headers with lower-case names, JSON body or None)`` of one answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"The connection closed without a whole answer: {data!r}.")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only:
        return status, headers, None
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, json.loads(rest[:length]) if length else None


def exchange(intake, raw: bytes, head_only=False) -> tuple:
    with connect(intake) as sock:
        sock.sendall(raw)
        return read_answer(sock, head_only)


def post_head(intake, length_lines: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + intake.token.encode() + b"\r\n" + length_lines + extra + b"\r\n"
    )


def closed_by_peer(sock, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return False
    except OSError:
        return True
    return True


# -- slow heads and many connections ------------------------------------------------------


def test_trickling_heads_are_cut_at_the_head_deadline_while_health_keeps_answering(make_intake):
    # All from one address: the cap per address is lifted here, the head deadline is what is tested.
    intake = make_intake(header_timeout=1.5, max_connections=1000, max_connections_per_address=1000)
    trickling, stop = [], threading.Event()
    for _ in range(300):
        sock = connect(intake)
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHo")
        trickling.append(sock)

    def trickle():
        # One byte every 0.2 s on every connection: each read succeeds, the head never ends.
        while not stop.is_set():
            for sock in trickling:
                try:
                    sock.send(b"s")
                except OSError:
                    pass
            time.sleep(0.2)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        answers = []
        for _ in range(10):
            with connect(intake, timeout=2) as sock:  # a hung server fails here by timeout
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                answers.append(read_answer(sock)[0])
            time.sleep(0.05)
        assert answers == [200] * 10
        time.sleep(1.5)
        # The head deadline has passed for all of them: each was closed by the server.
        assert all(closed_by_peer(sock, within=2.0) for sock in trickling)
    finally:
        stop.set()
        sender.join(timeout=5)
        for sock in trickling:
            sock.close()
    assert exchange(intake, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_trickling_connections_from_other_addresses_leave_a_researcher_answered_every_time(intake):
    # The default limits. 300 connections from four other addresses trickle their heads
    # (and come back when the server closes them); a researcher on 127.0.0.1 asks for
    # health 20 times. One source may hold only its share of the connections.
    sources = [f"127.0.0.{n}" for n in (2, 3, 4, 5)]
    trickling, stop = {}, threading.Event()

    def open_one(n):
        sock = socket.create_connection(("127.0.0.1", intake.port), timeout=5, source_address=(sources[n % 4], 0))
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHo")
        return sock

    def trickle():
        while not stop.is_set():
            for n, sock in list(trickling.items()):
                try:
                    sock.send(b"s")
                except OSError:  # closed by the server: the attacker comes back
                    sock.close()
                    try:
                        trickling[n] = open_one(n)
                    except OSError:
                        pass
            time.sleep(0.2)

    for n in range(300):
        trickling[n] = open_one(n)
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        answers = []
        for _ in range(20):
            started = time.monotonic()
            with connect(intake, timeout=2) as sock:  # a starved researcher fails here by timeout
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                answers.append((read_answer(sock)[0], time.monotonic() - started < 2))
            time.sleep(0.05)
        assert answers == [(200, True)] * 20
        web = intake.server.web
        assert web.refused_connections > 0  # the sources did try to take more
        assert max(web.connections_from[source] for source in sources) <= web.limits.max_connections_per_address
    finally:
        stop.set()
        sender.join(timeout=5)
        for sock in trickling.values():
            sock.close()


def test_connections_over_the_cap_are_answered_503_with_retry_after(make_intake):
    intake = make_intake(max_connections=20, header_timeout=30)
    idle = [connect(intake) for _ in range(20)]
    try:
        deadline = time.monotonic() + 5
        while intake.server.web.open_connections < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert intake.server.web.open_connections == 20
        for _ in range(3):
            status, headers, body = exchange(intake, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (status, body["error"]) == (503, "busy")
            assert int(headers["retry-after"]) >= 1
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while intake.server.web.open_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exchange(intake, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_request_bytes_in_flight_are_bounded(make_intake):
    intake = make_intake(max_bytes_in_flight=3000)
    first = json.dumps({**REPORT, "findings": [{"ip": "192.0.2.10", "port": 443, "evidence": "x" * 2000}]}).encode()
    second = json.dumps({**REPORT, "findings": [{"ip": "192.0.2.11", "port": 443, "evidence": "y" * 1000}]}).encode()
    slow = connect(intake)
    with slow:
        slow.sendall(post_head(intake, b"Content-Length: %d\r\n" % len(first)) + first[:100])
        deadline = time.monotonic() + 5
        while intake.server.web.bytes_in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert intake.server.web.bytes_in_flight == len(first)
        # The first body's bytes are reserved: a second that would pass the bound waits its turn.
        status, headers, body = exchange(intake, post_head(intake, b"Content-Length: %d\r\n" % len(second)) + second)
        assert (status, body["error"]) == (503, "busy") and int(headers["retry-after"]) >= 1
        slow.sendall(first[100:])
        assert read_answer(slow)[0] == 202
    assert intake.server.web.bytes_in_flight == 0
    assert exchange(intake, post_head(intake, b"Content-Length: %d\r\n" % len(second)) + second)[0] == 202


# -- framing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        b"Content-Length: +160\r\n",
        b"Content-Length: 1_60\r\n",
        b"Content-Length: 1 60\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 160\r\nContent-Length: 161\r\n",
        b"Content-Length: 160, 161\r\n",
    ],
)
def test_content_length_must_be_one_value_of_digits_only(intake, lines):
    status, headers, body = exchange(intake, post_head(intake, lines) + b"x" * 160)
    assert (status, body["error"]) == (400, "bad_content_length"), body
    assert headers["connection"] == "close"
    assert intake.sent == []


def test_repeated_equal_content_lengths_and_whitespace_around_the_value_frame_one_body(intake):
    # RFC 9110 5.5: the whitespace around a field value is not part of it; RFC 9112 6.3
    # allows a list of identical values. Both frame the same body unambiguously.
    body = json.dumps(REPORT).encode()
    status, _, answer = exchange(intake, post_head(intake, b"Content-Length:  %d  \r\n" % len(body)) + body)
    assert status == 202, answer
    lines = b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body))
    status, _, answer = exchange(intake, post_head(intake, lines) + body)
    assert (status, answer["duplicate"]) == (202, True)


def test_chunked_bodies_are_refused_with_411_in_json(intake):
    status, _, body = exchange(intake, post_head(intake, b"Transfer-Encoding: chunked\r\n") + b"2\r\n{}\r\n0\r\n\r\n")
    assert (status, body["error"]) == (411, "length_required")


# -- every answer is JSON -----------------------------------------------------------------


def test_head_on_health_is_answered_without_a_body(intake):
    with connect(intake) as sock:
        sock.sendall(b"HEAD /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_answer(sock, head_only=True)
        assert status == 200 and headers["content-type"] == "application/json"
        # The connection stays usable: no stray body bytes precede the next answer.
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_answer(sock)
        assert status == 200 and body["status"] == "ok"


@pytest.mark.parametrize(
    ("request_line", "allow"),
    [
        (b"OPTIONS /v1/reports HTTP/1.1", "POST"),
        (b"BREW /v1/health HTTP/1.1", "GET, HEAD"),
        (b"PUT /v1/reports HTTP/1.1", "POST"),
        (b"DELETE /v1/reports/" + b"0" * 64 + b" HTTP/1.1", "GET, HEAD"),
    ],
)
def test_other_methods_get_405_in_json_with_allow(intake, request_line, allow):
    status, headers, body = exchange(intake, request_line + b"\r\nHost: x\r\n\r\n")
    assert (status, body["error"], headers["allow"]) == (405, "method_not_allowed", allow)
    assert headers["content-type"] == "application/json"


def test_an_oversized_head_is_answered_431_in_json(intake):
    for head in (
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-P%d: %s\r\n" % (i, b"b" * 90) for i in range(300)),
    ):
        status, headers, body = exchange(intake, head)
        assert (status, body["error"]) == (431, "headers_too_large")
        assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /v1/health HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
    ],
)
def test_garbage_is_answered_400_in_json(intake, garbage):
    status, headers, body = exchange(intake, garbage)
    assert (status, body["error"]) == (400, "bad_request")
    assert headers["content-type"] == "application/json"


def test_every_answer_carries_the_security_headers(intake):
    body = json.dumps(REPORT).encode()
    answers = [
        exchange(intake, post_head(intake, b"Content-Length: %d\r\n" % len(body)) + body),
        exchange(intake, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"),
        exchange(intake, b"GET /v1/reports/" + b"0" * 64 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        exchange(intake, b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n"),
        exchange(intake, b"\x16\x03\x01garbage\r\n\r\n"),
    ]
    assert [status for status, _, _ in answers] == [202, 200, 401, 404, 400]
    for _, headers, _ in answers:
        assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
        assert "frame-ancestors 'none'" in headers["content-security-policy"]


# -- logs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["token", "access_token"])
def test_a_token_in_the_query_string_is_refused_and_never_logged(intake, caplog, name):
    caplog.set_level(logging.DEBUG)
    raw = b"GET /v1/reports/%s?%s=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"0" * 64, name.encode(), intake.token.encode())
    status, _, body = exchange(intake, raw)
    assert (status, body["error"]) == (400, "token_in_query")
    time.sleep(0.1)
    assert f"{name}=…" in caplog.text
    assert intake.token not in caplog.text and intake.token[13:] not in caplog.text


def test_query_values_are_never_logged(intake, caplog):
    caplog.set_level(logging.DEBUG)
    exchange(intake, b"GET /v1/health?feed_code=secret-value-1 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    assert "/v1/health?feed_code=…" in caplog.text and "secret-value-1" not in caplog.text


def test_control_characters_in_the_request_line_are_escaped_in_the_log(intake, caplog):
    caplog.set_level(logging.DEBUG)
    # C0 controls in the request target are refused by tornado's parser; C1 controls
    # (bytes 0x80-0x9f, taken as obs-text) reach the request log, escaped.
    assert exchange(intake, b"GET /v1/\x1b[31mhealth HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 400
    assert exchange(intake, b"GET /v1/\x9b31mhealth\x85 HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 404
    time.sleep(0.1)
    messages = [record.getMessage() for record in caplog.records]
    assert any("/v1/\\x9b31mhealth\\x85" in m for m in messages)
    assert not [m for m in messages if any(ch in m for ch in "\x1b\x9b\x85\r")]
