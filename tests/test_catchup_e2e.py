"""Catch-up policies, the missed-run ledger in `history`, and jitter, through real ticks under faketime."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from conftest import needs_faketime

from cronjobs.scheduling.jobopts import jitter_offset

pytestmark = needs_faketime  # the ticks run at set times under libfaketime

JOBS = """
from datetime import datetime
from zoneinfo import ZoneInfo

def now():
    return datetime.now(ZoneInfo("Europe/Berlin")).strftime("%H:%M")

@cronjobs.hourly
def latest(ctx): record("latest", now())

@cronjobs.hourly(catch_up="skip")
def skipping(ctx): record("skipping", now())

@cronjobs.hourly(catch_up="all", max_catch_up=3)
def every(ctx): record("every", now())
"""


def ran(project, name: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in project.ran() if line.split(" ", 1)[0] == name]


def test_catch_up_policies_after_downtime(project):
    project.write_jobs(JOBS)
    # Berlin is UTC+2 in June: 08:00:10 UTC is 10:00 local. Then no tick until 15:30.
    for utc in ["2026-06-01 08:00:10", "2026-06-01 13:30:10", "2026-06-01 13:31:10", "2026-06-01 13:32:10",
                "2026-06-01 13:33:10", "2026-06-01 14:00:10"]:
        result = project.run_at(utc)
        assert result.returncode == 0, result.stderr
    assert ran(project, "latest") == ["10:00", "15:30", "16:00"]
    assert ran(project, "skipping") == ["10:00", "16:00"]  # 11:00 ... 15:00 no tick came in time
    # 11:00 and 12:00 dropped (max_catch_up=3), then 13:00, 14:00, 15:00 one per tick, then 16:00.
    assert ran(project, "every") == ["10:00", "15:30", "15:31", "15:32", "16:00"]

    history = json.loads(project.run_at("2026-06-01 14:01:00", "history", "--json", "--job", "skipping").stdout)
    missed = [(entry["started_at"], entry["outcome"]) for entry in history if entry["outcome"].startswith("missed")]
    assert missed == [(f"2026-06-01T{hour:02d}:00:00+00:00", "missed (skipped)") for hour in (13, 12, 11, 10, 9)]
    text = project.run_at("2026-06-01 14:01:00", "history", "--job", "every").stdout
    assert "missed (dropped)" in text and "max_catch_up" in text
    dropped = [line for line in text.splitlines() if "missed (dropped)" in line]
    assert [line.split()[0] for line in dropped] == ["2026-06-01T12:00:00+02:00", "2026-06-01T11:00:00+02:00"]


def test_jitter_spreads_runs_deterministically(project):
    project.write_jobs("""
    @cronjobs.hourly(jitter=3600)
    def spread(ctx): record("spread")
    """)
    offset = timedelta(seconds=jitter_offset("spread", 3600))
    hour = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
    assert project.run_at("2026-06-01 08:59:30").returncode == 0  # a new job runs in its first tick
    assert project.ran() == ["spread"]
    before = hour + offset - timedelta(seconds=30)
    after = hour + offset + timedelta(seconds=30)
    for moment in (before, after, after + timedelta(minutes=1)):
        assert project.run_at(moment.strftime("%Y-%m-%d %H:%M:%S")).returncode == 0
    assert project.ran() == ["spread", "spread"]
    rows = {row["name"]: row for row in json.loads(
        project.run_at(after.strftime("%Y-%m-%d %H:%M:%S"), "periodic", "--json").stdout)}
    expected = (hour + timedelta(hours=1) + offset).astimezone(timezone(timedelta(hours=2)))
    assert rows["spread"]["next_due"] == expected.isoformat(timespec="seconds")
