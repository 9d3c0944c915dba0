"""`run-cron worker`: ticks in a loop, sleeps while idle, stops after the current run on SIGTERM/SIGINT/SIGHUP."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT, pid_alive

JOBS = """
@cronjobs.daily
def nightly(ctx): record("nightly")

@cronjobs.handler("slow")
def slow(ctx, payload):
    record("slow start", payload["n"])
    time.sleep(payload.get("sleep", 0))
    record("slow end", payload["n"])
"""


def stop(process, signum=signal.SIGTERM, timeout=10.0):
    process.send_signal(signum)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_worker_runs_due_jobs_and_new_messages_then_sleeps(project):
    project.write_jobs(JOBS)
    worker = project.start("worker", "--sleep", "0.1")
    try:
        project.wait_for(lambda: "nightly" in project.ran())
        project.run("enqueue", "slow", '{"n": 1}')
        project.wait_for(lambda: "slow end 1" in project.ran())
    finally:
        code, _, err = stop(worker)
    assert code == 0, err
    assert project.ran() == ["nightly", "slow start 1", "slow end 1"]
    history = json.loads(project.run("history", "--json").stdout)
    assert {entry["name"] for entry in history} == {"nightly", "slow", "run-cron.prune"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_tick_stops_after_that_tick(project, signum):
    project.write_jobs(JOBS)
    project.run("--force", "all")  # the periodic jobs are done; only the message remains
    project.run("enqueue", "slow", '{"n": 1, "sleep": 3.0}')  # time to deliver the signal, even under load
    project.run("enqueue", "slow", '{"n": 2}', "--delay", "4")  # due only after the first one ends
    worker = project.start("worker", "--sleep", "0.1", "--time-limit", "20")
    try:
        project.wait_for(lambda: "slow start 1" in project.ran())
        began = time.monotonic()
        code, _, err = stop(worker, signum)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert code == 0, err
    assert time.monotonic() - began < 12  # within the one tick, not at its 20 s limit
    assert project.ran()[-2:] == ["slow start 1", "slow end 1"]  # the current run finished cleanly
    assert "slow start 2" not in project.ran()  # and no further tick started
    shown = json.loads(project.run("jobs", "--json").stdout)
    assert sorted(m["status"] for m in shown) == ["completed", "new"]


def test_sigterm_while_idle_stops_at_once(project):
    project.write_jobs(JOBS)
    project.run()
    worker = project.start("worker", "--sleep", "60")
    time.sleep(0.8)  # its first (idle) tick is done; it sleeps
    began = time.monotonic()
    code, _, err = stop(worker)
    assert code == 0, err
    assert time.monotonic() - began < 2.0


def test_worker_and_crontab_tick_share_the_lock(project):
    project.write_jobs(JOBS)
    project.run("--force", "all")
    project.run("enqueue", "slow", '{"n": 1, "sleep": 1.0}')
    worker = project.start("worker", "--sleep", "0.1")
    try:
        project.wait_for(lambda: "slow start 1" in project.ran())
        cron = project.run("-v")  # what the crontab line runs, while the worker's tick holds the lock
        assert cron.returncode == 0
        assert "another tick is running" in cron.stderr
        project.wait_for(lambda: "slow end 1" in project.ran())
    finally:
        stop(worker)
    assert project.ran().count("slow start 1") == 1


def test_second_signal_stops_at_once_and_kills_the_worker(project):
    project.write_jobs(JOBS)
    project.run("--force", "all")
    project.run("enqueue", "slow", '{"n": 1, "sleep": 30}')
    worker = project.start("-v", "worker", "--sleep", "0.1")
    project.wait_for(lambda: "slow start 1" in project.ran())
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    began = time.monotonic()
    code, _, err = stop(worker, signal.SIGINT)
    assert time.monotonic() - began < 3.0
    assert code == 130, err
    # the forked worker of that tick died with it; the next tick settles its run
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    assert not [pid for pid in pids if pid_alive(pid) and _runs(pid, project)]


def _runs(pid: int, project) -> bool:
    try:
        return str(project.config) in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_systemd_unit_is_shipped():
    unit = (ROOT / "config" / "run-cron.service").read_text()
    assert "Restart=always" in unit
    assert " worker" in unit.split("ExecStart=", 1)[1].splitlines()[0]
    assert "KillMode=mixed" in unit  # SIGTERM to the worker mode only: it finishes its tick
