"""Target 4: `ctx.checkpoint(offset=..., done=..., total=...)` costs under 0.2 ms (median; WAL, NORMAL).

A claimed message's Context in this process; each call is timed on its own.

    .venv/bin/python bench/checkpoint_cost.py [CALLS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from _common import median, verdict

from cronjobs.messages.queue import insert_message
from cronjobs.runtime.context import Context
from cronjobs.runtime.runs import Runs
from cronjobs.store import connect_store

TARGET = 0.2e-3


def main() -> int:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as directory:
        database, _ = connect_store(os.path.join(directory, "checkpoint.sqlite3"), synchronous="NORMAL")
        connection = database.connection()
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        level = connection.execute("PRAGMA synchronous").fetchone()[0]
        insert_message(connection, "bench.count", {"to": calls})
        runs = Runs(connection)
        run = runs.claim_message(time.time())
        ctx = Context(runs, run)
        for index in range(200):  # warm up
            ctx.checkpoint(offset=index, done=index, total=calls)
        costs = []
        for index in range(calls):
            began = time.perf_counter()
            ctx.checkpoint(offset=index, done=index, total=calls)
            costs.append(time.perf_counter() - began)
        seq = connection.execute("SELECT seq FROM message WHERE id = ?", (run.id,)).fetchone()[0]
        assert seq == calls + 200, seq
        database.close()
    costs.sort()
    cost = median(costs)
    print(f"journal_mode={mode}, synchronous={level} (1 = NORMAL), {calls} checkpoints")
    print(f"ctx.checkpoint(offset=..., done=..., total=...): median {cost * 1e3:.3f} ms, "
          f"p90 {costs[int(len(costs) * 0.9)] * 1e3:.3f} ms, p99 {costs[int(len(costs) * 0.99)] * 1e3:.3f} ms")
    ok = cost < TARGET
    print(f"target < {TARGET * 1e3:.1f} ms -> {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
