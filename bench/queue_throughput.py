"""Target 2: durable no-op messages through claim, run, complete: at least 2x huey's SqliteHuey.

Both run in this process, side by side, on files in one temporary directory, at the same SQLite
`synchronous` level (FULL, then NORMAL), WAL mode for both. Only the drain is timed:

* run-cron: N messages enqueued with `cronjobs.messages.insert.insert_message` (`_common.fill_queue`), then
  `Worker(Runs(connection), ...).drain_queue()` on a `connect_store(path, synchronous=LEVEL)` database
  (per message: claim transaction with an attempt row, the handler, complete transaction).
* huey: N no-op tasks enqueued, then `while (task := huey.dequeue()) is not None: huey.execute(task)`
  on a SqliteHuey whose connection has `PRAGMA synchronous = LEVEL`.

For information it also times a whole `run-cron` tick (a subprocess: interpreter start-up, config,
lock, fork, the worker's events to the supervisor) over the same N messages; that figure includes
fixed start-up costs (~0.2 s) that huey's in-process loop does not pay.

    .venv/bin/python bench/queue_throughput.py [N] [ROUNDS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from _common import RUN_CRON, fill_queue, median, verdict
from huey import SqliteHuey
from huey.storage import SqliteStorage

from cronjobs.registry import Handler, Registry
from cronjobs.runtime.runs import Runs
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import UTC
from cronjobs.store import connect_store

TARGET = 2.0


def noop_handler(ctx, payload):  # type: ignore[no-untyped-def]
    pass


def ours(directory: str, count: int, level: str) -> tuple[float, int]:
    path = os.path.join(directory, f"run-cron-{level}-{time.monotonic_ns()}.sqlite3")
    database, _ = connect_store(path, synchronous=level)
    connection = database.connection()
    fill_queue(connection, count)
    registry = Registry()
    registry.add_handler(Handler("bench.noop", noop_handler))
    worker = Worker(Runs(connection), registry, UTC)
    began = time.perf_counter()
    worker.drain_queue()
    seconds = time.perf_counter() - began
    done = connection.execute("SELECT COUNT(*) FROM message WHERE status = 'completed'").fetchone()[0]
    attempts = connection.execute("SELECT COUNT(*) FROM attempt WHERE outcome = 'completed'").fetchone()[0]
    assert done == attempts == count, (done, attempts, count)
    database.close()
    return seconds, done


def theirs(directory: str, count: int, level: str) -> tuple[float, int]:
    class Storage(SqliteStorage):
        def _create_connection(self):  # type: ignore[no-untyped-def]
            connection = super()._create_connection()
            connection.execute(f"PRAGMA synchronous = {level}")
            return connection

    class Huey(SqliteHuey):
        storage_class = Storage

    path = os.path.join(directory, f"huey-{level}-{time.monotonic_ns()}.sqlite3")
    huey = Huey("bench", filename=path)
    executed = []

    @huey.task()
    def noop(n):  # type: ignore[no-untyped-def]
        executed.append(n)

    storage = huey.storage
    with storage.db(commit=True) as cursor:
        cursor.executemany(
            "INSERT INTO task (queue, data, priority) VALUES (?, ?, ?)",
            [(storage.name, storage.to_blob(huey.serialize_task(noop.s(index))), 0) for index in range(count)],
        )
    level_now = storage.conn.execute("PRAGMA synchronous").fetchone()[0]
    assert level_now == {"FULL": 2, "NORMAL": 1}[level], level_now
    began = time.perf_counter()
    while True:
        task = huey.dequeue()
        if task is None:
            break
        huey.execute(task)
    seconds = time.perf_counter() - began
    assert len(executed) == count, len(executed)
    storage.close()
    return seconds, len(executed)


def whole_tick(directory: str, count: int, level: str) -> float:
    """Messages per second of one `run-cron` subprocess tick over `count` queued no-op messages."""
    project = os.path.join(directory, f"tick-{level}-{time.monotonic_ns()}")
    os.mkdir(project)
    with open(os.path.join(project, "bench_jobs.py"), "w") as handle:
        handle.write("import cronjobs\n\n@cronjobs.handler('bench.noop')\ndef noop(ctx, payload):\n    pass\n")
    config = os.path.join(project, "run-cron.ini")
    with open(config, "w") as handle:
        handle.write(f"[run-cron]\ndatabase = db.sqlite3\nlock_file = run-cron.lock\njobs = bench_jobs\n"
                     f"python_path = .\ntime_limit = 0\nsynchronous = {level}\n")
    database, _ = connect_store(os.path.join(project, "db.sqlite3"), synchronous=level)
    fill_queue(database.connection(), count)
    database.close()
    subprocess.run([RUN_CRON, "--config", config, "--force", "all"], check=True)  # built-in jobs out of the way
    began = time.perf_counter()
    subprocess.run([RUN_CRON, "--config", config], check=True)
    seconds = time.perf_counter() - began
    database, _ = connect_store(os.path.join(project, "db.sqlite3"))
    done = database.execute_sql("SELECT COUNT(*) FROM message WHERE status = 'completed' AND kind = 'message'")
    assert done.fetchone()[0] == count
    database.close()
    return count / seconds


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as directory:
        for level in ("FULL", "NORMAL"):
            our_rates, their_rates = [], []
            for _ in range(rounds):  # alternate the two, so drift in the machine hits both
                seconds, done = ours(directory, count, level)
                our_rates.append(done / seconds)
                seconds, done = theirs(directory, count, level)
                their_rates.append(done / seconds)
            our_rate, their_rate = median(our_rates), median(their_rates)
            ratio = our_rate / their_rate
            passed = ratio >= TARGET
            ok = ok and passed
            print(f"synchronous={level}: {count} no-op messages, median of {rounds} rounds")
            print(f"  run-cron drain_queue (claim, run, complete): {our_rate:9.0f} msg/s  "
                  f"{1e6 / our_rate:6.1f} us/msg  {[round(r) for r in our_rates]}")
            print(f"  huey SqliteHuey dequeue()+execute():         {their_rate:9.0f} msg/s  "
                  f"{1e6 / their_rate:6.1f} us/msg  {[round(r) for r in their_rates]}")
            print(f"  ratio {ratio:.2f} (target >= {TARGET}) -> {verdict(passed)}")
            tick_rate = whole_tick(directory, count, level)
            print(f"  whole run-cron tick incl. start-up (info):  {tick_rate:9.0f} msg/s  "
                  f"= {tick_rate / their_rate:.2f}x huey's in-process loop")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
