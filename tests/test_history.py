"""`run-cron history`: every job run and message attempt, newest first, as a table or JSON."""

from __future__ import annotations

import json

JOBS = """
@cronjobs.daily
def nightly(ctx): record("nightly")

@cronjobs.hourly
def broken(ctx): raise KeyError("missing")

@cronjobs.handler("mail")
def mail(ctx, payload):
    if payload.get("fail"):
        raise RuntimeError("smtp down")
"""

FIELDS = ["kind", "name", "uuid", "started_at", "finished_at", "outcome", "error", "attempt", "warnings"]


def history(project, *args: str) -> list[dict]:
    result = project.run("history", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_json_lists_job_runs_and_message_attempts_newest_first(project):
    project.write_jobs(JOBS)
    good = project.run("enqueue", "mail", "{}").stdout.strip()
    bad = project.run("enqueue", "mail", '{"fail": true}', "--max-attempts", "2").stdout.strip()
    project.run()
    project.run()  # the failed message's second attempt (retry_backoff is 0 in tests)
    entries = history(project)
    assert all(list(entry) == FIELDS for entry in entries)
    assert [entry["started_at"] for entry in entries] == sorted((e["started_at"] for e in entries), reverse=True)
    assert [(e["kind"], e["outcome"], e["error"]) for e in entries if e["uuid"] == bad] == [
        ("message", "failed", "RuntimeError: smtp down"),
        ("message", "failed", "RuntimeError: smtp down"),
    ]
    assert [(e["kind"], e["name"], e["outcome"]) for e in entries if e["uuid"] == good] == [
        ("message", "mail", "completed")]
    jobs = {(e["name"], e["outcome"], e["error"]) for e in entries if e["kind"] == "job"}
    assert {("nightly", "completed", None), ("broken", "failed", "KeyError: 'missing'"),
            ("run-cron.prune", "completed", None)} <= jobs
    assert all(e["finished_at"] >= e["started_at"] for e in entries)


def test_job_filter_and_limit(project):
    project.write_jobs(JOBS)
    project.run("enqueue", "mail", "{}")
    project.run("enqueue", "mail", "{}")
    project.run()
    assert [e["name"] for e in history(project, "--job", "mail")] == ["mail", "mail"]
    assert [e["name"] for e in history(project, "--job", "nightly")] == ["nightly"]
    assert len(history(project, "--limit", "1")) == 1
    assert history(project, "--job", "nothing-by-this-name") == []


def test_table_is_aligned_and_shows_local_times(project):
    project.write_jobs(JOBS)
    project.run()
    result = project.run("history")
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "STARTED", "KIND", "NAME", "UUID", "ATTEMPT", "OUTCOME", "DURATION", "ERROR", "WARNINGS"]
    column = lines[0].index("OUTCOME")
    assert {line[column:].split()[0] for line in lines[1:]} == {"completed", "failed"}
    assert all(line[:25].endswith(("+01:00", "+02:00")) for line in lines[1:])  # Europe/Berlin


def test_no_database_yet_is_an_empty_history(project):
    assert history(project) == []
    assert project.run("history").stdout.split() == [
        "STARTED", "KIND", "NAME", "UUID", "ATTEMPT", "OUTCOME", "DURATION", "ERROR", "WARNINGS"]
    assert not project.database.exists()
