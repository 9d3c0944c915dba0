"""Pause and resume of periodic jobs and message types, and cancelling a running message, through the
real CLI and real ticks."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import TOKEN, cli_env, fetch

from cronjobs.control.pauses import JOB, TYPE, pause, paused, resume
from cronjobs.registry import Handler, Job
from cronjobs.runtime.idle import is_idle
from cronjobs.runtime.tick import SCHEMA_VERSION
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone

TZ = get_timezone("Europe/Berlin")

JOBS = """
@cronjobs.minutely
def every_minute(ctx): record("every_minute")

@cronjobs.handler("mail.send")
def send(ctx, payload): record("mail", payload["to"])

@cronjobs.handler("report.build")
def build(ctx, payload): record("report")
"""


@pytest.fixture
def db(any_db):
    return any_db


def test_table_appears_on_first_pause(db):
    connection = db.connection()
    assert paused(connection) == {} and resume(connection, JOB, "a") is False
    assert pause(connection, JOB, "a", 100.0) is True
    assert pause(connection, JOB, "a", 200.0) is False  # keeps the first time
    assert pause(connection, TYPE, "a", 300.0) is True  # a job and a type may share a name
    assert paused(connection) == {(JOB, "a"): 100.0, (TYPE, "a"): 300.0}
    assert resume(connection, JOB, "a") is True and paused(connection) == {(TYPE, "a"): 300.0}


def test_paused_work_waits_in_a_worker(db, runs, registry, queue):
    ran = []
    registry.add_job(Job("every_minute", lambda ctx: ran.append("job"), "minutely"))
    registry.add_handler(Handler("mail.send", lambda ctx, payload: ran.append("mail")))
    registry.add_handler(Handler("report.build", lambda ctx, payload: ran.append("report")))
    connection = db.connection()
    pause(connection, JOB, "every_minute", time.time())
    pause(connection, TYPE, "mail.send", time.time())
    mail = queue.enqueue("mail.send")
    queue.enqueue("report.build")
    events = []
    Worker(runs, registry, TZ, retry_backoff=0, emit=lambda event, **fields: events.append((event, fields))).run()
    assert ran == ["report"]
    assert [fields["name"] for event, fields in events if event == "skipped"] == ["every_minute", "mail.send"]
    assert queue.get(mail).status == "new"
    # A due paused job and a paused type's runnable message leave the next tick idle.
    jobs = [(job.name, job.key(str(TZ))) for job in registry.jobs.values()]
    assert is_idle(connection, jobs, time.time() + 5, SCHEMA_VERSION)
    assert resume(connection, JOB, "every_minute") and resume(connection, TYPE, "mail.send")
    assert not is_idle(connection, jobs, time.time() + 5, SCHEMA_VERSION)
    Worker(runs, registry, TZ, retry_backoff=0).run()
    assert ran == ["report", "job", "mail"] and queue.get(mail).status == "completed"


def test_pause_a_job_and_a_type(project):
    project.write_jobs(JOBS)
    assert project.run().returncode == 0
    assert project.ran() == ["every_minute"]
    result = project.run("pause", "every_minute", "mail.send")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["run-cron: job every_minute paused",
                                          "run-cron: message type mail.send paused"]
    assert project.run("pause", "mail.send").stdout.strip() == "run-cron: message type mail.send was paused already"
    mail = project.run("enqueue", "mail.send", '{"to": "a@example.org"}').stdout.strip()
    project.run("enqueue", "report.build")
    # Make the job due again without waiting a minute: its cached due time is in the past.
    with project.connect() as db:
        db.execute("UPDATE job_state SET next_due = 0, last_run = 0")
    tick = project.run("-v")
    assert tick.returncode == 0, tick.stderr
    assert project.ran() == ["every_minute", "report"]
    assert "every_minute" in tick.stderr and "paused" in tick.stderr
    assert json.loads(project.run("show", mail, "--json").stdout)["status"] == "new"  # stays queued

    rows = {row["name"]: row for row in json.loads(project.run("periodic", "--json").stdout)}
    assert rows["every_minute"]["paused"] is not None
    assert "paused" in project.run("list").stdout.splitlines()[0].lower()
    status = project.run("status", "--json")
    paused_list = json.loads(status.stdout)["paused"]
    assert [(item["kind"], item["name"]) for item in paused_list] == [("job", "every_minute"),
                                                                       ("type", "mail.send")]
    assert "paused: job every_minute (since" in project.run("status").stdout

    # A paused job that is due, and a paused type's runnable message, leave the tick idle.
    with project.connect() as db:
        db.execute("UPDATE job_state SET next_due = 0 WHERE name = 'every_minute'")
        jobs = [(name, schedule) for name, schedule in db.execute("SELECT name, schedule FROM job_state")]
        assert is_idle(db, jobs, time.time() + 5, SCHEMA_VERSION)
        assert not is_idle(db, jobs, time.time() + 5 * 86400, SCHEMA_VERSION)  # run-cron.prune is due by then

    assert project.run("resume", "every_minute", "mail.send").returncode == 0
    assert project.run().returncode == 0
    assert project.ran()[2:] == ["every_minute", "mail a@example.org"]
    assert json.loads(project.run("status", "--json").stdout)["paused"] == []


def test_pause_unknown_name_is_one_line(project):
    project.write_jobs(JOBS)
    result = project.run("pause", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == ("run-cron: error: no periodic job or message type named 'nope' "
                                     "(try 'run-cron periodic')")


def test_forced_run_of_a_paused_job(project):
    project.write_jobs(JOBS)
    project.run("pause", "every_minute")
    assert project.run().returncode == 0
    assert project.ran() == []
    assert "would skip minutely job every_minute: paused (run-cron resume every_minute)" in \
        project.run("--dry-run").stdout
    assert project.run("run", "every_minute").returncode == 0  # naming it runs it, paused or not
    assert project.ran() == ["every_minute"]


def test_cancel_a_running_message(project):
    project.write_jobs("""
    @cronjobs.handler("long.export")
    def export(ctx, payload):
        record("started", ctx.job.uuid)
        for i in range(100000):
            ctx.checkpoint(offset=i)
            time.sleep(0.01)
        record("finished")
    """)
    uuid = project.run("enqueue", "long.export").stdout.strip()
    tick = project.start()
    try:
        project.wait_for(lambda: project.ran() == [f"started {uuid}"], timeout=30)
        assert project.run("cancel", uuid).returncode == 0
        assert tick.wait(timeout=30) == 0
    finally:
        if tick.poll() is None:
            tick.kill()
            tick.wait()
    assert project.ran() == [f"started {uuid}"]
    assert json.loads(project.run("show", uuid, "--json").stdout)["status"] == "cancelled"
    history = json.loads(project.run("history", "--json", "--job", "long.export").stdout)
    assert [entry["outcome"] for entry in history] == ["cancelled"]
    again = project.run("cancel", uuid)
    assert again.returncode == 2 and "only new or pending messages can be cancelled" in again.stderr


def test_status_page_shows_pauses(serve):  # noqa: F811 (the fixture imported above)
    server = serve()
    config = str(server.config)
    run = [sys.executable, "-m", "cronjobs", "--config", config]
    for name in ("every_minute", "web.echo"):
        assert subprocess.run([*run, "pause", name], env=cli_env(), capture_output=True).returncode == 0
    page = fetch(server.url("/?token=" + TOKEN)).text
    assert "paused since" in page
    assert "Paused message types (their messages wait in the queue): <b>web.echo</b>." in page
