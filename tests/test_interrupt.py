"""Stop signals (SIGTERM, SIGINT, SIGHUP) end a running tick cleanly wherever it runs: a crontab tick,
`run-cron serve`, the CGI script. The worker is asked to stop at its next checkpoint, killed after
interrupt.GRACE seconds, and what it ran is settled; nothing is left running. (Checkpointing handlers
and the worker mode: tests/reliability/test_hostile_host.py and tests/test_worker_mode.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import CGI, TOKEN, enqueue, fetch, pid_alive, web_project

from cronjobs.runtime.interrupt import GRACE

STUCK = """
@cronjobs.handler("stuck")
def stuck(ctx, payload):
    with open(os.path.join(os.path.dirname(LOG), "stuck.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(60)  # never reaches a checkpoint

@cronjobs.handler("later")
def later(ctx, payload):
    record("later")
"""


def wait_for_file(path: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return int(path.read_text())


def wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.02)


def shown(project, uuid: str) -> dict:
    result = project.run("show", uuid, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_handler_that_never_checkpoints_is_killed_after_the_grace_and_charged_one_attempt(project, signum):
    project.write_jobs(STUCK)
    project.run("--force", "all")
    stuck = project.run("enqueue", "stuck").stdout.strip()
    later = project.run("enqueue", "later", "--priority=-1").stdout.strip()
    tick = project.start("--time-limit", "0")
    pid = wait_for_file(project.path / "stuck.pid")
    tick.send_signal(signum)
    _, stderr = tick.communicate(timeout=GRACE + 20)
    assert tick.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    lines = stderr.strip().splitlines()
    assert lines[0] == f"run-cron: stopped by {name}: the worker was killed; what it ran is settled, checkpoints kept"
    assert lines[1:] == [f"run-cron: message stuck {stuck} crashed: stopped by {name}"]  # what cron mails
    wait_dead(pid)
    cut = shown(project, stuck)
    assert (cut["status"], cut["attempts_used"]) == ("new", 1)  # settled, retried later like any kill
    assert cut["errors"][-1]["error"] == f"stopped by {name}"
    assert (shown(project, later)["status"], project.ran()) == ("new", [])  # never started, not charged


def test_a_second_signal_kills_the_worker_without_waiting_for_the_grace(project):
    project.write_jobs(STUCK)
    project.run("--force", "all")
    project.run("enqueue", "stuck")
    tick = project.start("--time-limit", "0")
    pid = wait_for_file(project.path / "stuck.pid")
    tick.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    tick.send_signal(signal.SIGINT)
    _, stderr = tick.communicate(timeout=GRACE + 20)
    assert tick.returncode == 128 + signal.SIGTERM, stderr  # the first signal names the stop
    wait_dead(pid, timeout=GRACE / 2)  # well before the grace would have ended


def test_sigterm_to_serve_stops_the_tick_of_a_run_request_and_leaves_no_worker(tmp_path, serving):
    project = web_project(tmp_path)
    uuid = enqueue(project.config, "web.forever")
    server = serving(project)
    answers: list = []
    request = threading.Thread(target=lambda: answers.append(fetch(f"{server.base}/run?token={TOKEN}")))
    request.start()
    pid = wait_for_file(project.path / "forever.pid")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(GRACE + 30) == 128 + signal.SIGTERM
    wait_dead(pid)
    request.join(30)
    log = server.log.read_text()
    assert "Traceback" not in log
    assert log.strip().splitlines()[-1] == "run-cron: stopped by SIGTERM"
    cut = shown(project, uuid)
    assert (cut["status"], cut["attempts_used"]) == ("new", 1)
    assert [(answer.status, answer.json["interrupted"]) for answer in answers] == [(503, "SIGTERM")]


def test_sigterm_to_the_cgi_script_stops_its_tick_and_answers_503(tmp_path):
    project = web_project(tmp_path)
    uuid = enqueue(project.config, "web.forever")
    variables = {"PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
                 "SCRIPT_NAME": "/cgi-bin/run-cron.cgi", "PATH_INFO": "/run", "QUERY_STRING": f"token={TOKEN}",
                 "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                 "REMOTE_ADDR": "127.0.0.1", "RUN_CRON_CONFIG": str(project.config)}
    cgi = subprocess.Popen([str(CGI)], env=variables, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    pid = wait_for_file(project.path / "forever.pid")
    cgi.send_signal(signal.SIGTERM)  # what Apache does when the client goes away or its timeout passes
    out, err = cgi.communicate(timeout=GRACE + 30)
    wait_dead(pid)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"Status: 503 Service Unavailable", (out, err)
    assert json.loads(body)["interrupted"] == "SIGTERM"
    assert b"Traceback" not in err
    assert (shown(project, uuid)["status"], shown(project, uuid)["attempts_used"]) == ("new", 1)
