"""Batches and chains: the store's rules with a real SQLite file, and real ticks through the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import Interleaved, address_of

import cronjobs
from cronjobs.errors import MessageNotFound
from cronjobs.messages import family
from cronjobs.messages.flows import advance
from cronjobs.registry import Handler
from cronjobs.runtime.idle import open_fast, waiting_flows
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone


@pytest.fixture
def db(any_db):
    return any_db

JOBS = """
@cronjobs.handler("part")
def part(ctx, payload):
    record("part", payload["n"])
    if payload.get("fail"):
        raise cronjobs.PermanentError("part failed")

@cronjobs.handler("report")
def report(ctx, payload):
    record("report", json.dumps(payload, sort_keys=True))
"""


def finish(runs, now, fail=()):
    """Run every runnable message: complete it, or fail it for good if its type is in `fail`."""
    while True:
        run = runs.claim_message(now)
        if run is None:
            return
        if run.type in fail:
            runs.fail(run, now, "boom", None, permanent=True)
        else:
            runs.complete(run, now)


def test_batch_callback_once_with_counts(db, queue, runs):
    batch = queue.batch([("part", {"n": 1}), ("part", {"n": 2}), ("bad", {})], then=("report", {"to": "me"}))
    assert len(batch.members) == 3 and batch.state == "open"
    connection = db.connection()
    assert advance(connection) == []  # members still live
    finish(runs, 2e9, fail={"bad"})
    assert advance(connection) == [(batch.uuid, "then queued")]
    assert advance(connection) == []  # once
    flow = queue.flow(batch.uuid)
    assert flow.state == "done" and flow.then is not None
    assert queue.get(flow.then).payload == {
        "to": "me", "batch": {"uuid": batch.uuid, "total": 3, "completed": 2, "failed": 1, "cancelled": 0}}


def test_chain_runs_in_order_and_stops_at_a_failure(db, queue, runs):
    connection = db.connection()
    chain = queue.chain([("a", {}), ("bad", {}), ("c", {})])
    assert [queue.get(uuid).type for uuid in chain.members] == ["a"]
    finish(runs, 2e9)
    assert advance(connection) == [(chain.uuid, "step 2 queued")]
    finish(runs, 2e9, fail={"bad"})
    assert advance(connection) == [(chain.uuid, "stopped: step 2 failed")]
    flow = queue.flow(chain.uuid)
    assert flow.state == "failed" and [queue.get(uuid).type for uuid in flow.members] == ["a", "bad"]
    with pytest.raises(MessageNotFound):
        queue.flow("nope")


def test_two_hosts_move_flows_and_parents_once(db, engine, queue, runs):
    if engine == "sqlite":
        pytest.skip("SQLite has one writer at a time: BEGIN IMMEDIATE serializes the moves")
    batch = queue.batch([("part", {"n": 1})], then=("report", {}))
    chain = queue.chain([("a", {}), ("b", {}), ("c", {})])
    parent = queue.enqueue("import")
    queue.enqueue("import.part", parent=parent)
    finish(runs, 2e9)  # the parent waits for its child, which has finished
    other = open_fast(address_of(db))
    theirs = []
    # What each worker's advance_flows does, the other host's run between this one's reads and writes.
    mine = family.advance(Interleaved(db.connection(), {
        "SELECT uuid FROM message WHERE status = 'new' AND run_at": lambda: theirs.extend(family.advance(other, 2e9)),
    }), 2e9) + advance(Interleaved(db.connection(), {
        "SELECT uuid, uuid, kind": lambda: theirs.extend(advance(other)),
    }))
    other.close()
    assert sorted(theirs + mine) == sorted([(parent, "completed"), (batch.uuid, "then queued"),
                                            (chain.uuid, "step 2 queued")])
    assert [len(queue.jobs(type=name)) for name in ("report", "b")] == [1, 1]
    assert queue.get(parent).status == "completed"


@pytest.mark.parametrize("steps", [[], [("",  {})], ["part"], [("part", float("nan"))]])
def test_bad_steps_queue_nothing(tmp_path, steps):  # refused before any SQL: SQLite only, no server store each
    with cronjobs.connect(database=str(tmp_path / "db.sqlite3")) as queue:
        with pytest.raises((ValueError, cronjobs.InvalidPayload)):
            queue.batch(steps)
        assert queue.jobs() == []


def test_batch_and_chain_in_one_worker_run(db, runs, registry, queue):
    ran = []

    def part(ctx, payload):
        ran.append(payload["n"])
        if payload.get("fail"):
            raise cronjobs.PermanentError("part failed")

    registry.add_handler(Handler("part", part))
    registry.add_handler(Handler("report", lambda ctx, payload: ran.append(payload["batch"])))
    batch = queue.batch([("part", {"n": 1}), ("part", {"n": 2, "fail": True})], then=("report", {}))
    chain = queue.chain([("part", {"n": 10}), ("part", {"n": 11, "fail": True}), ("part", {"n": 12})])
    Worker(runs, registry, get_timezone("Europe/Berlin"), retry_backoff=0, periodic=False).run()
    assert ran == [1, 2, 10, {"uuid": batch.uuid, "total": 2, "completed": 1, "failed": 1, "cancelled": 0}, 11]
    assert (queue.flow(batch.uuid).state, queue.flow(chain.uuid).state) == ("done", "failed")
    assert not waiting_flows(db.connection()) and queue.counts()["new"] == 0


def test_batch_and_chain_through_real_ticks(project):
    project.write_jobs("import json\n" + JOBS)
    assert project.run().returncode == 0  # creates the store
    with cronjobs.connect(database=project.store) as queue:
        batch = queue.batch([("part", {"n": 1}), ("part", {"n": 2, "fail": True})], then=("report", {}))
        chain = queue.chain([("part", {"n": 10}), ("part", {"n": 11}), ("part", {"n": 12})])
    result = project.run()
    assert result.returncode == 1  # a part failed
    ran = project.ran()
    assert ran[:3] == ["part 1", "part 2", "part 10"]
    assert ran[3:] == ['report {"batch": {"cancelled": 0, "completed": 1, "failed": 1, "total": 2, "uuid": "'
                       + batch.uuid + '"}}', "part 11", "part 12"]  # all in the one tick, in order
    with cronjobs.connect(database=project.store) as queue:
        assert queue.flow(batch.uuid).state == "done"
        assert queue.flow(chain.uuid).state == "done"
    assert project.run("-v").stderr.count("nothing due") == 1  # and then the ticks are idle again
    assert json.loads(project.run("status", "--json").stdout)["queue"]["new"] == 0
