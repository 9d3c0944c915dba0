"""The every-minute tick through the real CLI in subprocesses: order, isolation, locks, hard limits."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import ROOT, cli_env, pid_alive

ORDERED_JOBS = """
@cronjobs.cron("* * * * *", name="every-minute-cron")
def c(ctx): record("cron")

@cronjobs.minutely
def m(ctx): record("minutely")

@cronjobs.hourly
def h(ctx): record("hourly")

@cronjobs.daily
def boom(ctx): record("daily-boom"); raise ValueError("boom")

@cronjobs.daily
def d(ctx): record("daily")

@cronjobs.weekly
def w(ctx): record("weekly")

@cronjobs.monthly
def mo(ctx): record("monthly")

@cronjobs.yearly
def y(ctx): record("yearly")
"""


def test_due_jobs_run_longest_period_first_and_a_failure_stops_nothing(project):
    project.write_jobs(ORDERED_JOBS)
    result = project.run()
    assert result.returncode == 1
    assert project.ran() == ["yearly", "monthly", "weekly", "daily-boom", "daily", "hourly", "minutely"]
    assert "job boom" in result.stderr and "ValueError: boom" in result.stderr
    assert result.stdout == ""


def test_failure_is_recorded_with_type_message_and_traceback(project):
    project.write_jobs(ORDERED_JOBS)
    project.run()
    with project.connect() as db:
        outcome, error = db.execute("SELECT last_outcome, last_error FROM job_state WHERE name='boom'").fetchone()
        tb = db.execute(
            "SELECT traceback FROM attempt JOIN message ON message.id = attempt.message_id "
            "WHERE message.type = 'boom'").fetchone()[0]
    assert (outcome, error) == ("failed", "ValueError: boom")
    assert 'raise ValueError("boom")' in tb


def test_second_tick_has_nothing_due_and_is_silent(project):
    project.write_jobs(ORDERED_JOBS.replace('raise ValueError("boom")', "pass"))
    assert project.run().returncode == 0
    before = project.ran()
    second = project.run()
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert project.ran() == before
    assert "nothing due" in project.run("-v").stderr


def test_failed_job_is_retried_on_a_later_tick(project):
    project.write_config(retry_backoff="60")
    project.write_jobs("""
@cronjobs.daily
def flaky(ctx):
    record("flaky", ctx.job.attempt)
    if len(open(LOG).read().splitlines()) < 2:
        raise RuntimeError("first time fails")
""")
    assert project.run_at("2026-06-04 10:00:05").returncode == 1
    assert project.run_at("2026-06-04 10:00:50").returncode == 0 and project.ran() == ["flaky 1"]  # backoff
    assert project.run_at("2026-06-04 10:01:10").returncode == 0
    assert project.run_at("2026-06-04 10:02:10").returncode == 0  # done for the day
    assert project.ran() == ["flaky 1", "flaky 1"]  # each periodic run is a run of its own


def test_two_ticks_started_together_run_each_job_once(project):
    project.write_jobs("""
@cronjobs.daily
def one(ctx): record("one"); time.sleep(0.5)

@cronjobs.hourly
def two(ctx): record("two")
""")
    first, second = project.start(), project.start()
    codes = [first.wait(30), second.wait(30)]
    assert codes == [0, 0]
    assert sorted(project.ran()) == ["one", "two"]


def test_second_copy_exits_at_once_and_says_so_only_at_verbose(project):
    project.write_jobs("""
@cronjobs.daily
def slow(ctx): record("started"); time.sleep(30)
""")
    tick = project.start("--time-limit", "40")
    try:
        project.wait_for(lambda: project.ran() == ["started"])
        began = time.monotonic()
        quiet = project.run()
        elapsed = time.monotonic() - began
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
        assert elapsed < 1.0  # bench/ measures the exact figure; here: it does not wait for the lock
        assert "another tick is running" in project.run("-v").stderr
    finally:
        tick.kill()
        tick.wait()


def test_kill_9_of_a_tick_kills_its_worker_and_leaves_no_stale_lock(project):
    project.write_jobs("""
@cronjobs.daily
def hang(ctx):
    record(os.getpid())
    while True:
        time.sleep(0.05)

@cronjobs.hourly
def after(ctx): record("after")
""")
    tick = project.start("--time-limit", "0")
    project.wait_for(lambda: len(project.ran()) == 1)
    worker = int(project.ran()[0])
    tick.send_signal(signal.SIGKILL)
    tick.wait()
    deadline = time.monotonic() + 1.0
    while pid_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(worker), "the worker outlived its supervisor"
    project.write_jobs("""
@cronjobs.daily
def hang(ctx): record("hang again")

@cronjobs.hourly
def after(ctx): record("after")
""")
    result = project.run("-v")
    assert "another tick" not in result.stderr
    assert "recovered job hang" in result.stderr
    assert project.ran()[1:] == ["after", "hang again"]  # a retry runs after the regular runs


def test_infinite_loop_is_cut_at_the_limit_and_the_next_job_runs_next_tick(project):
    project.write_jobs("""
@cronjobs.daily
def loop(ctx):
    record("loop")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass

@cronjobs.hourly
def next_one(ctx): record("next")
""")
    began = time.monotonic()
    result = project.run("--time-limit", "2")
    elapsed = time.monotonic() - began
    assert result.returncode == 1
    assert elapsed < 3.0 + 0.5  # limit + 1 s, plus interpreter start-up
    assert "timeout" in result.stderr
    assert project.ran() == ["loop"]
    with project.connect() as db:
        assert db.execute("SELECT last_outcome FROM job_state WHERE name='loop'").fetchone() == ("timeout",)
    project.run("--time-limit", "2")
    assert "next" in project.ran()


def test_job_blocked_in_c_code_is_killed_at_the_limit(project):
    project.write_jobs("""
@cronjobs.daily
def blocked(ctx):
    record("blocked")
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    time.sleep(60)
""")
    began = time.monotonic()
    result = project.run("--time-limit", "1")
    assert time.monotonic() - began < 2.5
    assert result.returncode == 1


def test_a_time_limit_shorter_than_creating_the_store_never_cuts_its_schema(project):
    """The first tick creates the schema before it forks its worker, on every engine: a worker cut at
    the limit mid-migration left a server store without tables (PostgreSQL rolls the DDL back), and
    the tick's settling then failed on them ('no such table: job_state', exit 2)."""
    from cronjobs.store import SCHEMA_VERSION

    project.write_jobs("@cronjobs.daily\ndef d(ctx): record('d')\n")
    result = project.run("--time-limit", "0.05")
    assert "error" not in result.stderr, result.stderr
    with project.connect() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert project.run().returncode == 0
    assert project.ran() == ["d"]


def test_force_runs_only_the_forced_jobs(project):
    project.write_jobs(ORDERED_JOBS.replace('raise ValueError("boom")', "pass"))
    project.run()
    project.log.unlink()
    assert project.run("--force", "daily").returncode == 0
    assert project.ran() == ["daily-boom", "daily"]
    project.log.unlink()
    assert project.run("--force", "h", "--force", "yearly").returncode == 0
    assert project.ran() == ["yearly", "hourly"]


def test_force_unknown_job_is_a_usage_error(project):
    project.write_jobs(ORDERED_JOBS)
    result = project.run("--force", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "run-cron: error: no job or interval named 'nope' (try 'run-cron periodic' or an interval such as 'daily')"
    ]


def test_dry_run_prints_and_changes_nothing(project):
    project.write_jobs(ORDERED_JOBS)
    result = project.run("--dry-run")
    assert result.returncode == 0
    assert "would run daily job d: never ran" in result.stdout
    assert "would run yearly job y: never ran" in result.stdout
    assert not project.database.exists() and project.ran() == []


def test_list_json_reports_schedule_last_run_outcome_and_next_due(project):
    project.write_jobs(ORDERED_JOBS)
    project.run()
    rows = json.loads(project.run("list", "--json").stdout)
    by_name = {row["name"]: row for row in rows}
    user_jobs = [row["name"] for row in rows if not row["name"].startswith("run-cron.")]  # built-ins aside
    assert user_jobs == ["y", "mo", "w", "boom", "d", "h", "m", "every-minute-cron"]
    assert {"name", "schedule", "last_run", "last_outcome", "next_due"} <= set(rows[0])
    assert by_name["boom"]["last_outcome"] == "failed"
    assert by_name["d"]["last_outcome"] == "completed"
    assert by_name["every-minute-cron"]["last_run"] is None
    assert by_name["every-minute-cron"]["schedule"] == "* * * * *"
    assert by_name["d"]["next_due"].endswith(("+01:00", "+02:00"))
    table = project.run("list").stdout.splitlines()
    assert table[0].split() == ["NAME", "SCHEDULE", "LAST", "RUN", "LAST", "OUTCOME", "NEXT", "DUE", "PAUSED"]


def test_launcher_works_by_absolute_path_from_another_directory(project, tmp_path):
    project.write_jobs("@cronjobs.daily\ndef d(ctx): record('via launcher')\n")
    env = cli_env()
    env.pop("PYTHONPATH")
    result = subprocess.run([str(ROOT / "bin" / "run-cron"), "--config", str(project.config)],
                            cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert project.ran() == ["via launcher"]


def test_config_from_environment_variable(project):
    project.write_jobs("@cronjobs.daily\ndef d(ctx): record('env')\n")
    env = cli_env()
    env["RUN_CRON_CONFIG"] = str(project.config)
    result = subprocess.run([os.sys.executable, "-m", "cronjobs"], cwd=str(project.path.parent), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert project.ran() == ["env"]


@pytest.mark.sqlite_only("a corrupt SQLite file")
def test_corrupt_database_is_an_error_line_and_left_untouched(project):
    project.write_jobs("@cronjobs.daily\ndef d(ctx): record('d')\n")
    project.database.write_bytes(b"this is not an sqlite file" * 100)
    before = project.database.read_bytes()
    result = project.run()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run-cron: error: database ")
    assert "not a database" in lines[0]
    assert project.database.read_bytes() == before


@pytest.mark.sqlite_only("the SQLite file's directory")
def test_unwritable_database_directory_is_an_error_line(project):
    project.write_jobs("@cronjobs.daily\ndef d(ctx): record('d')\n")
    project.write_config(database="missing-dir/db.sqlite3")
    result = project.run()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"run-cron: error: database {project.path}/missing-dir/db.sqlite3: its directory does not exist"
    ]


@pytest.mark.sqlite_only("an EXCLUSIVE transaction locks the whole SQLite file")
def test_locked_database_is_an_error_line_with_exit_2(project):
    project.write_config(busy_timeout="0.2")
    project.write_jobs("@cronjobs.daily\ndef d(ctx): record('d')\n")
    assert project.run().returncode == 0
    holder = sqlite3.connect(project.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for args in (("--force", "d"), ("enqueue", "x", "--allow-unknown-type")):
            result = project.run(*args)
            assert result.returncode == 2, args
            assert result.stderr.splitlines() == [
                f"run-cron: error: database {project.database}: database is locked"], args
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert project.run("--force", "d").returncode == 0
    assert project.ran() == ["d", "d"]


def test_min_interval_is_checked_under_the_lock(project):
    from cronjobs.host.config import load_config
    from cronjobs.registry import Registry
    from cronjobs.runtime.tick import run_tick

    config = load_config(str(project.config))
    began = time.time()
    assert run_tick(config, Registry(), min_interval=60).status == "ran"  # creates the store
    refused = run_tick(config, Registry(), min_interval=60, trigger="http")
    # 60 s after the first tick started (no sooner than `began`), as seen when the second looked
    assert refused.status == "too_soon" and began + 60 - time.time() <= refused.retry_after <= 60
    assert refused.exit_code == 0
    assert run_tick(config, Registry()).status == "idle"  # the CLI passes no min_interval


def test_a_periodic_job_waiting_on_retry_leaves_ticks_idle_until_its_time(project):
    project.write_jobs("""
@cronjobs.daily
def later(ctx):
    record("later", ctx.job.attempt)
    if len(open(LOG).read().splitlines()) == 1:
        raise cronjobs.Retry(delay=300)
""")
    assert project.run_at("2026-06-04 10:00:05").returncode == 0
    assert "nothing due" in project.run_at("2026-06-04 10:04:55", "-v").stderr  # no worker forked
    assert project.run_at("2026-06-04 10:05:10").returncode == 0
    assert project.ran() == ["later 1", "later 1"]  # Retry uses no attempt
    assert json.loads(project.run("list", "--json").stdout)[0]["last_outcome"] == "completed"


@pytest.mark.sqlite_only("the tick file beside the SQLite file and its mtime")
def test_tick_facts_live_beside_the_database_and_an_idle_tick_does_not_write_it(project):
    from cronjobs.runtime.idle import read_tick

    project.write_jobs("@cronjobs.daily\ndef d(ctx): pass\n")
    assert project.run().returncode == 0
    assert read_tick(str(project.database))["tick.outcome"] == "ok"
    wal = project.path / "run-cron.sqlite3-wal"

    def database_state():
        return project.database.stat().st_mtime_ns, wal.stat().st_size if wal.exists() else None

    before = database_state()
    assert project.run().returncode == 0
    facts = read_tick(str(project.database))
    assert facts["tick.outcome"] == "idle" and facts["tick.trigger"] == "cli"
    assert database_state() == before


@pytest.mark.sqlite_only("the tick file beside the SQLite file")
def test_unwritable_tick_file_is_an_error_line(project):
    project.write_jobs("@cronjobs.daily\ndef d(ctx): pass\n")
    (project.path / "run-cron.sqlite3-tick").mkdir()
    result = project.run()
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Is a directory" in result.stderr
    assert [p.name for p in project.path.iterdir() if ".sqlite3-tick." in p.name] == []


#: A trigger that refuses the update recording a periodic run's end, in each engine's dialect.
REFUSE_STATE = {
    "sqlite": ["CREATE TRIGGER refuse_state BEFORE UPDATE OF last_outcome ON job_state "
               "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
    "postgresql": ["CREATE FUNCTION refuse_state() RETURNS trigger LANGUAGE plpgsql AS "
                   "'BEGIN RAISE EXCEPTION ''injected failure''; END'",
                   "CREATE TRIGGER refuse_state BEFORE UPDATE OF last_outcome ON job_state "
                   "FOR EACH ROW EXECUTE PROCEDURE refuse_state()"],
    # no UPDATE OF column here: the end of a run is the update that moves last_finished
    "mysql": ["CREATE TRIGGER refuse_state BEFORE UPDATE ON job_state FOR EACH ROW "
              "IF NOT (NEW.last_finished <=> OLD.last_finished) THEN "
              "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF"],
}


def test_a_job_run_and_its_job_state_are_committed_together(project):
    """The run's completion and its job_state update are one transaction: a failure (or a kill)
    between them must not leave a completed run the schedule never heard of, or it runs again."""
    project.write_jobs("""
@cronjobs.daily
def report(ctx): record("report")
""")
    assert project.run().returncode == 0
    with project.connect() as db:
        for statement in REFUSE_STATE[project.engine]:
            db.execute(statement)
    result = project.run("--force", "report")
    assert result.returncode == 2 and "injected failure" in result.stderr
    assert "Traceback" not in result.stderr
    with project.connect() as db:
        runs = db.execute("SELECT uuid, status FROM message WHERE type = 'report' ORDER BY id").fetchall()
        current = db.execute("SELECT current FROM job_state WHERE name = 'report'").fetchone()[0]
    assert runs[0][1] == "completed"
    assert runs[1][1] != "completed"  # its completion was rolled back with the state update
    assert current == runs[1][0]  # still the job's unfinished run, settled by the next tick


def test_a_run_that_completed_is_reported_completed_even_if_its_end_never_reached_the_supervisor(project):
    """The summary takes what the store says, not a guess: a kill after a run's commit and before
    its "end" event reached the supervisor once reported `crashed: None` for a completed run."""
    project.write_jobs("""
@cronjobs.daily
def first(ctx):
    record("first")
    for fd in range(3, 256):  # the worker's event pipe: what the supervisor hears from now on is lost
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
        except OSError:
            pass

@cronjobs.daily
def second(ctx):
    record("second")
    time.sleep(60)
""")
    project.write_config(extra="[log]\nfile = run-cron.log\nlevel = INFO\n")
    result = project.run("--time-limit", "3", "--force", "all")
    assert project.ran() == ["first", "second"]
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("run-cron: job")] == [
        line for line in result.stderr.splitlines() if "job second" in line and "timeout: stopped at" in line]
    assert ": None" not in result.stderr
    assert "2 run(s), 1 failed" in (project.path / "run-cron.log").read_text()
    with project.connect() as db:
        assert db.execute("SELECT status FROM message WHERE type = 'first'").fetchone() == ("completed",)
