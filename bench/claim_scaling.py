"""Target 3: the claim does not slow down as the queue grows.

Prints EXPLAIN QUERY PLAN of the claim SELECT the code runs (`cronjobs.runtime.runs.claim_sql`): it must walk
message_claim with no "USE TEMP B-TREE". Then measures claim + complete per message (Runs.claim_message
and Runs.complete, WAL, NORMAL) with 1,000 and with 1,000,000 new messages queued (bulk-inserted with
executemany in one transaction; SIZE + warm-up + SAMPLES are inserted, so at least SIZE are still queued at
every measured claim); the two medians must be within 1.5x.

    .venv/bin/python bench/claim_scaling.py [SAMPLES]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid

from _common import median, verdict

from cronjobs.runtime.runs import Runs, claim_sql
from cronjobs.store import connect_store

TARGET = 1.5
SIZES = (1_000, 1_000_000)
WARMUP = 50


def fill(connection, count: int) -> None:  # type: ignore[no-untyped-def]
    now = time.time() - 10
    rows = ((str(uuid.uuid4()), f'{{"n": {index}}}', now) for index in range(count))
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "INSERT INTO message (uuid, kind, type, payload, status, priority, run_at, attempts, max_attempts, "
        "seq, progress, created_at) VALUES (?, 'message', 'bench.noop', ?, 'new', 0, ?, 0, 3, 0, 0, ?)",
        ((u, p, n, n) for u, p, n in rows),
    )
    connection.execute("COMMIT")


def measure(directory: str, size: int, samples: int) -> tuple[float, str]:
    database, _ = connect_store(os.path.join(directory, f"queue-{size}.sqlite3"), synchronous="NORMAL")
    connection = database.connection()
    began = time.perf_counter()
    fill(connection, size + WARMUP + samples)  # at least `size` still queued at every measured claim
    print(f"{size + WARMUP + samples:>9,} messages inserted in {time.perf_counter() - began:.1f} s")
    plan = "\n".join(f"    {row[3]}" for row in connection.execute("EXPLAIN QUERY PLAN " + claim_sql(), (time.time(),)))
    runs = Runs(connection)
    for _ in range(WARMUP):  # warm the cache
        runs.complete(runs.claim_message(time.time()), time.time())
    costs = []
    for _ in range(samples):
        began = time.perf_counter()
        run = runs.claim_message(time.time())
        runs.complete(run, time.time())
        costs.append(time.perf_counter() - began)
    database.close()
    return median(costs), plan


def main() -> int:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="bench-claim-") as directory:
        results = {}
        for size in SIZES:
            results[size], plan = measure(directory, size, samples)
        print("EXPLAIN QUERY PLAN of the claim SELECT:")
        print(plan)
        sorted_ok = "TEMP B-TREE" not in plan and "message_claim" in plan
        print(f"  walks message_claim, no temporary B-tree -> {verdict(sorted_ok)}")
        small, large = results[SIZES[0]], results[SIZES[-1]]
        for size in SIZES:
            print(f"claim + complete with {size:>9,} queued: median {results[size] * 1e6:7.1f} us over {samples}")
        ratio = large / small
        ok = sorted_ok and ratio <= TARGET
        print(f"ratio {ratio:.2f} (target <= {TARGET}) -> {verdict(ok)}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
