"""Pure scheduling decisions, with `now` passed in and Europe/Berlin's DST changes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cronjobs.schedule import (
    EPOCH,
    UTC,
    LastRun,
    check_expression,
    count_failures,
    decide,
    next_due,
    next_fire,
    next_period_start,
    period_start,
)

# Europe/Berlin: 2026-03-29 has 23 hours (02:00 -> 03:00), 2026-10-25 has 25 (03:00 -> 02:00).
SPRING = (2026, 3, 29)
AUTUMN = (2026, 10, 25)


def berlin(tz, *args, fold=0):
    return datetime(*args, tzinfo=tz, fold=fold)


def simulate(schedule, tz, start, end, step=timedelta(minutes=1), last=None, first_seen=None):
    """Tick every `step` from `start` to `end`, running whatever is due; returns the run times."""
    runs = []
    now = start.astimezone(UTC)
    first_seen = first_seen or now
    while now <= end.astimezone(UTC):
        if decide(schedule, last, now, tz, first_seen).due:
            runs.append(now)
            last = LastRun(now, "success")
        now += step
    return runs


@pytest.mark.parametrize(
    "interval, at, expected",
    [
        ("minutely", (2026, 5, 6, 7, 8, 9), (2026, 5, 6, 7, 8)),
        ("hourly", (2026, 5, 6, 7, 8, 9), (2026, 5, 6, 7)),
        ("daily", (2026, 5, 6, 7, 8, 9), (2026, 5, 6)),
        ("weekly", (2026, 5, 6, 7, 8, 9), (2026, 5, 4)),  # Wednesday -> Monday
        ("monthly", (2026, 5, 6, 7, 8, 9), (2026, 5, 1)),
        ("yearly", (2026, 5, 6, 7, 8, 9), (2026, 1, 1)),
    ],
)
def test_period_start(tz, interval, at, expected):
    assert period_start(interval, berlin(tz, *at), tz) == berlin(tz, *expected)


def test_next_period_start_crosses_year_and_month(tz):
    assert next_period_start("monthly", berlin(tz, 2026, 12, 15), tz) == berlin(tz, 2027, 1, 1)
    assert next_period_start("yearly", berlin(tz, 2026, 12, 15), tz) == berlin(tz, 2027, 1, 1)
    assert next_period_start("weekly", berlin(tz, 2026, 12, 31), tz) == berlin(tz, 2027, 1, 4)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_daily_runs_exactly_once_on_dst_days(tz, day):
    start = berlin(tz, *day) - timedelta(hours=2)
    end = berlin(tz, *day) + timedelta(hours=26)
    runs = simulate("daily", tz, start, end, last=LastRun(start - timedelta(hours=1), "success"))
    days = [run.astimezone(tz).date() for run in runs]
    assert days == [datetime(*day).date(), (datetime(*day) + timedelta(days=1)).date()]


def test_day_lengths_follow_dst(tz):
    def length(day):
        noon = berlin(tz, *day, 12)
        return next_period_start("daily", noon, tz).timestamp() - period_start("daily", noon, tz).timestamp()

    assert length(SPRING) == 23 * 3600
    assert length(AUTUMN) == 25 * 3600


def test_hourly_runs_in_both_copies_of_the_repeated_hour(tz):
    start, end = berlin(tz, *AUTUMN, 1, 30), berlin(tz, *AUTUMN, 3, 30)
    runs = simulate("hourly", tz, start, end, last=LastRun(start, "success"))
    # 02:00 CEST, 02:00 CET and 03:00 CET: three real hours began.
    assert [r.astimezone(tz).strftime("%H:%M %Z") for r in runs] == ["02:00 CEST", "02:00 CET", "03:00 CET"]


def test_cron_never_fires_twice_for_one_slot_in_the_repeated_hour(tz):
    start, end = berlin(tz, *AUTUMN) - timedelta(hours=1), berlin(tz, *AUTUMN, 12)
    runs = simulate("30 2 * * *", tz, start, end, first_seen=start)
    assert [r.astimezone(tz).strftime("%H:%M %Z") for r in runs] == ["02:30 CEST"]


def test_cron_fires_after_a_run_in_the_second_copy_of_the_hour_only_at_the_next_slot(tz):
    second_copy = berlin(tz, *AUTUMN, 2, 10, fold=1)
    following = next_fire("*/15 * * * *", second_copy, tz)
    assert following.astimezone(UTC) > second_copy.astimezone(UTC)
    assert following.astimezone(tz).strftime("%H:%M %Z") == "03:00 CET"


def test_cron_in_the_spring_gap_still_fires_that_day(tz):
    start, end = berlin(tz, *SPRING) - timedelta(hours=1), berlin(tz, 2026, 3, 30, 12)
    runs = simulate("30 2 * * *", tz, start, end, first_seen=start)
    local = [r.astimezone(tz) for r in runs]
    assert [d.date().day for d in local] == [29, 30]
    assert local[0].strftime("%H:%M %Z") == "03:30 CEST"  # 02:30 does not exist: one gap later


def test_downtime_of_three_days_runs_a_daily_job_once(tz):
    last = LastRun(berlin(tz, 2026, 6, 1, 0, 5), "success")
    now = berlin(tz, 2026, 6, 4, 9)
    assert decide("daily", last, now, tz, last.started_at).due
    runs = simulate("daily", tz, now, now + timedelta(hours=3), last=last)
    assert len(runs) == 1


def test_downtime_runs_a_cron_job_once(tz):
    last = LastRun(berlin(tz, 2026, 6, 1, 8), "success")
    now = berlin(tz, 2026, 6, 4, 9, 7)
    runs = simulate("*/15 * * * *", tz, now, now + timedelta(minutes=7), last=last)
    assert len(runs) == 1


def test_never_run_interval_job_is_due_at_once_but_cron_waits_for_its_first_fire_time(tz):
    now = berlin(tz, 2026, 6, 4, 9, 7)
    assert next_due("weekly", None, tz, now) == (EPOCH, "never ran")
    decision = decide("0 3 * * *", None, now, tz, first_seen=now)
    assert not decision.due
    assert decision.at == berlin(tz, 2026, 6, 5, 3)


def test_failed_job_retries_after_1_2_4_minutes_never_past_its_next_period(tz):
    start = berlin(tz, 2026, 6, 4, 10, 0)
    delays = []
    last = None
    now = start
    for _ in range(8):
        failures = count_failures("hourly", last, now, tz)
        last = LastRun(now, "failed", failures)
        due, _ = next_due("hourly", last, tz, start, backoff=60)
        delays.append(int((due - now).total_seconds() // 60))
        now = due
    # 1, 2, 4, 8, 16 minutes: then 29 minutes to 11:00 (the next period) where the count restarts.
    assert delays[:6] == [1, 2, 4, 8, 16, 29]
    assert delays[6] == 1


def test_timeout_counts_as_failure(tz):
    last = LastRun(berlin(tz, 2026, 6, 4, 10), "timeout", 1)
    assert decide("daily", last, berlin(tz, 2026, 6, 4, 10, 1), tz, last.started_at).due
    assert not decide("daily", last, berlin(tz, 2026, 6, 4, 10, 0, 59), tz, last.started_at).due


def test_success_resets_failure_count(tz):
    ok = LastRun(berlin(tz, 2026, 6, 4, 10), "success")
    assert count_failures("hourly", ok, berlin(tz, 2026, 6, 4, 10, 30), tz) == 1


@pytest.mark.parametrize(
    "expression, problem",
    [
        ("bad", "bad cron expression 'bad'"),
        ("61 * * * *", "not in 0-59"),
        ("@reboot", "@reboot is not a schedule"),
        ("0 0 30 2 *", "bad cron expression '0 0 30 2 *'"),
        ("@fortnightly", "Unknown special"),
    ],
)
def test_bad_expressions_are_named(expression, problem):
    assert problem in (check_expression(expression) or "")


@pytest.mark.parametrize("expression", ["*/15 8-18 * * 1-5", "@daily", "@hourly", "0 0 * * mon", "@annually"])
def test_good_expressions(expression):
    assert check_expression(expression) is None


def test_at_daily_matches_daily_midnight(tz):
    assert next_fire("@daily", berlin(tz, 2026, 6, 4, 10), tz) == berlin(tz, 2026, 6, 5)
