"""bin/run-cron.cgi: directly as RFC 3875 prescribes, and behind a real lighttpd started by the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import CGI, ROOT, TOKEN, enqueue, fetch, mine, web_project

from cronjobs.runtime.lock import SupervisorLock

LIGHTTPD = shutil.which("lighttpd") or next(
    (path for path in ("/usr/sbin/lighttpd", "/usr/local/sbin/lighttpd") if os.path.exists(path)), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cgi(config: Optional[Path], path: str, query: str = "", method: str = "GET", body: bytes = b"",
            env: Optional[dict[str, str]] = None, script: Path = CGI) -> subprocess.CompletedProcess:
    """Run the script as a CGI server would: request meta-variables in a minimal environment."""
    variables = {"PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method,
                 "SCRIPT_NAME": "/cgi-bin/run-cron.cgi", "PATH_INFO": path, "QUERY_STRING": query,
                 "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                 "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)) if body else "", **(env or {})}
    if config is not None:
        variables["RUN_CRON_CONFIG"] = str(config)
    return subprocess.run([str(script)], input=body, env=variables, capture_output=True, timeout=60)


def split(output: bytes) -> tuple[list[str], bytes]:
    head, _, body = output.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def test_the_script_answers_with_a_cgi_status_header(tmp_path):
    config = web_project(tmp_path).config
    lines, body = split(run_cgi(config, "/run", "token=wrong").stdout)
    assert lines[0] == "Status: 403 Forbidden"
    assert TOKEN not in body.decode()
    lines, body = split(run_cgi(config, "/run", "token=" + TOKEN).stdout)
    assert lines[0] == "Status: 200 OK" and "Content-Type: application/json" in lines
    assert [item["name"] for item in mine(json.loads(body)["ran"])] == ["every_minute"]
    assert split(run_cgi(config, "/nothing").stdout)[0][0] == "Status: 404 Not Found"
    assert split(run_cgi(config, "/health").stdout)[0][0] == "Status: 200 OK"


def test_a_bad_config_answers_500_in_one_line_and_logs_it(tmp_path):
    bad = tmp_path / "run-cron.ini"
    bad.write_text("[run-cron]\ndatabase = db.sqlite3\n")
    done = run_cgi(bad, "/run", "token=" + TOKEN)
    lines, body = split(done.stdout)
    assert lines[0] == "Status: 500 Internal Server Error"
    assert body == b"run-cron: internal error (see the server's log)\n"
    assert b"[run-cron] lock_file: missing" in done.stderr and b"Traceback" not in done.stderr
    lines, _ = split(run_cgi(tmp_path / "missing.ini", "/health").stdout)
    assert lines[0] == "Status: 500 Internal Server Error"


def test_a_copied_script_finds_the_project_and_its_config_through_run_cron_home(tmp_path):
    # A copy (not a symlink) of the script: $RUN_CRON_HOME names the project, whose .venv/ and
    # config/run-cron.ini it uses when $RUN_CRON_CONFIG is not set.
    project = tmp_path / "project"
    site = web_project(project / "config")
    (project / ".venv").symlink_to(ROOT / ".venv")
    (project / "cronjobs").symlink_to(ROOT / "cronjobs")
    copy = tmp_path / "cgi-bin" / "run-cron.cgi"
    copy.parent.mkdir()
    shutil.copy2(CGI, copy)
    done = run_cgi(None, "/run", "token=" + TOKEN, env={"RUN_CRON_HOME": str(project)}, script=copy)
    assert split(done.stdout)[0][0] == "Status: 200 OK", done.stderr
    with site.connect() as db:  # the config's store (on SQLite config/db.sqlite3) has the tick's run
        assert db.execute("SELECT status FROM message WHERE type = 'every_minute'").fetchall() == [("completed",)]


class Lighttpd:
    """lighttpd with mod_cgi serving a symlink to bin/run-cron.cgi, as a user would install it."""

    def __init__(self, path: Path, config: Path) -> None:
        self.port = free_port()
        docroot = path / "htdocs"
        (docroot / "cgi-bin").mkdir(parents=True)
        (docroot / "cgi-bin" / "run-cron.cgi").symlink_to(CGI)
        conf = path / "lighttpd.conf"
        conf.write_text(f"""
server.document-root = "{docroot}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.modules = ("mod_cgi", "mod_setenv")
server.errorlog = "{path / 'lighttpd-error.log'}"
cgi.assign = (".cgi" => "")
setenv.add-environment = ("RUN_CRON_CONFIG" => "{config}")
""")
        self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("lighttpd did not start") from None
                time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}/cgi-bin/run-cron.cgi"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


@pytest.fixture
def lighttpd(tmp_path):
    if LIGHTTPD is None:
        pytest.skip("lighttpd is not installed (apt-get install lighttpd)")
    servers: list[Lighttpd] = []

    def start(**options: Any) -> tuple[Lighttpd, Path]:
        config = web_project(tmp_path / "site", **options).config
        server = Lighttpd(tmp_path, config)
        servers.append(server)
        return server, config

    yield start
    for server in servers:
        server.stop()


def test_every_status_code_comes_through_lighttpd(lighttpd):
    server, config = lighttpd(http={"max_body": 100})
    url = server.base
    assert fetch(url + "/health").status == 503
    answer = fetch(url + "/run?token=wrong")
    assert answer.status == 403 and TOKEN not in answer.text
    assert fetch(url + "/run").status == 403
    assert fetch(url + "/nothing").status == 404
    assert fetch(url + "/run?token=" + TOKEN, method="DELETE").status == 405
    assert fetch(url + "/run?token=" + TOKEN, method="POST", data=b"x" * 1000).status == 413
    answer = fetch(url + "/run", method="POST", data=b"", headers={"Authorization": "Bearer " + TOKEN})
    assert answer.status == 200 and answer.json["trigger"] == "http"
    assert fetch(url + "/health").status == 200
    lock = SupervisorLock(str(config.parent / "tick.lock"))
    assert lock.acquire()
    try:
        assert fetch(url + "/run?token=" + TOKEN).status == 409
    finally:
        lock.release()
    answer = fetch(url + "/?token=" + TOKEN)
    assert answer.status == 200 and "every_minute" in answer.text
    assert "Path=/cgi-bin/run-cron.cgi/;" in answer.headers["Set-Cookie"]
    assert fetch(url + "/", headers={"Cookie": answer.headers["Set-Cookie"].split(";")[0]}).status == 200


def test_min_interval_holds_across_cgi_processes(lighttpd):
    server, _ = lighttpd(http={"min_interval": 60})
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: fetch(server.base + "/run?token=" + TOKEN), range(36)))
    statuses = [answer.status for answer in answers]
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 429}
    answer = fetch(server.base + "/run?token=" + TOKEN)
    assert answer.status == 429 and 1 <= int(answer.headers["Retry-After"]) <= 60


def test_the_hard_limit_holds_under_cgi(lighttpd):
    server, config = lighttpd(http={"time_limit": 2})
    enqueue(config, "web.forever")
    began = time.monotonic()
    answer = fetch(server.base + "/run?token=" + TOKEN)
    assert answer.status == 200 and answer.json["timed_out"] is True
    assert time.monotonic() - began < 4.5
    pid = int((config.parent / "forever.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_falling_back_to_the_system_python_is_said_in_the_response_and_the_log(tmp_path):
    project = tmp_path / "project"
    web_project(project / "config")
    (project / "cronjobs").symlink_to(ROOT / "cronjobs")
    venv_bin = project / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text("#!/bin/sh\nexit 99\n")
    (venv_bin / "python").chmod(0o644)  # what the web server's user meets with a private home, say
    system = tmp_path / "system-bin"
    system.mkdir()
    import sys

    (system / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # stands in for the host's
    (system / "python3").chmod(0o755)
    done = run_cgi(None, "/run", "token=" + TOKEN, script=CGI,
                   env={"RUN_CRON_HOME": str(project), "PATH": f"{system}:/usr/bin:/bin"})
    lines, body = split(done.stdout)
    assert lines[0] == "Status: 200 OK", done.stderr
    warning = f"{venv_bin / 'python'} is not executable by user"
    assert any(line.startswith("X-Run-Cron-Warning: ") and warning in line for line in lines), lines
    assert warning in json.loads(body)["warning"]
    assert warning.encode() in done.stderr  # the web server's error log


def header(lines: list[str], name: str) -> Optional[str]:
    return next((line.split(": ", 1)[1] for line in lines if line.lower().startswith(name.lower() + ": ")), None)


def test_bearer_is_matched_in_any_case_and_only_with_the_token(tmp_path):
    config = web_project(tmp_path).config
    for scheme in ("bearer", "BEARER", "Bearer"):
        lines, _ = split(run_cgi(config, "/", env={"HTTP_AUTHORIZATION": f"{scheme} {TOKEN}"}).stdout)
        assert lines[0] == "Status: 200 OK", scheme
    lines, _ = split(run_cgi(config, "/", env={"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}).stdout)
    assert lines[0].startswith("Status: 403")


def test_the_page_cookie_is_secure_over_https_only(tmp_path):
    config = web_project(tmp_path).config
    plain, _ = split(run_cgi(config, "/", "token=" + TOKEN).stdout)
    secure, _ = split(run_cgi(config, "/", "token=" + TOKEN, env={"HTTPS": "on"}).stdout)
    assert "HttpOnly" in header(plain, "Set-Cookie") and "Secure" not in header(plain, "Set-Cookie")
    assert "; Secure" in header(secure, "Set-Cookie")


def test_head_answers_the_headers_of_get_without_a_body(tmp_path):
    config = web_project(tmp_path).config
    assert split(run_cgi(config, "/run", "token=" + TOKEN).stdout)[0][0] == "Status: 200 OK"  # healthy now
    for path, query in (("/health", ""), ("/", "token=" + TOKEN)):
        got_lines, got_body = split(run_cgi(config, path, query).stdout)
        head_lines, head_body = split(run_cgi(config, path, query, method="HEAD").stdout)
        assert head_lines[0] == got_lines[0] == "Status: 200 OK"
        assert header(head_lines, "Content-Type") == header(got_lines, "Content-Type")
        assert got_body and head_body == b""


def test_retry_after_is_never_0_while_a_trigger_is_refused(tmp_path):
    config = web_project(tmp_path, http={"min_interval": 2}).config
    assert split(run_cgi(config, "/run", "token=" + TOKEN).stdout)[0][0] == "Status: 200 OK"
    waits = []
    while True:
        lines, body = split(run_cgi(config, "/run", "token=" + TOKEN).stdout)
        if lines[0] == "Status: 200 OK":
            break
        assert lines[0] == "Status: 429 Too Many Requests"
        waits.append(int(header(lines, "Retry-After")))
        assert json.loads(body)["retry_after"] == waits[-1]
    assert waits and min(waits) >= 1 and max(waits) <= 2
