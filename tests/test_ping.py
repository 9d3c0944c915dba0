"""The heartbeat ping after each tick, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from cronjobs.runtime.lock import SupervisorLock
from cronjobs.runtime.ping import ping

JOBS = """
@cronjobs.daily
def nightly(ctx): record("nightly")

@cronjobs.handler("boom")
def boom(ctx, payload): raise ValueError("boom")
"""


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.delay = 0.0
        self.status = 200

        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                recorder.paths.append(self.path)
                time.sleep(recorder.delay)
                self.send_response(recorder.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ping/abc"


@pytest.fixture
def server():
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def test_ping_after_a_tick_that_ran_and_after_an_idle_one(project, server):
    project.write_config(ping_url=server.url)
    project.write_jobs(JOBS)
    assert project.run().returncode == 0
    assert server.paths == ["/ping/abc"]
    assert project.run().returncode == 0  # idle: still a heartbeat
    assert server.paths == ["/ping/abc", "/ping/abc"]


def test_a_failed_tick_pings_fail(project, server):
    project.write_config(ping_url=server.url + "/")
    project.write_jobs(JOBS)
    project.run("enqueue", "boom", "--max-attempts", "1")
    assert project.run().returncode == 1
    assert server.paths == ["/ping/abc/fail"]


def test_no_ping_when_the_lock_is_held(project, server):
    project.write_config(ping_url=server.url)
    project.write_jobs(JOBS)
    lock = SupervisorLock(str(project.path / "run-cron.lock"))
    assert lock.acquire()
    try:
        assert project.run().returncode == 0
    finally:
        lock.release()
    assert server.paths == []


def test_worker_mode_pings_after_each_tick(project, server):
    project.write_config(ping_url=server.url)
    project.write_jobs(JOBS)
    worker = project.start("worker", "--sleep", "0.1")
    try:
        project.wait_for(lambda: len(server.paths) >= 3)
    finally:
        worker.terminate()
        worker.communicate(timeout=10)
    assert set(server.paths) == {"/ping/abc"}


def test_an_unreachable_ping_is_logged_and_never_fatal(project):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    project.write_config(ping_url=f"http://127.0.0.1:{port}/ping")
    project.write_jobs(JOBS)
    result = project.run()
    assert result.returncode == 0
    assert "run-cron: ping http://127.0.0.1:" in result.stderr and "failed: URLError" in result.stderr
    assert project.ran() == ["nightly"]


def test_http_error_status_counts_as_a_failed_ping(server):
    server.status = 500
    assert ping(server.url).startswith("HTTPError: HTTP Error 500")


def test_a_slow_server_is_given_up_on_at_the_timeout(server):
    server.delay = 3.0
    began = time.monotonic()
    error = ping(server.url, timeout=0.3)
    assert time.monotonic() - began < 1.0
    assert error is not None
