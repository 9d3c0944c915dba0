"""Manual jobs, at=/day=, per-job time zones and time limits, through the real CLI and real ticks."""

from __future__ import annotations

import json
import time

from conftest import needs_faketime

pytestmark = needs_faketime  # the ticks run at set times under libfaketime


def test_manual_job_runs_only_when_named(project):
    project.write_jobs("""
    @cronjobs.manual
    def reindex(ctx): record("reindex")

    @cronjobs.minutely
    def tick(ctx): record("tick")
    """)
    assert project.run().returncode == 0
    assert project.run("--force", "all").returncode == 0
    assert project.ran() == ["tick", "tick"]
    assert project.run("--force", "reindex").returncode == 0
    assert project.run("run", "reindex").returncode == 0
    assert project.ran() == ["tick", "tick", "reindex", "reindex"]
    rows = {row["name"]: row for row in json.loads(project.run("periodic", "--json").stdout)}
    assert rows["reindex"]["schedule"] == "manual" and rows["reindex"]["next_due"] is None
    assert rows["reindex"]["last_outcome"] == "completed"
    missing = project.run("run", "nothing")
    assert missing.returncode == 2 and "nothing" in missing.stderr and "Traceback" not in missing.stderr


def test_daily_at_and_weekly_day_in_their_own_zone(project):
    project.write_jobs("""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    @cronjobs.daily(at="03:00")
    def nightly(ctx): record("nightly", datetime.now(ZoneInfo("Europe/Berlin")).strftime("%a %H:%M"))

    @cronjobs.weekly(day="sun", at="04:30", timezone="America/New_York")
    def backup(ctx): record("backup", datetime.now(ZoneInfo("America/New_York")).strftime("%a %H:%M"))
    """)
    # Thursday 3 December 2026; Berlin is UTC+1, New York UTC-5.
    for utc in ["2026-12-03 12:00:10", "2026-12-04 01:59:10", "2026-12-04 02:00:10", "2026-12-04 02:01:10",
                "2026-12-05 02:00:10", "2026-12-06 09:29:10", "2026-12-06 09:30:10", "2026-12-06 09:31:10"]:
        result = project.run_at(utc)
        assert result.returncode == 0, result.stderr
    # Sunday 03:00 passed without a tick: it runs at the next one (catch_up="latest").
    assert project.ran() == ["nightly Fri 03:00", "nightly Sat 03:00", "nightly Sun 10:29", "backup Sun 04:30"]
    listed = project.run_at("2026-12-06 09:32:00", "periodic", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["backup"]["schedule"] == "weekly (30 4 * * 0)"
    assert rows["backup"]["timezone"] == "America/New_York"
    assert rows["backup"]["next_due"] == "2026-12-13T10:30:00+01:00"  # shown in the configured zone
    assert rows["nightly"]["next_due"] == "2026-12-07T03:00:00+01:00"


def test_bad_timezone_is_one_line(project):
    project.write_jobs("""
    @cronjobs.daily(timezone="Mars/Olympus")
    def nightly(ctx): record("nightly")
    """)
    result = project.run()
    assert result.returncode == 2
    assert "nightly" in result.stderr and "Mars/Olympus" in result.stderr and "Traceback" not in result.stderr


def test_per_job_time_limit_is_hard(project):
    project.write_jobs("""
    @cronjobs.minutely(time_limit=1)
    def stuck(ctx):
        record("stuck start")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.05)

    @cronjobs.minutely(time_limit=1)
    def polite(ctx):
        for i in range(1000):
            ctx.checkpoint(offset=i)
            time.sleep(0.01)
        record("polite never ends")
    """)
    result = project.run("--force", "polite")
    assert result.returncode == 0, result.stderr
    history = json.loads(project.run("history", "--json", "--job", "polite").stdout)
    assert history[0]["outcome"] == "continued"  # stopped at its own soft deadline, continues next tick
    began = time.monotonic()
    result = project.run("--force", "stuck")  # the tick's own limit is 20 s
    assert time.monotonic() - began < 15  # killed at its own 1 s limit, not the tick's 20 s
    assert result.returncode == 1
    history = json.loads(project.run("history", "--json", "--job", "stuck").stdout)
    assert history[0]["outcome"] == "timeout"
