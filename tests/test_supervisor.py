"""The supervisor (cronjobs/runtime/supervisor.py) against workers that misbehave, through the real CLI."""

from __future__ import annotations

import json
import time

from conftest import pid_alive

SOFT = """
@cronjobs.daily
def first(ctx):
    while not ctx.should_stop():
        time.sleep(0.01)
    time.sleep(0.1)  # clean up inside the soft margin (0.3 s of a 3 s limit)
    record("first done")

@cronjobs.hourly
def second(ctx):
    record("second")

@cronjobs.handler("m")
def m(ctx, payload):
    record("m")
"""


def test_nothing_starts_after_the_soft_deadline_and_the_margin_lets_a_job_finish(project):
    project.write_jobs(SOFT)
    project.run("enqueue", "m")
    result = project.run("--time-limit", "3")
    assert result.returncode == 0, result.stderr
    assert project.ran() == ["first done"]  # neither the hourly job nor the message started
    assert project.run().returncode == 0
    assert project.ran() == ["first done", "second", "m"]
    first = next(job for job in json.loads(project.run("periodic", "--json").stdout) if job["name"] == "first")
    assert first["last_outcome"] == "completed"


def test_sys_exit_in_a_job_is_that_job_failing_and_the_others_still_run(project):
    project.write_jobs("""
@cronjobs.daily
def quits(ctx):
    sys.exit(3)

@cronjobs.hourly
def after(ctx):
    record("after")

@cronjobs.handler("m")
def m(ctx, payload):
    record("m")
""")
    uuid = project.run("enqueue", "m").stdout.strip()
    result = project.run()
    assert result.returncode == 1
    assert "quits" in result.stderr and "SystemExit" in result.stderr
    assert project.ran() == ["after", "m"]
    assert json.loads(project.run("show", uuid, "--json").stdout)["status"] == "completed"
    quits = next(job for job in json.loads(project.run("periodic", "--json").stdout) if job["name"] == "quits")
    assert quits["last_outcome"] == "failed"


def test_a_child_process_of_a_job_is_killed_with_the_worker_at_the_hard_limit(project):
    project.write_jobs("""
import subprocess

@cronjobs.daily
def spawns(ctx):
    child = subprocess.Popen(["sleep", "300"])
    record("child", child.pid)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(0.05)
""")
    began = time.monotonic()
    result = project.run("--time-limit", "2")
    assert time.monotonic() - began < 15
    assert result.returncode == 1
    (line,) = project.ran()
    child = int(line.split()[1])
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child), "the job's child outlived the tick"


def test_a_worker_that_dies_without_error_or_timeout_is_recorded_and_the_rest_runs_next_tick(project):
    project.write_jobs("""
@cronjobs.handler("vanish")
def vanish(ctx, payload):
    record("vanish")
    os._exit(0)

@cronjobs.handler("m")
def m(ctx, payload):
    record("m")
""")
    vanish = project.run("enqueue", "vanish", "--priority", "9", "--max-attempts", "1").stdout.strip()
    later = project.run("enqueue", "m").stdout.strip()
    result = project.run()
    assert result.returncode == 1
    assert "vanish" in result.stderr
    shown = json.loads(project.run("show", vanish, "--json").stdout)
    assert (shown["status"], shown["errors"][-1]["outcome"]) == ("failed", "crashed")  # in this tick, not the next
    assert project.run().returncode == 0
    assert json.loads(project.run("show", later, "--json").stdout)["status"] == "completed"
    assert project.ran() == ["vanish", "m"]
