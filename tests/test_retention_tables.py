"""Retention of the tables created on first use (families, batches and chains, the slot ledger), on
SQLite, PostgreSQL and MariaDB: rows made by the real state changes at injected times, then `prune`."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import address_of, make_runs

from cronjobs.errors import MessageNotFound
from cronjobs.messages import family, flows
from cronjobs.messages.insert import insert_message
from cronjobs.runtime.retention import connect, prune
from cronjobs.scheduling import ledger

DAY = 86400.0
NOW = 2e9
OLD = NOW - 40 * DAY  # beyond the 30 days of retention
RECENT = NOW - 2 * DAY


@pytest.fixture
def db(any_db):
    return any_db


def settle(runs: Any, at: float, fail: tuple[str, ...] = ()) -> None:
    """Run every message due at `at` to its end, then move the families and flows that follows, again
    until nothing moves (as a tick does), all at `at`."""
    while True:
        run = runs.claim_message(at)
        if run is not None:
            if run.type in fail:
                runs.fail(run, at, "bad row", None, permanent=True)
            else:
                runs.complete(run, at)
            continue
        if not family.advance(runs.db, at) and not flows.advance(runs.db, at):
            return


def rows(db: Any, sql: str) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in db.execute(sql).fetchall()}


def pruned_at(db: Any, now: float, **options: Any) -> Any:
    connection = connect(address_of(db))
    try:
        return prune(connection, now, 30, **options)
    finally:
        connection.close()


def test_prune_deletes_the_records_of_what_finished_before_retention_and_keeps_the_rest(db, queue):
    conn, runs = db.connection(), make_runs(db)
    old_parent = insert_message(conn, "import", {}, now=OLD)
    for _ in range(2):
        insert_message(conn, "import.part", {}, parent=old_parent, now=OLD)
    kept_failed = insert_message(conn, "import", {}, now=OLD)  # failed messages stay until purge --failed
    failed_child = insert_message(conn, "bad", {}, parent=kept_failed, now=OLD)
    waiting = insert_message(conn, "import", {}, now=OLD)  # as old, but waits for a child due in 100 days
    late = insert_message(conn, "import.part", {}, parent=waiting, delay=100 * DAY, now=OLD)
    old_batch = flows.create(conn, "batch", [("part", {}), ("part", {})], ("report", {}), {}, now=OLD)
    old_chain = flows.create(conn, "chain", [("a", {}), ("b", {})], None, {}, now=OLD)
    settle(runs, OLD, fail=("bad",))
    recent_parent = insert_message(conn, "import", {}, now=RECENT)
    recent_child = insert_message(conn, "import.part", {}, parent=recent_parent, now=RECENT)
    recent_batch = flows.create(conn, "batch", [("part", {})], ("report", {}), {}, now=RECENT)
    settle(runs, RECENT)
    open_chain = flows.create(conn, "chain", [("a", {}), ("b", {})], None, {}, now=OLD)  # its step never ran
    ledger.record(conn, "sync", [OLD - 3600, OLD], ledger.SKIPPED, OLD)
    ledger.record(conn, "sync", [OLD + 3600], ledger.RAN, OLD + 3600)
    ledger.record(conn, "sync", [RECENT], ledger.SKIPPED, RECENT)
    ledger.record(conn, "sync", [RECENT + 3600], ledger.RAN, RECENT + 3600)
    ledger.record(conn, "yearly", [OLD - 300 * DAY, OLD], ledger.DROPPED, OLD)  # its newest slot is old
    assert queue.get(kept_failed).status == "failed" and queue.get(waiting).waiting_for_children

    result = pruned_at(db, NOW)

    assert (result.messages, result.done) == (8, True)  # 3 of the old family, 3 of the batch, 2 of a chain
    links = rows(conn, "SELECT child_uuid, parent_uuid FROM message_child")
    assert links == {(late, waiting), (recent_child, recent_parent)}  # not (failed_child, kept_failed)
    assert rows(conn, "SELECT uuid FROM flow") == {(open_chain.uuid,), (recent_batch.uuid,)}
    members = rows(conn, "SELECT flow_uuid FROM flow_member")
    assert members == {(open_chain.uuid,), (recent_batch.uuid,)}
    assert rows(conn, "SELECT job, slot FROM slot_ledger") == {
        ("sync", RECENT), ("sync", RECENT + 3600), ("yearly", OLD)}
    assert result.records == 3 + 2 + 5 + 4  # links, flows, their members (the callback too), slots
    # What the readers need stays: the waiting family, a catch-up decision's start, history's missed runs.
    assert [kid["uuid"] for kid in queue.get(waiting).children] == [late]
    assert queue.get(failed_child).parent is None and queue.get(kept_failed).children == []
    assert queue.flow(recent_batch.uuid).state == "done" and queue.flow(open_chain.uuid).state == "open"
    with pytest.raises(MessageNotFound):
        queue.flow(old_batch.uuid)
    with pytest.raises(MessageNotFound):
        queue.flow(old_chain.uuid)
    assert (ledger.last_handled(conn, "sync"), ledger.last_handled(conn, "yearly")) == (RECENT + 3600, OLD)
    assert [(job, slot) for job, slot, _, _ in ledger.missed(conn)] == [("sync", RECENT), ("yearly", OLD)]
    again = pruned_at(db, NOW)
    assert (again.messages, again.job_runs, again.records, again.done) == (0, 0, 0, True)


def test_prune_of_the_records_goes_in_bounded_batches_and_stops_when_asked(db):
    conn, runs = db.connection(), make_runs(db)
    for _ in range(3):
        parent = insert_message(conn, "import", {}, now=OLD)
        insert_message(conn, "import.part", {}, parent=parent, now=OLD)
    flows.create(conn, "batch", [("part", {})] * 5, ("report", {}), {}, now=OLD)
    flows.create(conn, "chain", [("a", {})], None, {}, now=OLD)
    settle(runs, OLD)
    ledger.record(conn, "sync", [OLD - hour * 3600 for hour in range(7)], ledger.SKIPPED, OLD)
    conn.execute("DELETE FROM message")  # pruned by an earlier run: only the records are left
    counts = []
    while True:
        result = pruned_at(db, NOW, batch=2, should_stop=lambda: True)
        counts.append(result.records)
        if result.done:
            break
    # 3 links, 2 flows, 7 members (the callback too), 6 slots; at most 2 rows a batch, and a step that
    # ends with a short batch lets the next one take its first in the same run
    assert sum(counts) == 3 + 2 + 7 + 6 and max(counts) <= 3 and len(counts) >= 6
    for table in ("message_child", "flow", "flow_member"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
    assert rows(conn, "SELECT slot FROM slot_ledger") == {(OLD,)}
