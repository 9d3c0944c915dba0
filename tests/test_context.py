"""`ctx`: progress curve, checkpoints, warnings, deadlines (the store parts on each engine)."""

from __future__ import annotations

import math
import time

import pytest

from cronjobs.errors import Cancelled
from cronjobs.messages.queue import Queue
from cronjobs.runtime.context import Context, compute_progress


@pytest.fixture
def db(any_db):
    return any_db


def test_progress_with_a_known_total():
    assert compute_progress(25, 100) == 25.0
    assert compute_progress(100, 100) == 99.9  # 100 only on completion
    assert compute_progress(0, 10) == 0.0 and compute_progress(-3, 10) == 0.0


def test_progress_with_an_unknown_total_rises_and_never_reaches_100():
    values = [compute_progress(done) for done in range(0, 10**6, 997)]
    assert values == sorted(values)
    assert compute_progress(0) == 0.0
    assert compute_progress(9) == pytest.approx(20.0)
    assert max(values) <= 95.0 and compute_progress(10**12) == 95.0


def test_checkpoint_commits_offset_state_and_progress(db, runs):
    queue = Queue(db)
    uuid = queue.enqueue("t")
    run = runs.claim_message(time.time())
    ctx = Context(runs, run)
    assert (ctx.offset, ctx.state) == (None, {})
    ctx.checkpoint(offset=10, state={"cursor": "abc"}, done=10, total=40)
    job = queue.get(uuid)
    assert (job.offset, job.state, job.progress, job.done, job.total) == (10, {"cursor": "abc"}, 25.0, 10, 40)
    ctx.checkpoint(offset=11)  # None leaves state and progress as they were
    job = queue.get(uuid)
    assert (job.offset, job.state, job.progress) == (11, {"cursor": "abc"}, 25.0)


def test_checkpoint_after_cancel_raises_cancelled(db, runs):
    queue = Queue(db)
    uuid = queue.enqueue("t")
    ctx = Context(runs, runs.claim_message(time.time()))
    queue.cancel(uuid)
    with pytest.raises(Cancelled):
        ctx.checkpoint(offset=1)


def test_warnings_and_job_info(db, runs):
    queue = Queue(db)
    uuid = queue.enqueue("t")
    ctx = Context(runs, runs.claim_message(time.time()))
    ctx.warn("row 7 skipped")
    assert (ctx.job.uuid, ctx.job.type, ctx.job.attempt, ctx.job.kind) == (uuid, "t", 1, "message")
    assert [w["text"] for w in queue.get(uuid).warnings] == ["row 7 skipped"]


def test_time_left_and_should_stop(db, runs):
    Queue(db).enqueue("t")
    run = runs.claim_message(time.time())
    assert Context(runs, run).time_left() == math.inf
    ctx = Context(runs, run, deadline=time.monotonic() + 5)
    assert 4 < ctx.time_left() <= 5 and not ctx.should_stop()
    assert Context(runs, run, deadline=time.monotonic() - 1).should_stop()


def test_progress_is_stored_and_reported_at_most_every_quarter_second(db, runs):
    queue = Queue(db)
    uuid = queue.enqueue("t")
    events = []
    ctx = Context(runs, runs.claim_message(time.time()), emit=lambda event, **fields: events.append(fields))
    ctx.progress(5, 10)
    job = queue.get(uuid)
    assert (job.progress, job.done, job.total, job.offset) == (50.0, 5, 10, None)  # no checkpoint
    ctx.progress(6, 10)  # too soon after the last write: neither stored nor sent
    assert queue.get(uuid).progress == 50.0 and len(events) == 1
    time.sleep(0.3)
    ctx.progress(9, 10)
    assert queue.get(uuid).progress == 90.0
    assert [(e["uuid"], e["progress"], e["done"], e["total"]) for e in events] == [(uuid, 50.0, 5, 10),
                                                                                  (uuid, 90.0, 9, 10)]


def test_a_total_of_0_is_an_unknown_total_not_a_division_by_zero(db, runs):
    assert compute_progress(9, 0) == compute_progress(9) == pytest.approx(20.0)
    queue = Queue(db)
    uuid = queue.enqueue("t")
    ctx = Context(runs, runs.claim_message(time.time()))
    ctx.progress(9, 0)
    assert queue.get(uuid).progress == pytest.approx(20.0)
    ctx.checkpoint(offset=1, done=9, total=0)
    assert queue.get(uuid).progress == pytest.approx(20.0)


def test_a_store_that_cannot_be_written_is_not_the_handler_failing(tmp_path):
    """A full disk or I/O error under ctx raises StoreFailed, which `except Exception` does not catch;
    the worker records no failure for it (the tick stops with a store error, see test_hostile_host).
    On SQLite, where a read-only connection stands for a store that cannot be written."""
    import sqlite3

    from cronjobs.errors import StoreFailed
    from cronjobs.runtime.runs import Runs
    from cronjobs.runtime.worker import execute
    from cronjobs.store import connect_store

    db, _ = connect_store(str(tmp_path / "db.sqlite3"))
    runs = Runs(db.connection(), retry_backoff=0)

    queue = Queue(db)
    uuid = queue.enqueue("t")
    run = runs.claim_message(time.time())
    read_only = sqlite3.connect(f"file:{tmp_path / 'db.sqlite3'}?mode=ro", uri=True, isolation_level=None)
    ctx = Context(Runs(read_only, retry_backoff=0), run)
    for write in (lambda: ctx.checkpoint(offset=1), lambda: ctx.warn("w"), lambda: ctx.attach("a", b"x")):
        with pytest.raises(StoreFailed, match="readonly database"):
            write()
    caught = []

    def handler(ctx):
        try:
            ctx.checkpoint(offset=1)
        except Exception as exc:  # what handlers do; the store's failure must get through
            caught.append(exc)

    with pytest.raises(StoreFailed):
        execute(Runs(read_only, retry_backoff=0), run, handler, ctx)
    assert caught == []
    job = queue.get(uuid)
    assert (job.status, job.offset, job.attempts_used) == ("pending", None, 0)
