"""DST changes through the real CLI: one `run-cron` tick per process, the clock set by faketime."""

from __future__ import annotations

import os
import subprocess

from conftest import LIBFAKETIME, cli_env, needs_faketime

pytestmark = needs_faketime

JOBS = """
from datetime import datetime
from zoneinfo import ZoneInfo

def now():
    return datetime.now(ZoneInfo("Europe/Berlin")).strftime("%H:%M %Z")

@cronjobs.cron("*/15 * * * *", name="quarter")
def quarter(ctx): record("quarter", now())

@cronjobs.hourly
def hourly(ctx): record("hourly", now())

@cronjobs.cron("30 2 * * *", name="fixed")
def fixed(ctx): record("fixed", now())

@cronjobs.cron("0,30 2 * * *", name="twice")
def twice(ctx): record("twice", now())

@cronjobs.cron("*/15 2 * * *", name="wild-two")
def wild_two(ctx): record("wild-two", now())
"""


def tick_at(project, utc: str) -> None:
    env = {**cli_env(), "TZ": "UTC", "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": f"@{utc}"}
    result = subprocess.run(project.command(), capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr


def ran(project, name: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in project.ran() if line.split(" ", 1)[0] == name]


def test_autumn_in_berlin(project):
    project.write_jobs(JOBS)
    # 03:00 CEST on 25 October is 01:00 UTC, when the clock goes back to 02:00 CET.
    for utc in ["2026-10-24 23:50:10", "2026-10-25 00:00:10", "2026-10-25 00:15:10", "2026-10-25 00:30:10",
                "2026-10-25 00:45:10", "2026-10-25 01:00:10", "2026-10-25 01:15:10", "2026-10-25 02:00:10"]:
        tick_at(project, utc)
    assert ran(project, "quarter") == ["02:00 CEST", "02:15 CEST", "02:30 CEST", "02:45 CEST", "02:00 CET",
                                       "02:15 CET", "03:00 CET"]  # 02:30 and 02:45 CET missed: one run
    assert ran(project, "hourly") == ["01:50 CEST", "02:00 CEST", "02:00 CET", "03:00 CET"]
    assert ran(project, "fixed") == ["02:30 CEST"]
    assert ran(project, "twice") == ["02:00 CEST", "02:30 CEST"]
    assert ran(project, "wild-two") == ["02:00 CEST", "02:15 CEST", "02:30 CEST", "02:45 CEST", "02:00 CET",
                                        "02:15 CET", "03:00 CET"]  # 02:30 and 02:45 CET missed: one run


def test_spring_in_berlin(project):
    project.write_jobs(JOBS)
    # 02:00 CET on 29 March is 01:00 UTC, when the clock jumps to 03:00 CEST.
    for utc in ["2026-03-29 00:50:10", "2026-03-29 01:00:10", "2026-03-29 01:01:10", "2026-03-29 01:02:10",
                "2026-03-29 01:15:10"]:
        tick_at(project, utc)
    assert ran(project, "quarter") == ["03:00 CEST", "03:15 CEST"]
    assert ran(project, "hourly") == ["01:50 CET", "03:00 CEST"]
    assert ran(project, "fixed") == ["03:00 CEST"]
    assert ran(project, "twice") == ["03:00 CEST", "03:01 CEST"]  # each skipped time, one per tick
    assert ran(project, "wild-two") == []  # 02:xx never showed on the clock
    assert not os.path.exists(str(project.database) + "-journal")


def test_hourly_on_lord_howe_when_clocks_go_back_30_minutes(project):
    project.write_config(timezone="Australia/Lord_Howe")
    project.write_jobs("""
from datetime import datetime
from zoneinfo import ZoneInfo

@cronjobs.hourly
def hourly(ctx): record("hourly", datetime.now(ZoneInfo("Australia/Lord_Howe")).strftime("%H:%M%z"))
""")
    # 02:00 +11 on 5 April is 15:00 UTC, when the clock goes back to 01:30 +1030; a tick every 10 minutes.
    for minute in range(-10, 121, 10):
        tick_at(project, f"2026-04-04 {14 + minute // 60:02d}:{minute % 60:02d}:10")
    assert ran(project, "hourly") == ["00:50+1100", "01:00+1100", "02:00+1030"]  # the first: never ran
