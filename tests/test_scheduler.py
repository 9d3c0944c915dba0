"""The scheduler's stored state (cronjobs/runtime/scheduler.py) follows the jobs modules, through real ticks."""

from __future__ import annotations

import json


def report(schedule: str) -> str:
    return f"""
from datetime import datetime, timezone

@cronjobs.cron({schedule!r}, name="report")
def report(ctx):
    record("report", datetime.now(timezone.utc).strftime("%H:%M"))
"""


def test_a_changed_schedule_is_followed_and_ticks_go_idle_again(project):
    project.write_config(timezone="UTC")
    project.write_jobs(report("0 3 * * *"))
    assert project.run_at("2026-06-04 10:00:05").returncode == 0
    assert "nothing due" in project.run_at("2026-06-04 10:01:05", "-v").stderr
    project.write_jobs(report("*/5 * * * *"))
    changed = project.run_at("2026-06-04 10:02:05", "-v")
    assert changed.returncode == 0 and "nothing due" not in changed.stderr  # the cached due time is stale
    assert project.run_at("2026-06-04 10:05:05").returncode == 0
    assert "nothing due" in project.run_at("2026-06-04 10:06:05", "-v").stderr  # idle again
    (job,) = [job for job in json.loads(project.run_at("2026-06-04 10:06:10", "periodic", "--json").stdout)
              if job["name"] == "report"]
    assert (job["schedule"], job["next_due"][:16]) == ("*/5 * * * *", "2026-06-04T10:10")
    assert project.run_at("2026-06-04 10:10:05").returncode == 0
    assert project.ran() == ["report 10:05", "report 10:10"]  # never at 03:00 rules, never twice
