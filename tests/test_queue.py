"""The queue API as a web application uses it, on each engine: SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import address_of

import cronjobs
from cronjobs.errors import AttachmentNotFound, InvalidPayload, InvalidState, MessageNotFound
from cronjobs.messages.queue import Queue


@pytest.fixture
def db(any_db):
    return any_db


def test_enqueue_and_get(queue):
    uuid = queue.enqueue("library.sync", {"library": 42}, priority=5, owner="user:7", max_attempts=4)
    job = queue.get(uuid)
    assert (job.type, job.status, job.payload, job.priority, job.owner) == ("library.sync", "new", {"library": 42},
                                                                            5, "user:7")
    assert (job.progress, job.offset, job.state, job.attempts, job.max_attempts) == (0, None, {}, 0, 4)
    fields = set(job.to_json())
    assert {"uuid", "type", "status", "progress", "offset", "state", "attempts", "max_attempts", "priority", "key",
            "owner", "errors", "warnings", "attachments", "created_at", "started_at", "finished_at"} <= fields


def test_connect_by_database_path(tmp_path):
    queue = cronjobs.connect(database=str(tmp_path / "app.sqlite3"))
    uuid = queue.enqueue("x")
    assert queue.get(uuid).status == "new"
    queue.close()


def test_connect_by_config_file(project):
    queue = cronjobs.connect(str(project.config))
    assert queue.get(queue.enqueue("x", allow_unknown=True)).type == "x"  # no jobs module declares x
    queue.close()


def test_payload_must_be_json(queue):
    with pytest.raises(InvalidPayload, match="payload must be JSON-serialisable: payload: Object of type set"):
        queue.enqueue("x", {1, 2})
    with pytest.raises(InvalidPayload, match="Out of range float values are not JSON compliant"):
        queue.enqueue("x", math.nan)
    assert queue.jobs() == []


def test_key_deduplicates_while_live(queue, runs):
    first = queue.enqueue("sync", {"a": 1}, key="lib-42")
    assert queue.enqueue("sync", {"a": 2}, key="lib-42") == first
    run = runs.claim_message(time.time())
    assert queue.enqueue("sync", key="lib-42") == first  # still pending
    runs.complete(run, time.time())
    assert queue.enqueue("sync", key="lib-42") != first  # finished: a new one


def test_text_matches_exactly_on_every_engine(queue):
    # MariaDB's default collation (utf8mb4_general_ci) would make "K" and "k" one key, and one owner.
    upper = queue.enqueue("sync", key="Lib-42", owner="User:7")
    lower = queue.enqueue("sync", key="lib-42", owner="user:7")
    assert upper != lower
    assert [job.uuid for job in queue.jobs(owner="user:7")] == [lower]
    assert [job.uuid for job in queue.jobs(type="SYNC")] == []


def test_priority_then_fifo_and_delay(queue, runs):
    now = time.time()
    low = queue.enqueue("t", "low")
    high = queue.enqueue("t", "high", priority=10)
    later = queue.enqueue("t", "later", priority=100, delay=3600)
    low2 = queue.enqueue("t", "low2")
    order = []
    while (run := runs.claim_message(now + 1)) is not None:
        order.append(run.uuid)
        runs.complete(run, now + 1)
    assert order == [high, low, low2]
    assert runs.claim_message(now + 3601).uuid == later


def test_delay_as_datetime(queue):
    at = datetime.now(timezone.utc) + timedelta(hours=2)
    job = queue.get(queue.enqueue("t", delay=at))
    assert abs(job.run_at - at.timestamp()) < 0.001


def test_jobs_filters(queue):
    a = queue.enqueue("a", owner="user:7")
    queue.enqueue("b", owner="user:8")
    c = queue.enqueue("a", owner="user:7")
    assert [j.uuid for j in queue.jobs(owner="user:7")] == [c, a]
    assert [j.uuid for j in queue.jobs(type="a", status="new")] == [c, a]
    assert queue.jobs(status="failed") == []
    with pytest.raises(ValueError, match="unknown status 'bogus'"):
        queue.jobs(status="bogus")
    assert queue.counts()["new"] == 3


def test_retry_and_cancel(queue, runs):
    uuid = queue.enqueue("t", max_attempts=1)
    run = runs.claim_message(time.time())
    runs.fail(run, time.time(), "RuntimeError: x", None)
    job = queue.get(uuid)
    assert (job.status, job.attempts, job.errors[0]["error"]) == ("failed", 1, "RuntimeError: x")
    queue.retry(uuid)
    job = queue.get(uuid)
    assert (job.status, job.attempts, len(job.errors)) == ("new", 0, 1)  # same uuid, fresh attempts, errors kept
    queue.cancel(uuid)
    assert queue.get(uuid).status == "cancelled"
    with pytest.raises(InvalidState, match="only new or pending messages can be cancelled"):
        queue.cancel(uuid)
    with pytest.raises(MessageNotFound, match="no message with uuid 'nope'"):
        queue.get("nope")


def test_retry_failed_retries_all_failed(queue, runs):
    for _ in range(3):
        queue.enqueue("t", max_attempts=1)
    while (run := runs.claim_message(time.time())) is not None:
        runs.fail(run, time.time(), "E", None)
    assert queue.retry_failed() == 3
    assert queue.counts()["new"] == 3


def test_attachments_are_stored_in_chunks_outside_the_queue_table(queue, runs, db):
    from cronjobs.runtime.context import ATTACHMENT_CHUNK, Context

    uuid = queue.enqueue("t")
    run = runs.claim_message(time.time())
    ctx = Context(runs, run)
    big = bytes(range(256)) * (ATTACHMENT_CHUNK // 256 * 2 + 10)
    assert ctx.attach("big.bin", big) == len(big)
    ctx.attach("note.txt", "héllo")
    import io

    ctx.attach("file.csv", io.BytesIO(b"a,b\n1,2\n"))
    job = queue.get(uuid)
    assert job.attachments == [{"name": "big.bin", "size": len(big)}, {"name": "file.csv", "size": 8},
                               {"name": "note.txt", "size": 6}]
    assert b"".join(queue.attachment(uuid, "big.bin")) == big
    assert b"".join(queue.attachment(uuid, "note.txt")) == "héllo".encode()
    assert db.execute_sql("SELECT COUNT(*) FROM attachment_chunk").fetchone()[0] == 3 + 2
    with pytest.raises(AttachmentNotFound):
        queue.attachment(uuid, "missing")


def test_enqueue_from_inside_a_handler(queue, runs):
    from cronjobs.runtime.context import Context

    queue.enqueue("parent")
    ctx = Context(runs, runs.claim_message(time.time()))
    child = ctx.enqueue("child", {"chunk": 2}, priority=3)
    assert queue.get(child).payload == {"chunk": 2}


def test_runs_share_the_connection_without_locking(queue, runs, db):
    other = Queue(cronjobs.connect(database=address_of(db)).database)
    run = runs.claim_message(time.time()) if queue.enqueue("a") else None
    other.enqueue("b")  # a second connection writes while the first holds a claimed run
    runs.complete(run, time.time())
    assert other.counts() == {"new": 1, "pending": 0, "completed": 1, "failed": 0, "cancelled": 0}
    other.close()


@pytest.mark.parametrize("options, message", [
    ({"delay": -1}, "delay must be >= 0 seconds, got -1"),
    ({"max_attempts": 0}, "max_attempts must be >= 1, got 0"),
])
def test_enqueue_refuses_a_negative_delay_and_no_attempts(queue, options, message):
    with pytest.raises(ValueError, match=message):
        queue.enqueue("x", {}, **options)
    assert queue.counts()["new"] == 0
