"""The worker in-process on each engine (SQLite, PostgreSQL, MariaDB): execution, retries, recovery, periodic."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import cli_env, orphaned

import cronjobs
from cronjobs.registry import Job
from cronjobs.runtime.board import BoardState
from cronjobs.runtime.runs import Runs
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone

TZ = get_timezone("Europe/Berlin")


@pytest.fixture
def db(any_db):
    return any_db


def make_worker(runs, registry, **options):
    events = []
    worker = Worker(runs, registry, TZ, retry_backoff=0, emit=lambda event, **f: events.append((event, f)),
                    **options)
    return worker, events


def handle(registry, message_type, func):
    from cronjobs.registry import Handler

    registry.add_handler(Handler(message_type, func))


def test_drain_runs_messages_and_records_attempts(runs, registry, queue):
    seen = []
    handle(registry, "echo", lambda ctx, payload: seen.append(payload))
    uuids = [queue.enqueue("echo", i) for i in range(3)]
    worker, events = make_worker(runs, registry)
    worker.drain_queue()
    assert seen == [0, 1, 2]
    assert [queue.get(u).status for u in uuids] == ["completed"] * 3
    assert queue.get(uuids[0]).progress == 100
    assert [e for e, _ in events if e != "claimed"] == ["start", "end"] * 3  # each once, one at a time
    assert sum(fields["count"] for e, fields in events if e == "claimed") == 3  # each claimed once


def test_poison_message_fails_after_its_attempts_and_the_rest_still_run(runs, registry, queue):
    def poison(ctx, payload):
        raise RuntimeError("always")

    handle(registry, "poison", poison)
    handle(registry, "fine", lambda ctx, payload: None)
    bad = queue.enqueue("poison", max_attempts=3, priority=1)
    good = [queue.enqueue("fine") for _ in range(3)]
    worker, _ = make_worker(runs, registry)
    worker.drain_queue()
    job = queue.get(bad)
    assert (job.status, job.attempts) == ("failed", 3)
    assert [e["error"] for e in job.errors] == ["RuntimeError: always"] * 3
    assert all(queue.get(u).status == "completed" for u in good)


def test_permanent_error_fails_at_once(runs, registry, queue):
    def handler(ctx, payload):
        raise cronjobs.PermanentError("bad input")

    handle(registry, "t", handler)
    uuid = queue.enqueue("t", max_attempts=5)
    make_worker(runs, registry)[0].drain_queue()
    job = queue.get(uuid)
    assert (job.status, job.attempts, job.error) == ("failed", 1, "PermanentError: bad input")


def test_retry_reschedules_without_using_an_attempt(runs, registry, queue):
    def handler(ctx, payload):
        raise cronjobs.Retry(delay=3600)

    handle(registry, "t", handler)
    uuid = queue.enqueue("t")
    make_worker(runs, registry)[0].drain_queue()
    job = queue.get(uuid)
    assert (job.status, job.attempts_used) == ("new", 0)
    assert job.run_at > time.time() + 3500


def test_unknown_type_fails_with_a_clear_error(runs, registry, queue):
    uuid = queue.enqueue("nobody.handles.this")
    make_worker(runs, registry)[0].drain_queue()
    job = queue.get(uuid)
    assert job.status == "failed"
    assert job.error == "UnknownMessageType: no handler for message type 'nobody.handles.this'"


def test_cancelled_while_running(runs, registry, queue):
    def handler(ctx, payload):
        queue.cancel(ctx.job.uuid)
        ctx.checkpoint(offset=1)

    handle(registry, "t", handler)
    uuid = queue.enqueue("t")
    worker, events = make_worker(runs, registry)
    worker.drain_queue()
    assert queue.get(uuid).status == "cancelled"
    assert events[-1][1]["outcome"] == "cancelled"


def test_soft_deadline_stops_claiming(runs, registry, queue):
    handle(registry, "t", lambda ctx, payload: None)
    for _ in range(3):
        queue.enqueue("t")
    worker, _ = make_worker(runs, registry, deadline=time.monotonic() - 1)
    worker.drain_queue()
    assert queue.counts()["new"] == 3


def test_recover_continues_a_run_with_progress_and_charges_one_without(runs, queue, db):
    a, b = queue.enqueue("t", max_attempts=2), queue.enqueue("t", max_attempts=1)
    from cronjobs.runtime.context import Context

    progressed = runs.claim_message(time.time())
    Context(runs, progressed).checkpoint(offset=5)
    runs.claim_message(time.time())
    settled = {run.uuid: outcome for run, outcome in orphaned(runs, db).recover(time.time(), "timeout")}
    assert settled == {a: "continued", b: "timeout"}
    assert (queue.get(a).status, queue.get(a).attempts_used, queue.get(a).offset) == ("new", 0, 5)
    assert (queue.get(b).status, queue.get(b).attempts) == ("failed", 1)
    assert queue.get(b).errors[0]["error"] == "stopped: the time limit was reached"


def test_periodic_jobs_share_the_ctx_and_checkpoint(runs, registry, queue):
    calls = []

    def long_daily(ctx):
        calls.append(ctx.offset)
        ctx.checkpoint(offset=(ctx.offset or 0) + 1)
        if ctx.offset < 2:
            raise cronjobs.Retry(delay=0)

    registry.add_job(Job("long", long_daily, "daily"))
    worker, events = make_worker(runs, registry)
    worker.run_periodic()
    worker.run_periodic()  # resumes the same run from its checkpoint
    assert calls == [None, 1]
    runs_of_job = queue.jobs(kind="job")
    assert len(runs_of_job) == 1 and runs_of_job[0].status == "completed"
    worker.run_periodic()
    assert calls == [None, 1]  # done for today


def test_cli_only_is_skipped_from_http(runs, registry, queue):
    from cronjobs.registry import Handler

    registry.add_job(Job("local", lambda ctx: None, "daily", cli_only=True))
    registry.add_handler(Handler("local.msg", lambda ctx, p: None, cli_only=True))
    queue.enqueue("local.msg")
    worker, events = make_worker(runs, registry, trigger="http")
    worker.run()
    skipped = [f for e, f in events if e == "skipped"]
    assert [s["name"] for s in skipped] == ["local", "local.msg"]
    assert queue.counts()["new"] == 1
    assert [e for e, _ in events if e == "start"] == []


BOARD_ACROSS_FORK = """
import os
from cronjobs.runtime.board import Board

board = Board(capacity=4)
pid = os.fork()
if pid == 0:
    board.set_current(7)
    for run_id in (1, 2, 3, 4):
        board.add_done(run_id)
    os._exit(0 if not board.add_done(5) else 1)  # full: the caller must commit first
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), tuple(board.read()))
board.clear_done()
board.set_current(0)
print(tuple(board.read()))
"""


def test_board_survives_in_shared_memory_across_fork():
    # The fork happens in a child interpreter: forking pytest itself would copy its threads and plugins.
    done = subprocess.run([sys.executable, "-c", BOARD_ACROSS_FORK], env=cli_env(), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 (7, [1, 2, 3, 4], [])", "(None, [], [])"]


def test_group_commit_writes_fast_successes_with_the_next_claim(runs, registry, queue):
    handle(registry, "t", lambda ctx, payload: None)
    uuids = [queue.enqueue("t") for _ in range(5)]
    batch = runs.claim_messages(time.time(), limit=3)
    assert [run.uuid for run in batch] == uuids[:3]
    runs.defer_complete(batch[0], time.time())
    assert queue.get(uuids[0]).status == "pending"  # not committed yet
    assert runs.board.read() == (None, [batch[0].id], [run.id for run in batch])
    supervisor = Runs(runs.db)  # the worker died with its deferred success: the supervisor settles
    board = BoardState(batch[1].id, [batch[0].id], [run.id for run in batch])
    settled = {run.uuid: outcome for run, outcome in supervisor.recover(time.time(), "timeout", board)}
    assert settled == {uuids[0]: "completed", uuids[1]: "timeout", uuids[2]: "released"}
    assert [queue.get(u).status for u in uuids[:3]] == ["completed", "new", "new"]
    assert [queue.get(u).attempts_used for u in uuids[:3]] == [0, 1, 0]
    assert queue.get(uuids[2]).started_at is None  # released: it never ran


def test_a_message_cancelled_while_its_success_waits_for_the_group_commit_stays_cancelled(runs, queue):
    uuid = queue.enqueue("fast")
    run = runs.claim_message(time.time())
    runs.defer_complete(run, time.time())  # a fast handler's success waits for the next commit
    queue.cancel(uuid)
    runs.flush()
    shown = queue.get(uuid)
    assert shown.status == "cancelled"
    outcomes = runs.db.execute("SELECT outcome FROM attempt WHERE message_id = ?", (run.id,)).fetchall()
    assert outcomes == [("cancelled",)]  # history too says it did not complete
