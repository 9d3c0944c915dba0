"""`run-cron serve` against hostile clients, over raw sockets: malformed requests get a proper answer at
once, no traceback, and the token never reaches the log in any encoding."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import pytest
from conftest import Project, Serve

TOKEN = "Zq9-secret-T0ken"
JOBS = """
@cronjobs.handler("mail")
def mail(ctx, payload): record("mail", payload)
"""


@pytest.fixture
def server(project: Project, serving) -> Serve:
    project.write_jobs(JOBS)
    project.write_config(f"[http]\ntoken = {TOKEN}\nmin_interval = 0\ntime_limit = 10\n")
    return serving(project)


def exchange(server: Serve, data: bytes, timeout: float = 30) -> tuple[bytes, float]:
    """Send `data`, keep the connection open for writing, and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        began = time.monotonic()
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - began


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def assert_still_serving(server: Serve) -> None:
    answer, _ = exchange(server, b"GET /health HTTP/1.0\r\n\r\n")
    report = json.loads(body_of(answer))
    assert (status_of(answer), report["status"]) in ((503, "stale"), (200, "ok"))  # ok: a request ran a tick


@pytest.mark.parametrize("request_line, status", [
    (b"GET /health HTTP/9.9", 505),
    (b"GET /health HTTP/one", 400),
    (b"GARBAGE", 400),
    (b"GET /health extra HTTP/1.0", 400),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.0", 414),
])
def test_malformed_request_gets_an_answer_and_no_traceback(server, request_line, status):
    answer, _ = exchange(server, request_line + b"\r\n\r\n")
    assert status_of(answer) == status
    assert json.loads(body_of(answer))["error"].startswith(f"{status}: ")
    assert_still_serving(server)
    log = server.log.read_text()
    assert "Traceback" not in log and "Exception" not in log, log
    assert f"127.0.0.1 - - {status}" in log


def test_body_shorter_than_its_content_length_is_400_promptly(server):
    answer, elapsed = exchange(server, b"POST /run HTTP/1.0\r\nContent-Length: 100\r\n"
                                       b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\nonly ten b")
    assert status_of(answer) == 400
    assert json.loads(body_of(answer)) == {"error": "request body shorter than its Content-Length (100 bytes)"}
    assert elapsed < 15  # the read timeout, not the 60 s it took before
    assert "Traceback" not in server.log.read_text()


def test_huge_content_length_is_413_before_reading(server):
    answer, elapsed = exchange(server, b"POST /run HTTP/1.0\r\nContent-Length: 1000000000000\r\n\r\n", timeout=10)
    assert status_of(answer) == 413
    assert elapsed < 3
    assert "Traceback" not in server.log.read_text()


@pytest.mark.parametrize("length", [b"-5", b"ten", b"1e3"])
def test_content_length_that_is_not_a_number_is_400(server, length):
    answer, _ = exchange(server, b"POST /run HTTP/1.0\r\nContent-Length: " + length + b"\r\n\r\n")
    assert status_of(answer) == 400
    assert json.loads(body_of(answer)) == {"error": "invalid Content-Length"}


def test_missing_lock_directory_is_503_with_a_reason_and_one_log_line(project, serving):
    project.write_jobs(JOBS)
    project.write_config(f"[http]\ntoken = {TOKEN}\nmin_interval = 0\n", lock_file="gone/run-cron.lock")
    server = serving(project)
    answer, _ = exchange(server, f"GET /run?token={TOKEN} HTTP/1.0\r\n\r\n".encode())
    assert status_of(answer) == 503
    assert json.loads(body_of(answer)) == {"status": "error",
                                           "error": "lock file unavailable: its directory does not exist"}
    log = server.log.read_text()
    assert "Traceback" not in log
    assert [line for line in log.splitlines() if "cannot answer" in line] == [
        f"run-cron: cannot answer GET /run: lock file {project.path}/gone/run-cron.lock.http: "
        "its directory does not exist"]


def encodings(text: str) -> list[str]:
    """The token's spellings a log could hold: plain, percent-encoded (each character, once and twice)."""
    every = "".join(f"%{byte:02X}" for byte in text.encode())
    return [text, quote(text, safe=""), every, every.lower(), every.replace("%", "%25")]


@pytest.mark.parametrize("request_line", [
    f"GET /run?%74oken={TOKEN} HTTP/9.9",
    f"GET /run?tok%65n={TOKEN} HTTP/one",
    f"GET /run?%2574oken={TOKEN} junk HTTP/1.0",
    f"GET /run?TOKEN={TOKEN}",
    f"GET /%3Ftoken%3D{TOKEN} HTTP/1.0",
    f"GET /run;token={TOKEN} HTTP/1.0",
    f"GET /{quote(TOKEN, safe='')} HTTP/1.0",
    f"GET /run?x=1&%74%6F%6B%65%6E={''.join(f'%{b:02X}' for b in TOKEN.encode())} HTTP/1.1",
    f"GET /run?token={TOKEN}" + "a" * 70000 + " HTTP/1.0",
    f"\x00\x01GET /run?token={TOKEN}\x1b[2J HTTP/1.0",
])
def test_the_token_never_reaches_the_log_in_any_encoding(server, request_line):
    exchange(server, request_line.encode("latin-1") + b"\r\n\r\n")
    assert_still_serving(server)
    log = server.log.read_text()
    assert "Traceback" not in log
    for spelling in encodings(TOKEN):
        assert spelling.lower() not in log.lower(), (spelling, log)
    assert "\x1b" not in log and "\x00" not in log  # and no terminal escapes from a client
