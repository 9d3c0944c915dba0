"""Attempts and backoff (cronjobs/runtime/runs.py, cronjobs/scheduling/schedule.py) as a user sees them:
through real ticks whose clock libfaketime sets, and the exact delays of the pure functions."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from cronjobs.runtime.runs import MAX_BACKOFF, backoff_delay
from cronjobs.scheduling.schedule import LastRun, count_failures, decide, next_due

FAILING = """
from datetime import datetime, timezone

def stamp():
    return datetime.now(timezone.utc).strftime("%H:%M:%S")

@cronjobs.handler("flaky")
def flaky(ctx, payload):
    record("flaky", stamp())
    raise RuntimeError("down")

@cronjobs.hourly
def report(ctx):
    record("report", stamp())
    raise RuntimeError("down")
"""


def utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def test_message_backoff_doubles_from_the_base_and_stops_at_one_hour():
    assert [backoff_delay(n, 60) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff_delay(1, 5000) == MAX_BACKOFF == 3600
    assert backoff_delay(0, 60) == 60  # a reset message (retry) waits the base, not half of it


def test_a_failing_message_waits_60_120_240_s_between_real_ticks(project):
    project.write_config(retry_backoff="60")
    project.write_jobs(FAILING.replace("@cronjobs.hourly", "@cronjobs.yearly"))
    uuid = project.run_at("2026-06-04 10:00:00", "enqueue", "flaky", "{}", "--max-attempts", "4").stdout.strip()
    # Each pair: a tick just before the message is due again (nothing runs), then one just after.
    codes = [project.run_at(f"2026-06-04 {at}").returncode
             for at in ["10:00:05", "10:00:55", "10:01:10", "10:03:00", "10:03:15", "10:07:05", "10:07:20"]]
    assert codes == [1, 0, 1, 0, 1, 0, 1]  # 1: a run failed in that tick
    runs = [line.split()[1] for line in project.ran() if line.startswith("flaky")]
    assert [r[:5] for r in runs] == ["10:00", "10:01", "10:03", "10:07"]
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert (shown["status"], shown["attempts_used"]) == ("failed", 4)


def test_the_waits_of_a_failing_message_are_stored_as_run_at(project):
    project.write_config(retry_backoff="60")
    project.write_jobs(FAILING.replace("@cronjobs.hourly", "@cronjobs.yearly"))
    uuid = project.run_at("2026-06-04 10:00:00", "enqueue", "flaky", "{}", "--max-attempts", "9").stdout.strip()
    waits = []
    at = utc("2026-06-04 10:00:05")
    for _ in range(3):
        assert project.run_at(datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")).returncode == 1
        with project.connect() as db:
            run_at, finished = db.execute(
                "SELECT message.run_at, MAX(attempt.finished_at) FROM message JOIN attempt "
                "ON attempt.message_id = message.id WHERE message.uuid = ? GROUP BY message.run_at", (uuid,)).fetchone()
        waits.append(round(run_at - finished))
        at = run_at + 2
    assert waits == [60, 120, 240]


def test_a_failing_periodic_job_retries_after_60_120_240_s_through_real_ticks(project):
    project.write_config(retry_backoff="60")
    project.write_jobs(FAILING)
    codes = [project.run_at(f"2026-06-04 {at}").returncode
             for at in ["10:00:05", "10:00:55", "10:01:10", "10:02:55", "10:03:15", "10:07:05", "10:07:20"]]
    assert codes == [1, 0, 1, 0, 1, 0, 1]
    runs = [line.split()[1][:5] for line in project.ran() if line.startswith("report")]
    assert runs == ["10:00", "10:01", "10:03", "10:07"]


def test_a_retry_due_exactly_at_the_next_period_is_that_period_s_run(tz):
    start = datetime(2026, 6, 4, 10, 58, tzinfo=tz)
    last = LastRun(start, "failed", 1)
    at, reason = next_due("hourly", last, tz, start, backoff=120)  # retry at 11:00 = the next hour
    assert at == datetime(2026, 6, 4, 11, 0, tzinfo=tz)
    assert reason == "a new hour began since the last run"
    assert decide("hourly", last, at, tz, start, backoff=120).due
    assert count_failures("hourly", last, at, tz) == 1  # a new period: the count starts again
