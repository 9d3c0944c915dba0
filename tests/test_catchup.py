"""Catch-up policies as pure functions of (schedule, last slot handled, now, time zone), and a worker's
ledger of the slots it ran and gave up on each engine."""

from __future__ import annotations

from datetime import datetime

import pytest

from cronjobs.registry import Job
from cronjobs.reports import history
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling import ledger
from cronjobs.scheduling.catchup import MISSED_AFTER, decide_catch_up, slots
from cronjobs.scheduling.schedule import next_regular


@pytest.fixture
def db(any_db):
    return any_db


def at(tz, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def test_slots_between(tz):
    found = slots("hourly", at(tz, "2026-03-29 00:30"), at(tz, "2026-03-29 04:00"), tz)
    # 02:00 does not exist in Berlin that night: the hourly wildcard job skips it, as cron does.
    assert [s.strftime("%H:%M %Z") for s in found] == ["01:00 CET", "03:00 CEST", "04:00 CEST"]
    assert len(slots("minutely", at(tz, "2026-01-01 00:00"), at(tz, "2026-02-01 00:00"), tz, limit=5)) == 5


def test_latest_runs_once_for_all_missed(tz):
    decision = decide_catch_up("latest", "hourly", at(tz, "2026-06-01 10:00"), at(tz, "2026-06-01 15:30"), tz)
    assert decision.slot == at(tz, "2026-06-01 15:00") and not decision.skipped and not decision.dropped


def test_skip_drops_slots_no_tick_reached_in_time(tz):
    handled = at(tz, "2026-06-01 10:00")
    late = decide_catch_up("skip", "hourly", handled, at(tz, "2026-06-01 12:30"), tz)
    assert late.slot is None
    assert late.skipped == [at(tz, "2026-06-01 11:00"), at(tz, "2026-06-01 12:00")]
    assert late.next_due == at(tz, "2026-06-01 13:00")
    in_time = decide_catch_up("skip", "hourly", handled, at(tz, "2026-06-01 12:04"), tz)
    assert in_time.slot == at(tz, "2026-06-01 12:00") and in_time.skipped == [at(tz, "2026-06-01 11:00")]
    assert MISSED_AFTER == 300


def test_all_runs_each_slot_oldest_first_bounded(tz):
    handled = at(tz, "2026-06-01 10:00")
    now = at(tz, "2026-06-01 15:30")
    first = decide_catch_up("all", "hourly", handled, now, tz, max_catch_up=3)
    assert first.slot == at(tz, "2026-06-01 13:00")
    assert first.dropped == [at(tz, "2026-06-01 11:00"), at(tz, "2026-06-01 12:00")]
    second = decide_catch_up("all", "hourly", first.slot, now, tz, max_catch_up=3)
    assert second.slot == at(tz, "2026-06-01 14:00") and not second.dropped
    assert decide_catch_up("all", "hourly", at(tz, "2026-06-01 15:00"), now, tz).slot is None


def test_jitter_moves_every_fire_time(tz):
    after = at(tz, "2026-06-01 10:05")
    assert next_regular("hourly", after, tz, jitter=1200) == at(tz, "2026-06-01 10:20")
    assert next_regular("hourly", at(tz, "2026-06-01 10:20"), tz, jitter=1200) == at(tz, "2026-06-01 11:20")
    assert next_regular("0 3 * * *", after, tz, jitter=90) == at(tz, "2026-06-02 03:01:30")


def test_policies_and_the_ledger_in_a_worker(db, runs, registry, tz):
    clock = [0.0]

    def record(name):
        return lambda ctx: ran.append((name, datetime.fromtimestamp(clock[0], tz).strftime("%H:%M")))

    ran: list[tuple[str, str]] = []
    registry.add_job(Job("latest", record("latest"), "hourly"))
    registry.add_job(Job("skipping", record("skipping"), "hourly", catch_up="skip"))
    registry.add_job(Job("every", record("every"), "hourly", catch_up="all", max_catch_up=3))
    # 10:00 Berlin, then no tick until 15:30, then a tick a minute, and 16:00.
    for moment in ("10:00:10", "15:30:10", "15:31:10", "15:32:10", "15:33:10", "16:00:10"):
        clock[0] = at(tz, f"2026-06-01 {moment}").timestamp()
        Worker(runs, registry, tz, retry_backoff=0, clock=lambda: clock[0]).run()
    assert [time for name, time in ran if name == "latest"] == ["10:00", "15:30", "16:00"]
    assert [time for name, time in ran if name == "skipping"] == ["10:00", "16:00"]
    assert [time for name, time in ran if name == "every"] == ["10:00", "15:30", "15:31", "15:32", "16:00"]
    missed = [(entry.name, datetime.fromtimestamp(entry.started_at, tz).strftime("%H:%M"), entry.outcome)
              for entry in history.read(db.connection()) if entry.uuid is None]
    assert missed == [("skipping", "15:00", "missed (skipped)"), ("skipping", "14:00", "missed (skipped)"),
                      ("skipping", "13:00", "missed (skipped)"),
                      ("every", "12:00", "missed (dropped)"), ("skipping", "12:00", "missed (skipped)"),
                      ("every", "11:00", "missed (dropped)"), ("skipping", "11:00", "missed (skipped)")]
    assert ledger.last_handled(db.connection(), "every") == at(tz, "2026-06-01 16:00").timestamp()
