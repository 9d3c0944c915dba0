"""A hostile host: read-only files, a full disk, a corrupt database, a missing lock directory, clock
jumps, and the signals hosts send. Every case: one line on stderr, the documented exit code, never a
traceback, and nothing already committed is lost."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time

import pytest
from conftest import cli_env
from reliability_harness import children, integrity, one_clean_line, shifted_env, unprivileged, wait_gone

pytestmark = pytest.mark.reliability

COUNTER = """
@cronjobs.handler("count")
def count(ctx, payload):
    for i in range(ctx.offset or 0, payload["n"]):
        record(i)
        time.sleep(payload.get("sleep", 0))
        ctx.checkpoint(offset=i + 1, done=i + 1, total=payload["n"], state={"pad": "x" * payload.get("pad", 0)})

@cronjobs.minutely
def every_minute(ctx):
    record("minutely")
"""

READ_COMMANDS = (["status"], ["list"], ["history"], ["jobs"])


def items(project) -> list[int]:
    return [int(line) for line in project.ran() if line.isdigit()]


def message(project, uuid: str) -> dict:
    shown = project.run("show", uuid, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def drain(project, uuid: str) -> dict:
    for _ in range(10):
        result = project.run("--time-limit", "0")
        assert result.returncode in (0, 1), result.stderr
        if message(project, uuid)["status"] == "completed":
            break
    return message(project, uuid)


def assert_refused(result: subprocess.CompletedProcess, codes: tuple[int, ...] = (2,)) -> str:
    assert result.returncode in codes, (result.returncode, result.stderr)
    return one_clean_line(result.stderr)


def queued_project(project, n: int = 30, **payload) -> str:
    project.write_jobs(COUNTER)
    uuid = project.run("enqueue", "count", json.dumps({"n": n, **payload})).stdout.strip()
    assert uuid
    return uuid


# -- files the host will not let us write --------------------------------------------------------


class ReadOnly:
    """The project directory and its database files read-only, as another user's files would be."""

    def __init__(self, project) -> None:
        self.project = project
        self.files = [p for p in project.path.iterdir() if p.name.startswith("run-cron.sqlite3")]

    def __enter__(self) -> ReadOnly:
        for path in self.files:
            path.chmod(0o444)
        self.project.path.chmod(0o555)
        return self

    def __exit__(self, *exc: object) -> None:
        self.project.path.chmod(0o755)
        for path in self.files:
            path.chmod(0o644)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(unprivileged(self.project.command(*args)), capture_output=True, text=True,
                              env=cli_env(), timeout=60)


def test_a_tick_on_a_read_only_directory_and_database_refuses_with_one_line_and_loses_nothing(project):
    uuid = queued_project(project, n=5)
    with ReadOnly(project) as read_only:
        assert_refused(read_only.run())
    assert items(project) == []
    shown = drain(project, uuid)
    assert (shown["status"], shown["attempts_used"]) == ("completed", 0)
    assert items(project) == list(range(5))


@pytest.mark.sqlite_only("a read-only SQLite file")
@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_read_commands_on_a_read_only_database_answer_or_refuse_with_one_line(project, command):
    queued_project(project, n=5)
    with ReadOnly(project) as read_only:
        result = read_only.run(*command)
    if result.returncode == 0:  # reading a read-only database may work; then it must be clean
        assert "Traceback" not in result.stderr
    else:
        assert_refused(result, (2, 3) if command == ["status"] else (2,))


def test_a_new_database_in_a_read_only_directory_is_one_line_exit_2(project):
    project.write_jobs(COUNTER)
    project.path.chmod(0o555)
    try:
        result = subprocess.run(unprivileged(project.command()), capture_output=True, text=True, env=cli_env(),
                                timeout=60)
    finally:
        project.path.chmod(0o755)
    assert_refused(result)
    assert not project.database.exists()


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.sqlite_only("a full disk under the SQLite file")
def test_a_disk_filling_mid_tick_is_a_store_error_and_keeps_every_committed_checkpoint(project):
    uuid = queued_project(project, n=40, pad=20000)
    project.run("--force", "all")  # the periodic jobs out of the way; the database has its size now
    project.log.unlink(missing_ok=True)
    limit = sum(p.stat().st_size for p in project.path.iterdir() if p.name.startswith("run-cron")) + 200_000
    result = subprocess.run(project.command("--time-limit", "0"), capture_output=True, text=True, env=cli_env(),
                            timeout=60, preexec_fn=_file_size_limit(limit))
    assert_refused(result)
    assert "Traceback" not in result.stderr
    cut = message(project, uuid)
    assert 0 < cut["offset"] < 40 and cut["attempts_used"] == 0 and cut["status"] in ("new", "pending")
    shown = drain(project, uuid)
    assert shown["status"] == "completed"
    done = items(project)
    assert sorted(set(done)) == list(range(40))
    assert len(done) - 40 <= 1
    assert integrity(project.database) == "ok"


@pytest.mark.sqlite_only("a corrupt SQLite file")
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_database_is_one_line_for_the_tick_and_every_read_command(project, damage):
    queued_project(project, n=3)
    data = project.database.read_bytes()
    if damage == "garbage":
        project.database.write_bytes(data[:100] + os.urandom(len(data) - 100))
    else:
        project.database.write_bytes(data[:1500])
    for name in ("run-cron.sqlite3-wal", "run-cron.sqlite3-shm"):
        (project.path / name).unlink(missing_ok=True)
    assert_refused(project.run())
    for command in READ_COMMANDS:
        assert_refused(project.run(*command), (2, 3) if command == ["status"] else (2,))


def test_a_missing_lock_directory_is_one_line_exit_2(project):
    uuid = queued_project(project, n=3)
    project.write_config(lock_file="no/such/dir/run-cron.lock")
    line = assert_refused(project.run())
    assert "no/such/dir" in line
    assert message(project, uuid)["status"] == "new"


# -- the clock ------------------------------------------------------------------------------------


def test_after_the_clock_steps_back_an_hour_queued_messages_still_run(project):
    uuid = queued_project(project, n=3)
    result = subprocess.run(project.command(), capture_output=True, text=True, timeout=60,
                            env=shifted_env(cli_env(), -3600))
    assert result.returncode == 0, result.stderr
    assert message(project, uuid)["status"] == "completed"


def test_after_a_jump_forward_is_corrected_periodic_jobs_run_again(project):
    project.write_jobs(COUNTER)
    ahead = subprocess.run(project.command(), capture_output=True, text=True, timeout=60,
                           env=shifted_env(cli_env(), 86400))
    assert ahead.returncode == 0, ahead.stderr
    assert project.ran().count("minutely") == 1
    for seconds in (120, 185):  # the clock corrected: the future last run counts as now, then a minute later
        back = subprocess.run(project.command(), capture_output=True, text=True, timeout=60,
                              env=shifted_env(cli_env(), seconds))
        assert back.returncode == 0, back.stderr
    assert project.ran().count("minutely") == 2


def test_a_clock_moving_forward_runs_each_period_once(project):
    project.write_jobs(COUNTER)
    start = 62 - time.time() % 60  # the shifted clocks start 2 s into a minute: the two ticks at +0 share it
    for minutes in (0, 0, 1, 3, 60):
        result = subprocess.run(project.command(), capture_output=True, text=True, timeout=60,
                                env=shifted_env(cli_env(), start + 60 * minutes))
        assert result.returncode == 0, result.stderr
    assert project.ran().count("minutely") == 4


# -- signals hosts send -----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_ends_the_tick_with_one_line_and_a_documented_code_keeping_its_checkpoints(project, signum):
    uuid = queued_project(project, n=30, sleep=0.05)
    tick = project.start("--time-limit", "0")
    project.wait_for(lambda: len(items(project)) >= 5)
    workers = children(tick.pid)
    tick.send_signal(signum)
    _, stderr = tick.communicate(timeout=20)
    wait_gone(workers)
    assert tick.returncode > 0, tick.returncode  # an exit code, not death by the signal
    one_clean_line(stderr)
    cut = message(project, uuid)
    assert cut["status"] == "new" and cut["offset"] >= 5 and cut["attempts_used"] == 0
    shown = drain(project, uuid)
    assert (shown["status"], shown["attempts_used"]) == ("completed", 0)
    done = items(project)
    assert sorted(set(done)) == list(range(30)) and len(done) - 30 <= 1


def test_sighup_stops_the_worker_mode_cleanly(project):
    uuid = queued_project(project, n=30, sleep=0.05)
    worker = project.start("worker", "--sleep", "0.2")
    project.wait_for(lambda: len(items(project)) >= 5)
    worker.send_signal(signal.SIGHUP)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode >= 0, worker.returncode
    assert "Traceback" not in stderr
    shown = drain(project, uuid)
    assert (shown["status"], shown["attempts_used"]) == ("completed", 0)
    assert sorted(set(items(project))) == list(range(30))


# -- many ticks at once --------------------------------------------------------------------------------


def test_twenty_simultaneous_ticks_one_works_the_rest_exit_0_at_once(project):
    release = project.path / "release"
    project.write_jobs(f"""
@cronjobs.handler("hold")
def hold(ctx, payload):
    record("hold", os.getppid())
    while not os.path.exists({str(release)!r}):
        time.sleep(0.01)

@cronjobs.handler("work")
def work(ctx, payload):
    record("work", os.getppid(), payload["i"])

@cronjobs.minutely
def every_minute(ctx):
    record("minutely", os.getppid())
""")
    project.run("enqueue", "hold", "--priority", "9")
    for index in range(10):
        project.run("enqueue", "work", json.dumps({"i": index}))
    ticks = [project.start() for _ in range(20)]
    try:
        project.wait_for(lambda: any(line.startswith("hold") for line in project.ran()), timeout=100)
        holder = int(next(line for line in project.ran() if line.startswith("hold")).split()[1])
        others = [tick for tick in ticks if tick.pid != holder]
        assert len(others) == 19
        for tick in others:  # each finds the lock held and leaves at once, while the holder still works
            _, stderr = tick.communicate(timeout=30)
            assert (tick.returncode, stderr) == (0, "")
    finally:
        release.touch()
    holder_tick = next(tick for tick in ticks if tick.pid == holder)
    _, stderr = holder_tick.communicate(timeout=60)
    assert holder_tick.returncode == 0, stderr
    lines = [line.split() for line in project.ran()]
    assert {int(line[1]) for line in lines} == {holder}, "only one tick worked"
    assert sorted(int(line[2]) for line in lines if line[0] == "work") == list(range(10))
    assert [line[0] for line in lines].count("minutely") == 1
