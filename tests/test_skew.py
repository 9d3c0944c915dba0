"""Clock jumps: times in the future are clock skew, logged once and treated as now.

The end-to-end cases run the real CLI under faketime (libfaketime) for the moment before the step
back, then on the real clock: the store and the tick file keep what the skewed clock wrote.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import Project, cli_env

from cronjobs.messages.queue import insert_message
from cronjobs.registry import Job, schedule_key
from cronjobs.runtime.idle import is_idle, last_tick_started, record_tick
from cronjobs.runtime.runs import Runs
from cronjobs.runtime.scheduler import plan, sync_states
from cronjobs.scheduling.skew import correct_skew
from cronjobs.store import SCHEMA_VERSION

needs_faketime = pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (libfaketime)")

NOW = 1_780_000_000.0  # a Tuesday, 20:26:40 UTC
HOUR = 3600.0
DAY = 86400.0

JOBS = """
@cronjobs.hourly
def every_hour(ctx): record("hourly")

@cronjobs.handler("mail")
def mail(ctx, payload): record("mail", (payload or {}).get("note"))
"""


def test_a_last_run_a_day_ahead_is_treated_as_now_with_one_warning(db, tz, caplog):
    connection = db.connection()
    job = Job("every_hour", lambda ctx: None, "hourly")
    ahead = NOW + DAY
    sync_states(connection, [job], ahead, tz, 0)
    connection.execute("UPDATE job_state SET last_run = ?, last_finished = ?, last_outcome = 'success', "
                       "next_due = ? WHERE name = 'every_hour'", (ahead, ahead + 1, ahead + HOUR))
    with caplog.at_level(logging.WARNING, logger="cronjobs"):
        assert correct_skew(connection, NOW) == 1
        assert correct_skew(connection, NOW) == 0  # corrected: nothing left to warn about
    assert [record.getMessage() for record in caplog.records] == [
        "clock skew: the store holds times up to 86401 s in the future (1 job(s), 0 waiting message(s)); "
        "the clock stepped back: treating them as now"]
    states = sync_states(connection, [job], NOW, tz, 0)
    assert (states["every_hour"].last_run, states["every_hour"].last_finished) == (NOW, NOW)
    next_hour = NOW - NOW % HOUR + HOUR
    assert states["every_hour"].next_due == next_hour  # cached again, from the corrected last run
    assert plan([job], states, NOW, tz, 0) == []  # it ran in this hour, as far as the clock knows
    assert [p.job.name for p in plan([job], states, next_hour, tz, 0)] == ["every_hour"]


def test_a_message_queued_before_the_clock_stepped_back_keeps_only_its_delay(db, tz):
    connection = db.connection()
    runs = Runs(connection, retry_backoff=0)
    at_once = insert_message(connection, "mail", now=NOW + HOUR)  # just before the clock stepped back
    later = insert_message(connection, "mail", delay=600, now=NOW + HOUR)
    unskewed = insert_message(connection, "mail", delay=610, now=NOW - 10)
    assert [run.uuid for run in runs.claim_messages(NOW, 10, [])] == []  # without the correction
    assert correct_skew(connection, NOW) == 2
    rows = dict(connection.execute("SELECT uuid, run_at FROM message").fetchall())
    assert rows == {at_once: NOW, later: NOW + 600, unskewed: NOW + 600}
    assert [run.uuid for run in runs.claim_messages(NOW, 10, [])] == [at_once]


def test_idle_check_is_not_idle_while_the_store_holds_future_times(db):
    connection = db.connection()
    jobs = [("every_hour", schedule_key("hourly", "Europe/Berlin"))]
    connection.execute("INSERT INTO job_state (name, schedule, first_seen, last_run, last_outcome, next_due, failures) "
                       "VALUES ('every_hour', ?, ?, ?, 'success', ?, 0)", (jobs[0][1], NOW - DAY, NOW, NOW + HOUR))
    assert is_idle(connection, jobs, NOW, SCHEMA_VERSION)
    connection.execute("UPDATE job_state SET last_run = ?", (NOW + DAY,))
    assert not is_idle(connection, jobs, NOW, SCHEMA_VERSION)
    connection.execute("UPDATE job_state SET last_run = ?", (NOW,))
    insert_message(connection, "mail", now=NOW + HOUR)
    assert not is_idle(connection, jobs, NOW, SCHEMA_VERSION)


def test_a_tick_start_in_the_future_counts_as_now(tmp_path, caplog):
    database = str(tmp_path / "db.sqlite3")
    record_tick(database, {"tick.started": NOW + HOUR})
    with caplog.at_level(logging.WARNING, logger="cronjobs"):
        assert last_tick_started(database, NOW) == NOW
    assert len(caplog.records) == 1 and "clock skew" in caplog.records[0].getMessage()
    record_tick(database, {"tick.started": NOW - 5})
    assert last_tick_started(database, NOW) == NOW - 5
    record_tick(database, {"tick.started": "garbage"})
    assert last_tick_started(database, NOW) is None


def faketime(project: Project, offset: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["faketime", offset, *project.command(*args)], capture_output=True, text=True,
                          timeout=60, env=cli_env())


@needs_faketime
def test_hourly_job_runs_again_after_a_day_jump_forward_is_corrected(project):
    project.write_jobs(JOBS)
    assert faketime(project, "+1 day").returncode == 0
    assert project.ran() == ["hourly"]
    back = project.run()  # the clock is back to today: the job ran "tomorrow"
    assert back.returncode == 0
    (warning,) = back.stderr.splitlines()  # 2 jobs: every_hour and run-cron's own daily prune
    assert re.fullmatch(r"run-cron: clock skew: the store holds times up to 86[34]\d\d s in the future "
                        r"\(2 job\(s\), 0 waiting message\(s\)\); the clock stepped back: treating them as now",
                        warning), warning
    assert project.ran() == ["hourly"]  # it ran in this hour, as far as the clock knows
    assert project.run().stderr == ""  # one warning: the store was corrected
    assert faketime(project, "+65 minutes").returncode == 0
    assert project.ran() == ["hourly", "hourly"]  # the next hour, not the day after tomorrow


@needs_faketime
def test_message_queued_before_the_clock_stepped_back_runs_at_once(project):
    project.write_jobs(JOBS)
    assert project.run().returncode == 0
    assert faketime(project, "+1 hour", "enqueue", "mail", '{"note": "early"}').returncode == 0
    result = project.run()
    assert result.returncode == 0
    assert "clock skew" in result.stderr
    assert project.ran() == ["hourly", "mail early"]


@needs_faketime
def test_http_trigger_after_the_clock_stepped_back_waits_min_interval_not_an_hour(project, serving):
    project.write_jobs(JOBS)
    project.write_config("[http]\ntoken = t0ken\nmin_interval = 30\ntime_limit = 10\n")
    assert faketime(project, "+1 hour").returncode == 0  # this tick's start is now an hour ahead
    server = serving(project)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.base + "/run?token=t0ken", timeout=30)
    with refused.value as answer:
        assert answer.code == 429
        assert 1 <= int(answer.headers["Retry-After"]) <= 30
        assert json.loads(answer.read())["retry_after"] <= 30
