"""`run-cron why NAME` through the real CLI: each reason a job or message type did or did not run."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import Project, address_of, needs_faketime

from cronjobs.control.pauses import JOB, pause
from cronjobs.host.config import load_config
from cronjobs.messages.insert import insert_message
from cronjobs.registry import Handler, Job
from cronjobs.reports.why import explain
from cronjobs.runtime.idle import record_tick
from cronjobs.runtime.worker import Worker


@pytest.fixture
def db(any_db):
    return any_db


JOBS = """
@cronjobs.daily(at="03:00")
def nightly(ctx): record("nightly")

@cronjobs.hourly(cli_only=True)
def cli_hourly(ctx): record("cli_hourly")

@cronjobs.manual
def reindex(ctx): pass

@cronjobs.hourly
def flaky(ctx): raise RuntimeError("database away")

@cronjobs.handler("mail.send", rate="1/h")
def send(ctx, payload): record("mail")
"""


def why(project, at: str, name: str) -> dict:
    result = project.run_at(at, "why", name, "--json")
    assert result.returncode == 0, result.stderr
    (answer,) = json.loads(result.stdout)
    return answer


def text(project, at: str, name: str) -> str:
    result = project.run_at(at, "why", name)
    assert result.returncode == 0, result.stderr
    return result.stdout


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_explain_reads_each_engine(db, runs, registry, tmp_path):
    config = load_config(str(Project(tmp_path / "site", database=address_of(db), retry_backoff="600").config))

    def flaky(ctx):
        raise RuntimeError("database away")

    registry.add_job(Job("nightly", lambda ctx: None, "daily", spec="0 3 * * *"))
    registry.add_job(Job("flaky", flaky, "hourly"))
    registry.add_handler(Handler("mail.send", lambda ctx, payload: None, rate=(1, 3600.0)))
    for _ in range(2):
        insert_message(db.connection(), "mail.send", {}, now=utc("2026-06-01 08:00:00"))
    Worker(runs, registry, config.tz, retry_backoff=600, clock=lambda: utc("2026-06-01 08:00:10")).run()
    now = utc("2026-06-01 08:10:00")
    (nightly,) = explain(config, registry, "nightly", now)
    assert nightly.facts["next_due"] == "2026-06-02T03:00:00+02:00"
    (failing,) = explain(config, registry, "flaky", now)
    assert (failing.facts["last_outcome"], failing.facts["last_error"]) == ("failed", "RuntimeError: database away")
    assert "waiting for retry backoff: retry 1 after the last run failed, at 2026-06-01T10:10:10+02:00" in \
        failing.lines
    (mail,) = explain(config, registry, "mail.send", now)
    assert (mail.facts["queue"], mail.facts["runnable"]) == ({"completed": 1, "new": 1}, 1)
    assert mail.facts["rate_limited_until"] == "2026-06-01T11:00:10+02:00"
    pause(db.connection(), JOB, "nightly", now)
    assert explain(config, registry, "nightly", now)[0].facts["paused_since"] == "2026-06-01T10:10:00+02:00"


@needs_faketime  # the ticks run at set times under libfaketime
def test_why_jobs(project):
    project.write_jobs(JOBS)
    project.write_config(retry_backoff="600")
    assert project.run_at("2026-06-01 08:00:10").returncode == 1  # flaky fails
    answer = why(project, "2026-06-01 08:00:30", "nightly")
    assert answer["next_due"] == "2026-06-02T03:00:00+02:00"
    assert "not due yet: next at 2026-06-02T03:00:00+02:00 (first fire time since it was declared)" in \
        answer["explanation"]
    assert "it is a manual job: it runs only when named (run-cron run reindex)" in text(
        project, "2026-06-01 08:00:30", "reindex")
    flaky = why(project, "2026-06-01 08:00:30", "flaky")
    assert flaky["last_outcome"] == "failed" and flaky["last_error"] == "RuntimeError: database away"
    assert any(line.startswith("waiting for retry backoff: retry 1 after the last run failed, at "
                               "2026-06-01T10:10:1") for line in flaky["explanation"]), flaky

    # Only HTTP ticks since the hour began: the cli_only job waits for a CLI tick.
    with project.connect() as db:
        db.execute("UPDATE job_state SET next_due = 0")
    started = 1780304460.0  # 2026-06-01 09:01:00 UTC
    record_tick(project.store, {"tick.started": started, "tick.finished": started + 1, "tick.duration": 1,
                                "tick.outcome": "ok", "tick.trigger": "http"})
    answer = why(project, "2026-06-01 09:01:30", "cli_hourly")
    assert "it is cli_only and the last tick came from the HTTP trigger: the next CLI tick runs it" in \
        answer["explanation"]
    # No tick for hours: says so.
    stale = text(project, "2026-06-01 15:00:00", "cli_hourly")
    assert "ticks are not running: the last one finished 6 h ago" in stale

    project.run("pause", "nightly")
    assert any(line.startswith("it is paused since") for line in why(project, "2026-06-01 09:01:30",
                                                                     "nightly")["explanation"])


@needs_faketime
def test_why_a_message_type(project):
    project.write_jobs(JOBS)
    for _ in range(2):
        project.run_at("2026-06-01 08:00:00", "enqueue", "mail.send", "{}")
    assert project.run_at("2026-06-01 08:00:10").returncode == 1
    answer = why(project, "2026-06-01 08:10:00", "mail.send")
    assert answer["queue"] == {"completed": 1, "new": 1} and answer["runnable"] == 1
    (attempt,) = json.loads(project.run_at("2026-06-01 08:10:00", "history", "--json", "--job", "mail.send").stdout)
    started = datetime.fromisoformat(attempt["started_at"])  # 08:00:10 UTC, or a little later on a busy machine
    until = (started + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert answer["rate_limited_until"] == until
    assert f"rate limit 1/h reached: the next may start at {until}" in answer["explanation"]
    result = project.run("why", "nope")
    assert result.returncode == 2 and "no periodic job or message type named 'nope'" in result.stderr


def test_why_says_since_when_a_running_tick_holds_the_lock(project):
    project.write_jobs("""
    @cronjobs.handler("slow")
    def slow(ctx, payload):
        record("slow started")
        while not os.path.exists(os.path.join(os.path.dirname(LOG), "finish")):
            time.sleep(0.02)

    @cronjobs.handler("mail.send")
    def send(ctx, payload): record("mail")
    """)
    free = json.loads(project.run("why", "mail.send", "--json").stdout)[0]
    assert (free["tick_running"], free["lock_held_since"]) == (False, None)
    project.run("enqueue", "slow")
    before = time.time()
    tick = project.start("--time-limit", "60")
    try:
        project.wait_for(lambda: "slow started" in project.ran(), timeout=30)
        project.run("enqueue", "mail.send", "{}")  # runnable now, behind the tick that holds the lock
        answer = json.loads(project.run("why", "mail.send", "--json").stdout)[0]
        text = project.run("why", "mail.send").stdout
        after = time.time()
    finally:
        (project.path / "finish").touch()
        tick.wait(60)
    assert tick.returncode == 0, tick.stderr.read()
    assert answer["tick_running"] is True
    since = datetime.fromisoformat(answer["lock_held_since"])  # the configured zone, as every time of why
    assert since.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # Europe/Berlin
    assert int(before) <= since.timestamp() <= after
    line = next(line.strip() for line in text.splitlines() if "held the lock" in line)
    found = re.fullmatch(r"a tick has held the lock since (\d\d:\d\d:\d\d) \((\d+) s\): it or the next one takes it",
                         line)
    assert found is not None, text
    assert found.group(1) == since.strftime("%H:%M:%S")
    assert 0 <= int(found.group(2)) <= after - since.timestamp() + 1
    done = json.loads(project.run("why", "mail.send", "--json").stdout)[0]
    assert (done["tick_running"], done["lock_held_since"]) == (False, None)  # the tick has ended
    assert "held the lock" not in project.run("why", "mail.send").stdout
