"""`run-cron status`: Nagios exit codes in all three states, through the CLI, and the pure verdict."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from cronjobs.reports.status import CRITICAL, OK, WARNING, Facts, JobFacts, evaluate
from cronjobs.runtime.idle import read_tick, record_tick
from cronjobs.runtime.lock import SupervisorLock

JOBS = """
@cronjobs.daily
def nightly(ctx): record("nightly")

@cronjobs.handler("mail")
def mail(ctx, payload):
    if payload.get("fail"):
        raise cronjobs.PermanentError("mailbox full")
"""


def status(project, *args: str):
    result = project.run("status", *args)
    return result.returncode, result


def set_meta(project, **values: float) -> None:
    """Age the last tick: rewrite the tick facts the real tick stored, with these values."""
    facts = read_tick(project.store)
    facts.update({f"tick.{key}": str(value) for key, value in values.items()})
    record_tick(project.store, facts)


def test_no_tick_ever_is_critical(project):
    project.write_jobs(JOBS)
    code, result = status(project)
    assert code == 2
    assert result.stdout.startswith("CRITICAL - no tick has ever finished")
    code, result = status(project, "--json")
    data = json.loads(result.stdout)
    assert (code, data["status"], data["code"], data["last_tick"]) == (2, "CRITICAL", 2, None)


def test_after_a_good_tick_it_is_ok(project):
    project.write_jobs(JOBS)
    assert project.run().returncode == 0
    code, result = status(project)
    assert code == 0, result.stdout
    assert result.stdout.startswith("OK - last tick ")
    assert "queue: 0 new, 0 pending, 0 completed, 0 failed, 0 cancelled" in result.stdout
    data = json.loads(project.run("status", "--json").stdout)
    assert data["status"] == "OK" and data["problems"] == [] and data["running"] is False
    assert data["last_tick"]["outcome"] == "ok" and data["last_tick"]["trigger"] == "cli"
    assert data["last_tick"]["age"] < 60


def test_failed_message_is_a_warning_and_listed(project):
    project.write_jobs(JOBS)
    uuid = project.run("enqueue", "mail", '{"fail": true}').stdout.strip()
    project.run("enqueue", "mail", "{}")
    assert project.run().returncode == 1
    code, result = status(project)
    assert code == 1
    assert result.stdout.startswith("WARNING - 1 failed message(s)")
    assert uuid in result.stdout and "PermanentError: mailbox full" in result.stdout
    data = json.loads(project.run("status", "--json").stdout)
    assert data["queue"] == {"new": 0, "pending": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert [m["uuid"] for m in data["failed_messages"]] == [uuid]


def test_failing_periodic_job_is_a_warning(project):
    project.write_jobs(JOBS.replace('record("nightly")', 'raise OSError("disk gone")'))
    project.run()
    code, result = status(project, "--json")
    data = json.loads(result.stdout)
    assert code == 1
    assert data["problems"] == ["job nightly: last run failed"]
    (job,) = data["jobs"]
    assert (job["name"], job["failing"], job["last_error"]) == ("nightly", True, "OSError: disk gone")


def test_stale_tick_is_critical_and_wins_over_warnings(project):
    project.write_jobs(JOBS)
    project.run("enqueue", "mail", '{"fail": true}')
    project.run()
    set_meta(project, finished=time.time() - 301)  # stale_after defaults to 300 s
    code, result = status(project)
    assert code == 2
    assert result.stdout.startswith("CRITICAL - no tick finished for 5 min (stale_after 300 s); 1 failed message(s)")


def test_stale_after_is_read_from_the_configuration(project):
    project.write_jobs(JOBS)
    project.run()
    set_meta(project, finished=time.time() - 100)
    assert status(project)[0] == 0
    project.write_config(stale_after="60")
    assert status(project)[0] == 2


def test_a_running_tick_is_reported(project):
    project.write_jobs(JOBS)
    project.run()
    lock = SupervisorLock(str(project.path / "run-cron.lock"))
    assert lock.acquire()
    try:
        data = json.loads(project.run("status", "--json").stdout)
    finally:
        lock.release()
    assert data["running"] is True
    assert data["summary"].endswith("; a tick is running")


def test_a_running_tick_says_since_when(project):
    project.write_jobs(JOBS + """
@cronjobs.handler("slow")
def slow(ctx, payload):
    record("slow started")
    while not os.path.exists(os.path.join(os.path.dirname(LOG), "finish")):
        time.sleep(0.02)
""")
    project.run()
    assert json.loads(project.run("status", "--json").stdout)["running_since"] is None
    project.run("enqueue", "slow")
    before = time.time()
    tick = project.start("--time-limit", "60")
    try:
        project.wait_for(lambda: "slow started" in project.ran(), timeout=30)
        data = json.loads(project.run("status", "--json").stdout)
        after = time.time()
    finally:
        (project.path / "finish").touch()
        tick.wait(60)
    assert tick.returncode == 0, tick.stderr.read()
    since = datetime.fromisoformat(data["running_since"]).timestamp()
    assert (data["running"], int(before) <= since <= after) == (True, True)
    assert re.search(r"; a tick is running \(for (\d+) s\)$", data["summary"]), data["summary"]
    assert json.loads(project.run("status", "--json").stdout)["running_since"] is None  # ended


def test_overdue_job_is_a_warning(project):
    project.write_jobs(JOBS)
    project.run()
    with project.connect() as db:
        db.execute("UPDATE job_state SET next_due = ? WHERE name = 'nightly'", (time.time() - 3600,))
    code, result = status(project, "--json")
    assert code == 1
    assert json.loads(result.stdout)["problems"] == ["job nightly: overdue by 60 min"]


# -- the pure verdict -----------------------------------------------------------------------------------

NOW = 1_750_000_000.0


def facts(finished=None, failed=0, jobs=()):
    meta = {} if finished is None else {"tick.finished": str(finished), "tick.outcome": "ok",
                                        "tick.duration": "0.1", "tick.trigger": "cli"}
    queue = {"new": 0, "pending": 0, "completed": 0, "failed": failed, "cancelled": 0}
    return Facts(meta=meta, queue=queue, jobs=list(jobs))


def job(outcome="success", due=NOW + 60, running=False):
    return JobFacts("j", "daily", NOW - 100, outcome, None, due, running)


def test_verdicts():
    assert evaluate(facts(), NOW, 300).code == CRITICAL
    assert evaluate(facts(NOW - 10), NOW, 300).code == OK
    assert evaluate(facts(NOW - 300), NOW, 300).code == OK  # exactly at the limit is still fresh
    assert evaluate(facts(NOW - 301), NOW, 300).code == CRITICAL
    assert evaluate(facts(NOW - 10, failed=2), NOW, 300).code == WARNING
    assert evaluate(facts(NOW - 10, jobs=[job("timeout")]), NOW, 300).code == WARNING
    assert evaluate(facts(NOW - 10, jobs=[job(due=NOW - 301)]), NOW, 300).code == WARNING
    assert evaluate(facts(NOW - 10, jobs=[job(due=NOW - 301, running=True)]), NOW, 300).code == OK
    assert evaluate(facts(NOW - 999, failed=1, jobs=[job("crashed")]), NOW, 300).code == CRITICAL
