"""Target 5: peak memory of a tick that processes 10,000 messages stays under 60 MB.

Enqueues 10,000 no-op messages in a temporary setup, runs one `run-cron` tick as a subprocess (the
venv's console script, no time limit) and reads the peak RSS of the waited-for processes from
resource.getrusage(RUSAGE_CHILDREN): the larger of the supervisor and its forked worker (ru_maxrss is
a maximum over the children, not a sum).

    .venv/bin/python bench/tick_memory.py [MESSAGES]
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

from _common import RUN_CRON, fill_queue, make_setup, verdict

from cronjobs.store import connect_store

TARGET_MB = 60


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as directory:
        config = make_setup(directory)
        database_path = os.path.join(directory, "run-cron.sqlite3")
        database, _ = connect_store(database_path)
        fill_queue(database.connection(), count, pad="x" * 100)
        database.close()
        began = time.perf_counter()
        result = subprocess.run([RUN_CRON, "--config", config, "--time-limit", "0"], capture_output=True, text=True)
        seconds = time.perf_counter() - began
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        check = sqlite3.connect(database_path)
        done = check.execute(
            "SELECT COUNT(*) FROM message WHERE kind = 'message' AND status = 'completed'").fetchone()[0]
        check.close()
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    print(f"one tick: exit {result.returncode}, {done} of {count} messages completed in {seconds:.1f} s "
          f"({done / seconds:.0f} msg/s including startup and the periodic jobs)")
    if result.stderr.strip():
        print("stderr:", result.stderr.strip()[:500])
    ok = done == count and result.returncode == 0 and peak_mb < TARGET_MB
    print(f"peak RSS (max over supervisor and worker): {peak_mb:.1f} MB (target < {TARGET_MB} MB) -> {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
