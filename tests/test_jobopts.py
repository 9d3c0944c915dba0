"""Decorator options of periodic jobs: at=/day=/month= as cron expressions, option checks, jitter."""

from __future__ import annotations

from datetime import datetime

import pytest

import cronjobs
from cronjobs.errors import JobDefinitionError
from cronjobs.registry import registry as global_registry
from cronjobs.scheduling.jobopts import interval_spec, jitter_offset
from cronjobs.scheduling.schedule import get_timezone, next_fire


@pytest.fixture(autouse=True)
def clean_registry():
    saved = dict(global_registry.jobs)
    yield
    global_registry.jobs.clear()
    global_registry.jobs.update(saved)


@pytest.mark.parametrize("schedule, options, expected", [
    ("daily", {"at": "03:00"}, "0 3 * * *"),
    ("daily", {"at": "23:59"}, "59 23 * * *"),
    ("weekly", {"day": "sun", "at": "04:30"}, "30 4 * * 0"),
    ("weekly", {"day": "Friday"}, "0 0 * * 5"),
    ("weekly", {"day": 7, "at": "1:05"}, "5 1 * * 0"),
    ("monthly", {"day": 15, "at": "02:00"}, "0 2 15 * *"),
    ("yearly", {"month": "dec", "day": 24, "at": "18:00"}, "0 18 24 12 *"),
    ("hourly", {"at": ":15"}, "15 * * * *"),
])
def test_interval_options_are_cron_expressions(schedule, options, expected):
    assert interval_spec(schedule, **options) == expected


@pytest.mark.parametrize("schedule, options, message", [
    ("daily", {"at": "24:00"}, "at='24:00': expected a time of day such as \"03:00\""),
    ("daily", {"day": "sun"}, "day= is not an option of @cronjobs.daily (it takes at=)"),
    ("weekly", {"day": "sunny"}, "day='sunny': expected a weekday"),
    ("monthly", {"day": 32}, "day=32: expected a whole number from 1 to 31"),
    ("minutely", {"at": "00:00"}, "at= is not an option of @cronjobs.minutely"),
])
def test_bad_interval_options(schedule, options, message):
    with pytest.raises(ValueError) as info:
        interval_spec(schedule, **options)
    assert str(info.value).startswith(message)


def test_decorators_record_the_options():
    global_registry.jobs.clear()
    @cronjobs.weekly(day="sun", at="04:30", timezone="America/New_York", time_limit=120)
    def backup(ctx):
        pass

    job = backup.cronjob
    assert (job.schedule, job.spec, job.timezone, job.time_limit) == ("weekly", "30 4 * * 0", "America/New_York", 120)
    assert job.label == "weekly (30 4 * * 0)"
    assert job.group == 2  # still runs with the weekly jobs, before daily ones
    # The next Sunday 04:30 in New York, whatever the configured zone.
    after = datetime(2026, 12, 3, 12, 0, tzinfo=get_timezone("UTC"))
    assert next_fire(job.spec, after, get_timezone(job.timezone)).isoformat() == "2026-12-06T04:30:00-05:00"


def test_bad_options_name_the_job():
    with pytest.raises(JobDefinitionError, match="time_limit=-1: expected seconds > 0"):
        @cronjobs.daily(time_limit=-1)
        def broken(ctx):
            pass
    with pytest.raises(JobDefinitionError, match="catch_up='some': expected one of"):
        @cronjobs.hourly(catch_up="some")
        def broken2(ctx):
            pass


def test_manual_jobs_are_not_in_all():
    global_registry.jobs.clear()  # other tests' jobs may share these names

    @cronjobs.manual
    def reindex(ctx):
        pass

    @cronjobs.daily
    def nightly(ctx):
        pass

    assert [job.name for job in global_registry.select(["all"])] == ["nightly"]
    assert [job.name for job in global_registry.select(["reindex"])] == ["reindex"]
    assert [job.name for job in global_registry.scheduled_jobs()] == ["nightly"]


def test_jitter_is_deterministic_per_name():
    assert jitter_offset("a", 0) == 0
    assert jitter_offset("sync-mail", 600) == jitter_offset("sync-mail", 600)
    spread = {jitter_offset(f"site-{n}", 600) for n in range(50)}
    assert len(spread) > 30 and all(0 <= value < 600 for value in spread)
