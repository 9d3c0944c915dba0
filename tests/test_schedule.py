"""Pure scheduling decisions, with `now` passed in: Debian cron's rules, its DST changes included.

The expected fire times of the DST tables follow cron(8) ("Special considerations exist when the
clock is changed by less than 3 hours"): wildcard jobs (minute or hour field starting with `*`) run
on the clock as it is, so in both copies of a repeated hour and not in a skipped one; fixed-time
jobs run once in a repeated hour and right after a spring-forward change for the slots it skipped.
Each row was also checked against Debian's cron 3.0pl1 itself, run under faketime
(scripts/cron-oracle), apart from run-cron's one-run-per-tick for several skipped slots.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cronjobs.scheduling.schedule import (
    EPOCH,
    UTC,
    LastRun,
    check_expression,
    count_failures,
    decide,
    get_timezone,
    next_due,
    next_fire,
    next_regular,
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
        ("minutely", (2026, 5, 6, 7, 8, 9), (2026, 5, 6, 7, 9)),
        ("hourly", (2026, 5, 6, 7, 8, 9), (2026, 5, 6, 8)),
        ("daily", (2026, 5, 6, 7, 8, 9), (2026, 5, 7)),
        ("weekly", (2026, 5, 6, 7, 8, 9), (2026, 5, 11)),  # Wednesday -> Monday
        ("monthly", (2026, 5, 6, 7, 8, 9), (2026, 6, 1)),
        ("yearly", (2026, 5, 6, 7, 8, 9), (2027, 1, 1)),
    ],
)
def test_next_period(tz, interval, at, expected):
    assert next_regular(interval, berlin(tz, *at), tz) == berlin(tz, *expected)


def test_next_period_crosses_year_and_month(tz):
    assert next_regular("monthly", berlin(tz, 2026, 12, 15), tz) == berlin(tz, 2027, 1, 1)
    assert next_regular("yearly", berlin(tz, 2026, 12, 15), tz) == berlin(tz, 2027, 1, 1)
    assert next_regular("weekly", berlin(tz, 2026, 12, 31), tz) == berlin(tz, 2027, 1, 4)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_daily_runs_exactly_once_on_dst_days(tz, day):
    start = berlin(tz, *day) - timedelta(hours=2)
    end = berlin(tz, *day) + timedelta(hours=26)
    runs = simulate("daily", tz, start, end, last=LastRun(start - timedelta(hours=1), "success"))
    days = [run.astimezone(tz).date() for run in runs]
    assert days == [datetime(*day).date(), (datetime(*day) + timedelta(days=1)).date()]


def test_day_lengths_follow_dst(tz):
    def length(day):
        midnight = berlin(tz, *day)
        return next_regular("daily", midnight, tz).timestamp() - midnight.timestamp()

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


def test_wildcard_cron_fires_in_the_second_copy_of_the_hour_too(tz):
    second_copy = berlin(tz, *AUTUMN, 2, 10, fold=1)
    assert next_fire("*/15 * * * *", second_copy, tz).strftime("%H:%M %Z") == "02:15 CET"
    first_copy = berlin(tz, *AUTUMN, 2, 50)
    assert next_fire("*/15 * * * *", first_copy, tz).strftime("%H:%M %Z") == "02:00 CET"


def test_fixed_cron_after_a_run_in_the_second_copy_fires_after_the_repeated_hour(tz):
    second_copy = berlin(tz, *AUTUMN, 2, 10, fold=1)
    assert next_fire("15,45 2,3 * * *", second_copy, tz).strftime("%H:%M %Z") == "03:15 CET"


def test_cron_in_the_spring_gap_fires_right_after_the_change(tz):
    start, end = berlin(tz, *SPRING) - timedelta(hours=1), berlin(tz, 2026, 3, 30, 12)
    runs = simulate("30 2 * * *", tz, start, end, first_seen=start)
    local = [r.astimezone(tz) for r in runs]
    assert [d.date().day for d in local] == [29, 30]
    assert local[0].strftime("%H:%M %Z") == "03:00 CEST"  # 02:30 does not exist: at the change


# Both DST changes of 2026 in three zones: (zone, first tick, real minutes ticked).
CHANGES = {
    "berlin-spring": ("Europe/Berlin", (2026, 3, 29, 1, 40), 80),  # 02:00 CET -> 03:00 CEST
    "berlin-autumn": ("Europe/Berlin", (2026, 10, 25, 1, 40), 200),  # 03:00 CEST -> 02:00 CET
    "new-york-spring": ("America/New_York", (2026, 3, 8, 1, 40), 80),  # 02:00 EST -> 03:00 EDT
    "new-york-autumn": ("America/New_York", (2026, 11, 1, 0, 40), 200),  # 02:00 EDT -> 01:00 EST
    "lord-howe-autumn": ("Australia/Lord_Howe", (2026, 4, 5, 0, 50), 160),  # 02:00 +11 -> 01:30 +1030
    "lord-howe-spring": ("Australia/Lord_Howe", (2026, 10, 4, 1, 40), 50),  # 02:00 +1030 -> 02:30 +11
}

DST_TABLE = [
    # Wildcard minute or hour: the clock as it is; both copies of a repeated hour, none of a skipped one.
    ("berlin-spring", "*/15 * * * *", "01:45 CET, 03:00 CEST, 03:15 CEST, 03:30 CEST, 03:45 CEST, 04:00 CEST"),
    ("berlin-autumn", "*/15 * * * *", "01:45 CEST, 02:00 CEST, 02:15 CEST, 02:30 CEST, 02:45 CEST, "
                                      "02:00 CET, 02:15 CET, 02:30 CET, 02:45 CET, 03:00 CET, 03:15 CET, 03:30 CET, "
                                      "03:45 CET, 04:00 CET"),
    ("berlin-autumn", "*/5 2 * * *", "02:00 CEST, 02:05 CEST, 02:10 CEST, 02:15 CEST, 02:20 CEST, 02:25 CEST, "
                                     "02:30 CEST, 02:35 CEST, 02:40 CEST, 02:45 CEST, 02:50 CEST, 02:55 CEST, "
                                     "02:00 CET, 02:05 CET, 02:10 CET, 02:15 CET, 02:20 CET, 02:25 CET, "
                                     "02:30 CET, 02:35 CET, 02:40 CET, 02:45 CET, 02:50 CET, 02:55 CET"),
    ("berlin-spring", "0 * * * *", "03:00 CEST, 04:00 CEST"),
    ("berlin-autumn", "0 * * * *", "02:00 CEST, 02:00 CET, 03:00 CET, 04:00 CET"),
    ("berlin-autumn", "@hourly", "02:00 CEST, 02:00 CET, 03:00 CET, 04:00 CET"),
    ("berlin-spring", "*/15 2 * * *", ""),  # a wildcard job: 02:xx never shows on the clock that night
    ("berlin-autumn", "*/15 2 * * *", "02:00 CEST, 02:15 CEST, 02:30 CEST, 02:45 CEST, "
                                      "02:00 CET, 02:15 CET, 02:30 CET, 02:45 CET"),
    ("new-york-spring", "0 * * * *", "03:00 EDT, 04:00 EDT"),
    ("new-york-autumn", "0 * * * *", "01:00 EDT, 01:00 EST, 02:00 EST, 03:00 EST"),
    ("new-york-autumn", "*/30 * * * *", "01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST, 02:30 EST, "
                                        "03:00 EST"),
    ("lord-howe-autumn", "0 * * * *", "01:00 +11, 02:00 +1030, 03:00 +1030"),
    ("lord-howe-autumn", "*/15 * * * *", "01:00 +11, 01:15 +11, 01:30 +11, 01:45 +11, 01:30 +1030, "
                                         "01:45 +1030, 02:00 +1030, 02:15 +1030, 02:30 +1030, 02:45 +1030, "
                                         "03:00 +1030"),
    ("lord-howe-spring", "0 * * * *", "03:00 +11"),
    ("lord-howe-spring", "*/15 2 * * *", "02:30 +11, 02:45 +11"),
    # Fixed time: a clock that never goes back; a repeated slot runs once, skipped slots right after
    # the change, one per tick in order (cron: all at once).
    ("berlin-spring", "30 2 * * *", "03:00 CEST"),
    ("berlin-spring", "0,30 2 * * *", "03:00 CEST, 03:01 CEST"),
    ("berlin-spring", "0,30 2,3 * * *", "03:00 CEST, 03:01 CEST, 03:02 CEST, 03:30 CEST"),
    ("berlin-spring", "45 1 * * *", "01:45 CET"),
    ("berlin-autumn", "30 2 * * *", "02:30 CEST"),
    ("berlin-autumn", "0,30 2 * * *", "02:00 CEST, 02:30 CEST"),
    ("berlin-autumn", "0 3 * * *", "03:00 CET"),
    ("new-york-spring", "0,30 2 * * *", "03:00 EDT, 03:01 EDT"),
    ("new-york-spring", "15 2 * * *", "03:00 EDT"),
    ("new-york-autumn", "15,45 1 * * *", "01:15 EDT, 01:45 EDT"),
    ("new-york-autumn", "0 2 * * *", "02:00 EST"),
    ("lord-howe-autumn", "45 1 * * *", "01:45 +11"),
    ("lord-howe-autumn", "0,30 2 * * *", "02:00 +1030, 02:30 +1030"),
    ("lord-howe-spring", "0,15,30 2 * * *", "02:30 +11, 02:31 +11, 02:32 +11"),
    ("lord-howe-spring", "45 2 * * *", "02:45 +11"),
]


@pytest.mark.parametrize("change, expression, expected", DST_TABLE)
def test_dst_changes_fire_as_cron_does(change, expression, expected):
    zone, start, minutes = CHANGES[change]
    tz = get_timezone(zone)
    first = datetime(*start, tzinfo=tz)
    end = first.astimezone(UTC) + timedelta(minutes=minutes)
    runs = simulate(expression, tz, first, end, first_seen=first)
    assert ", ".join(run.astimezone(tz).strftime("%H:%M %Z") for run in runs) == expected


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("interval, expression", [("hourly", "0 * * * *"), ("minutely", "* * * * *"),
                                                  ("daily", "0 0 * * *")])
def test_interval_decorators_agree_with_their_cron_expression(change, interval, expression):
    zone, start, minutes = CHANGES[change]
    tz = get_timezone(zone)
    first = datetime(*start, tzinfo=tz)
    last = LastRun(first - timedelta(seconds=1), "success")
    end = first.astimezone(UTC) + timedelta(minutes=minutes)
    by_interval = simulate(interval, tz, first, end, last=last)
    assert by_interval == simulate(expression, tz, first, end, last=last)
    assert len(by_interval) == len(set(by_interval))


def test_hourly_on_lord_howe_does_not_run_every_tick_when_clocks_go_back_30_minutes():
    tz = get_timezone("Australia/Lord_Howe")
    first = datetime(2026, 4, 5, 0, 30, tzinfo=tz)
    end = first.astimezone(UTC) + timedelta(hours=4)
    runs = simulate("hourly", tz, first, end, last=LastRun(first, "success"))
    assert [r.astimezone(tz).strftime("%H:%M %Z") for r in runs] == [
        "01:00 +11", "02:00 +1030", "03:00 +1030", "04:00 +1030"]


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
        ("0 0 * * sat-sun", "bad cron expression"),
        ("5/2 * * * *", "bad cron expression"),
        ("0 0 * * 8", "bad cron expression"),
        ("0 0 * *", "bad cron expression"),
        ("\u0661 * * * *", "is not a number or name in the minute field"),  # an Arabic-Indic digit one
        ("0 0 31 4 *", "it never fires"),
    ],
)
def test_bad_expressions_are_named(expression, problem):
    assert problem in (check_expression(expression) or "")


@pytest.mark.parametrize("expression", ["*/15 8-18 * * 1-5", "@daily", "@hourly", "0 0 * * mon", "@annually",
                                        "0 0 * * 7-7", "0 16 */2 * sat", "@midnight", "0 12 29 2 *"])
def test_good_expressions(expression):
    assert check_expression(expression) is None


def test_at_daily_matches_daily_midnight(tz):
    assert next_fire("@daily", berlin(tz, 2026, 6, 4, 10), tz) == berlin(tz, 2026, 6, 5)


def fire_days(expression, tz, count=8, start=(2026, 12, 1)):
    """The next `count` fire times of `expression` from `start`, as 'Sat 05' style days."""
    at, days = datetime(*start, tzinfo=tz), []
    for _ in range(count):
        at = next_fire(expression, at, tz)
        days.append(at.strftime("%a %d %H:%M"))
    return days


@pytest.mark.parametrize(
    "expression, expected",
    [
        # Day of month starts with `*`: a day must match both day fields (cron's DOM_STAR flag).
        ("0 16 */2 * sat", ["Sat 05 16:00", "Sat 19 16:00", "Sat 09 16:00", "Sat 23 16:00", "Sat 13 16:00"]),
        ("0 0 * * sat", ["Sat 05 00:00", "Sat 12 00:00", "Sat 19 00:00", "Sat 26 00:00", "Sat 02 00:00"]),
        # Neither starts with `*`: either field (the 1st, the 15th and every Monday).
        ("0 0 1,15 * mon", ["Mon 07 00:00", "Mon 14 00:00", "Tue 15 00:00", "Mon 21 00:00", "Mon 28 00:00"]),
        ("0 0 13 * 1-7", ["Wed 02 00:00", "Thu 03 00:00", "Fri 04 00:00", "Sat 05 00:00", "Sun 06 00:00"]),
        # 0 and 7 are both Sunday.
        ("0 0 * * 7-7", ["Sun 06 00:00", "Sun 13 00:00", "Sun 20 00:00", "Sun 27 00:00", "Sun 03 00:00"]),
        ("0 0 * * 7", ["Sun 06 00:00", "Sun 13 00:00", "Sun 20 00:00", "Sun 27 00:00", "Sun 03 00:00"]),
        ("0 0 * * 1-7", ["Wed 02 00:00", "Thu 03 00:00", "Fri 04 00:00", "Sat 05 00:00", "Sun 06 00:00"]),
        ("0 0 * * 5-7/2", ["Fri 04 00:00", "Sun 06 00:00", "Fri 11 00:00", "Sun 13 00:00", "Fri 18 00:00"]),
        ("0 0 * * */2", ["Thu 03 00:00", "Sat 05 00:00", "Sun 06 00:00", "Tue 08 00:00", "Thu 10 00:00"]),
        ("0 0 * * SUN,sat", ["Sat 05 00:00", "Sun 06 00:00", "Sat 12 00:00", "Sun 13 00:00", "Sat 19 00:00"]),
        # The macros mean what cron's mean.
        ("@weekly", ["Sun 06 00:00", "Sun 13 00:00", "Sun 20 00:00", "Sun 27 00:00", "Sun 03 00:00"]),
        ("@daily", ["Wed 02 00:00", "Thu 03 00:00", "Fri 04 00:00", "Sat 05 00:00", "Sun 06 00:00"]),
        ("@midnight", ["Wed 02 00:00", "Thu 03 00:00", "Fri 04 00:00", "Sat 05 00:00", "Sun 06 00:00"]),
        ("@hourly", ["Tue 01 01:00", "Tue 01 02:00", "Tue 01 03:00", "Tue 01 04:00", "Tue 01 05:00"]),
        ("@monthly", ["Fri 01 00:00", "Mon 01 00:00", "Mon 01 00:00", "Thu 01 00:00", "Sat 01 00:00"]),
        ("@yearly", ["Fri 01 00:00", "Sat 01 00:00", "Mon 01 00:00", "Tue 01 00:00", "Wed 01 00:00"]),
        ("@annually", ["Fri 01 00:00", "Sat 01 00:00", "Mon 01 00:00", "Tue 01 00:00", "Wed 01 00:00"]),
        ("0 12 29 2 *", ["Tue 29 12:00", "Sun 29 12:00", "Fri 29 12:00", "Wed 29 12:00", "Mon 29 12:00"]),
    ],
)
def test_day_fields_names_and_macros_as_cron(tz, expression, expected):
    assert fire_days(expression, tz, count=5) == expected


@pytest.mark.parametrize(
    "interval, expected",
    [
        ("weekly", ["Mon 07 00:00", "Mon 14 00:00", "Mon 21 00:00"]),  # ISO weeks: Monday, unlike @weekly
        ("monthly", ["Fri 01 00:00", "Mon 01 00:00", "Mon 01 00:00"]),
        ("yearly", ["Fri 01 00:00", "Sat 01 00:00", "Mon 01 00:00"]),
    ],
)
def test_interval_decorators_begin_their_periods(tz, interval, expected):
    at, days = datetime(2026, 12, 1, tzinfo=tz), []
    for _ in range(3):
        at = next_regular(interval, at, tz)
        days.append(at.strftime("%a %d %H:%M"))
    assert days == expected


def test_due_times_cached_by_older_rules_are_computed_again(db, tz):
    from cronjobs.registry import Job
    from cronjobs.runtime.scheduler import sync_states

    connection = db.connection()
    now = berlin(tz, 2026, 12, 1, 12)
    # 0.1.0 read `1-7` as `*`, so only the 13th, and cached that under a key without a rules version.
    connection.execute(
        "INSERT INTO job_state (name, schedule, first_seen, failures, next_due) VALUES (?, ?, ?, 0, ?)",
        ("report", "0 0 13 * 1-7|Europe/Berlin", now.timestamp(), berlin(tz, 2026, 12, 13).timestamp()))
    states = sync_states(connection, [Job("report", print, "0 0 13 * 1-7")], now.timestamp(), tz, 60.0)
    assert states["report"].next_due == berlin(tz, 2026, 12, 2).timestamp()  # every day, as cron reads it


def cron_daemon_runs(expression, tz, start, end):
    """What Debian's cron does, minute by minute: cron.c's main loop (the "wakeupKind" cases) over the
    real minutes from `start` to `end`, with its virtual clock of local wall minutes. Returns
    (instant, wall slot) for each run of the job."""
    from cronjobs.scheduling.cronspec import parse

    spec = parse(expression)
    runs = []
    moment = start.astimezone(UTC).replace(second=0, microsecond=0)

    def run(at, wall, wildcard_pass, fixed_pass):
        if spec.matches(wall) and (fixed_pass if not spec.wildcard else wildcard_pass):
            runs.append((at, wall))

    virtual = moment.astimezone(tz).replace(tzinfo=None, fold=0)
    while True:
        moment += timedelta(minutes=1)
        if moment > end:
            return runs
        running = moment.astimezone(tz).replace(tzinfo=None, fold=0)
        difference = (running - virtual) // timedelta(minutes=1)
        if difference == 1 or difference > 180 or difference < -180:
            run(moment, running, True, True)
            virtual = running
        elif 0 < difference <= 5:  # woke late: every minute missed, both kinds
            while virtual < running:
                virtual += timedelta(minutes=1)
                run(moment, virtual, True, True)
        elif difference > 5:  # clock forward: wildcard jobs now, fixed ones for each skipped minute
            run(moment, running, True, False)
            while virtual < running:
                virtual += timedelta(minutes=1)
                run(moment, virtual, False, True)
        else:  # clock back: wildcard jobs on the new time, the virtual clock waits
            run(moment, running, True, False)


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("minute", ["*", "*/20", "0", "0,30", "15-45/15", "59"])
@pytest.mark.parametrize("hour", ["*", "1", "2", "1-3", "0,2"])
def test_fire_times_agree_with_cron_daemon_loop(change, minute, hour):
    zone, start, _ = CHANGES[change]
    tz = get_timezone(zone)
    expression = f"{minute} {hour} * * *"
    begin = datetime(*start, tzinfo=tz).astimezone(UTC) - timedelta(hours=2)
    end = begin + timedelta(hours=6)
    daemon = cron_daemon_runs(expression, tz, begin, end)
    # run-cron starts one run per tick where cron starts several at once after a spring-forward change.
    expected, previous = [], None
    for at, _ in daemon:
        if previous is not None and at < previous + timedelta(minutes=1):
            at = previous + timedelta(minutes=1)
        expected.append(at)
        previous = at
    ours, at = [], begin
    while True:
        at = next_fire(expression, at, tz)
        if at > end:
            break
        ours.append(at.astimezone(UTC))
    assert ours == expected
