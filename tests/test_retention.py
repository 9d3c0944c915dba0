"""Retention: the built-in daily `run-cron.prune` job and `run-cron purge`, on rows with old timestamps."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid as uuidlib
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import needs_faketime

from cronjobs.errors import Retry
from cronjobs.runtime.retention import NAME, PruneJob, connect, prune
from cronjobs.store import connect_store

DAY = 86400.0
NOW = time.time()


def insert(db: Any, status: str, age_days: float, kind: str = "message") -> str:
    """A finished message (or job run) with an attempt, a warning and an attachment, `age_days` old."""
    uuid = str(uuidlib.uuid4())
    at = NOW - age_days * DAY
    finished = None if status in ("new", "pending") else at
    message_id = db.execute(
        "INSERT INTO message (uuid, kind, type, status, priority, run_at, attempts, max_attempts, seq, progress, "
        "created_at, started_at, finished_at) VALUES (?, ?, 'report', ?, 0, ?, 1, 3, 0, 0, ?, ?, ?)",
        (uuid, kind, status, at, at, at, finished)).lastrowid
    db.execute("INSERT INTO attempt (message_id, number, started_at, finished_at, outcome, seq_start) "
               "VALUES (?, 1, ?, ?, ?, 0)", (message_id, at, finished, status))
    db.execute("INSERT INTO warning (message_id, at, text) VALUES (?, ?, 'careful')", (message_id, at))
    attachment = db.execute("INSERT INTO attachment (message_id, name, size, created_at) VALUES (?, 'r.csv', 3, ?)",
                            (message_id, at)).lastrowid
    db.execute("INSERT INTO attachment_chunk (attachment_id, seq, data) VALUES (?, 0, ?)", (attachment, b"a,b"))
    return uuid


def remaining(project) -> set[str]:
    with project.connect() as db:
        return {row[0] for row in db.execute("SELECT uuid FROM message WHERE type = 'report'")}


def orphans(project) -> int:
    with project.connect() as db:
        return sum(db.execute(sql).fetchone()[0] for sql in (
            "SELECT COUNT(*) FROM attempt WHERE message_id NOT IN (SELECT id FROM message)",
            "SELECT COUNT(*) FROM warning WHERE message_id NOT IN (SELECT id FROM message)",
            "SELECT COUNT(*) FROM attachment WHERE message_id NOT IN (SELECT id FROM message)",
            "SELECT COUNT(*) FROM attachment_chunk WHERE attachment_id NOT IN (SELECT id FROM attachment)",
        ))


@pytest.fixture
def store(project):
    """The project's database with its schema, and a set of rows of every age and status."""
    database, _ = connect_store(project.store)
    database.close()
    with project.connect() as db:
        rows = {
            "old completed": insert(db, "completed", 31),
            "old cancelled": insert(db, "cancelled", 45),
            "old failed": insert(db, "failed", 90),
            "old new": insert(db, "new", 90),
            "recent completed": insert(db, "completed", 29),
            "old job run": insert(db, "completed", 31, kind="job"),
            "old failed job run": insert(db, "failed", 31, kind="job"),
            "recent job run": insert(db, "failed", 2, kind="job"),
        }
    return rows


def test_purge_deletes_old_finished_runs_with_their_history_and_attachments(project, store):
    result = project.run("purge")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("run-cron: deleted 2 finished message(s) and 2 job run(s) older than 30 days\n")
    kept = {"old failed", "old new", "recent completed", "recent job run"}
    assert remaining(project) == {store[name] for name in kept}
    assert orphans(project) == 0


def test_purge_before_the_first_tick_deletes_nothing(project):
    for args in (("purge",), ("purge", "--failed")):
        result = project.run(*args)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.startswith("run-cron: deleted 0 finished message(s) and 0 job run(s) older than 30 days")


def test_failed_messages_stay_until_purge_failed(project, store):
    project.run("purge")
    assert store["old failed"] in remaining(project)
    result = project.run("purge", "--failed")
    assert result.returncode == 0
    assert result.stdout.endswith(", and 1 failed message(s)\n")
    assert store["old failed"] not in remaining(project)
    assert orphans(project) == 0


def test_retention_days_comes_from_the_configuration(project, store):
    project.write_config(retention_days="1")
    project.run("purge")
    assert remaining(project) == {store["old failed"], store["old new"]}


def test_builtin_prune_job_is_listed_runs_daily_after_the_users_daily_jobs_and_prunes(project, store):
    project.write_jobs("""
@cronjobs.daily
def first(ctx): record("first")

@cronjobs.hourly
def later(ctx): record("later")

@cronjobs.handler("report")
def report(ctx, payload): pass
""")
    rows = json.loads(project.run("list", "--json").stdout)
    assert [(row["name"], row["schedule"]) for row in rows] == [
        ("first", "daily"), (NAME, "daily"), ("later", "hourly")]
    assert project.run("-v").returncode == 0
    history = json.loads(project.run("history", "--json").stdout)
    ran = [entry["name"] for entry in reversed(history) if entry["kind"] == "job" and entry["outcome"]]
    assert ran[-3:] == ["first", NAME, "later"]
    assert store["old completed"] not in remaining(project)
    assert store["old failed"] in remaining(project)


def test_prune_goes_in_bounded_batches_and_stops_when_asked(project, store):
    with project.connect() as db:
        for _ in range(5):
            insert(db, "completed", 40)
    connection = connect(project.store)
    try:
        first = prune(connection, NOW, 30, batch=2, should_stop=lambda: True)
        assert (first.messages, first.done) == (2, False)
        rest = prune(connection, NOW, 30, batch=2)
        assert (rest.messages, rest.job_runs, rest.done) == (5, 2, True)  # 7 old messages in all
    finally:
        connection.close()
    assert orphans(project) == 0


class FakeContext:
    log = logging.getLogger("test")

    def should_stop(self) -> bool:
        return False


def test_prune_job_gives_way_and_continues_in_the_next_tick(project, store):
    with project.connect() as db:
        for _ in range(450):
            insert(db, "completed", 40)
    job = PruneJob(project.store, 10.0, 30, max_seconds=0)
    with pytest.raises(Retry, match="more to prune"):
        job(FakeContext())
    assert 4 < len(remaining(project)) < 450 + 8  # some went, and it stopped when told
    PruneJob(project.store, 10.0, 30)(FakeContext())
    assert len(remaining(project)) == 4


FAMILIES = """
@cronjobs.handler("import")
def importer(ctx, payload):
    for n in range(2):
        ctx.enqueue_child("import.part", {"n": n})

@cronjobs.handler("fanout")
def fanout(ctx, payload):  # a batch, as a web request queues it
    with cronjobs.connect(database=STORE) as queue:
        queue.batch([("part", {}), ("part", {})], then=("report", {}))

@cronjobs.handler("import.part")
def part(ctx, payload): pass

@cronjobs.handler("part")
def batch_part(ctx, payload): pass

@cronjobs.handler("report")
def report(ctx, payload): pass

@cronjobs.hourly(catch_up="skip")
def sync(ctx): record("sync", time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
"""
SIDE_TABLES = ("message_child", "flow", "flow_member", "slot_ledger")


def side_rows(project) -> int:
    with project.connect() as db:
        return sum(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in SIDE_TABLES)


@needs_faketime
def test_purge_deletes_the_records_of_old_families_batches_and_missed_slots(project):
    project.write_jobs(f"STORE = {project.store!r}\n" + FAMILIES)
    for args in (("enqueue", "import"), ("enqueue", "fanout"), ()):
        assert project.run_at("2025-01-01 10:00:10", *args).returncode == 0
    assert project.run_at("2025-01-01 15:00:10").returncode == 0  # sync: 11:00 to 14:00 skipped, 15:00 runs
    assert project.run("pause", "run-cron.prune").returncode == 0  # `purge` prunes, not the daily job
    recent = project.run_at("2025-02-10 12:00:05", "enqueue", "import").stdout.strip()
    assert project.run_at("2025-02-10 12:00:10").returncode == 0  # 40 days of hourly slots skipped
    before = side_rows(project)

    result = project.run_at("2025-02-10 12:05:00", "purge")

    assert result.returncode == 0, result.stderr
    found = re.fullmatch(r"run-cron: deleted 7 finished message\(s\) and 3 job run\(s\) older than 30 days; "
                         r"(\d+) record\(s\) of families, batches, chains and missed slots\n", result.stdout)
    assert found is not None, result.stdout
    assert int(found.group(1)) == before - side_rows(project) > 200  # 2 links, a batch, 3 members, slots
    cutoff = datetime(2025, 1, 11, 12, 5, tzinfo=timezone.utc).timestamp()
    with project.connect() as db:
        assert {row[0] for row in db.execute("SELECT parent_uuid FROM message_child")} == {recent}
        assert db.execute("SELECT COUNT(*) FROM flow").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM flow_member").fetchone()[0] == 0
        oldest, skipped = db.execute(
            "SELECT MIN(slot), SUM(CASE WHEN action = 'skipped' THEN 1 ELSE 0 END) FROM slot_ledger").fetchone()
    assert oldest >= cutoff
    history = json.loads(project.run_at("2025-02-10 12:06:00", "history", "--json", "--job", "sync",
                                        "--limit", "2000").stdout)
    missed = [entry["started_at"] for entry in history if entry["outcome"] == "missed (skipped)"]
    assert len(missed) == skipped and min(missed) == "2025-01-11T13:00:00+00:00"  # the window's, all of them
    assert project.run_at("2025-02-10 13:00:10").returncode == 0
    assert project.ran()[-1] == "sync 2025-02-10 13:00"  # the next slot: the ledger still knows the last
