"""Server engines: queue drain with 1, 2 and 4 runners on PostgreSQL and on MariaDB beside one runner on
SQLite, in one run; and the idle tick on a server against the import floor plus one connection.

Each runner is a real `run-cron --time-limit 0` tick with a lock file of its own (a host of its own), all
started together on one store holding N no-op messages; the figure is N / wall time from the start of
the first tick to the end of the last, start-up included. Every message must end completed exactly once.

    .venv/bin/python bench/engines.py [N] [IDLE_RUNS]

The servers are the ones .ci/services starts (127.0.0.1:5432 and :3306, database `test`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

from _common import PYTHON, ROOT

SERVERS = {"postgresql": "postgresql://postgres@127.0.0.1:5432/test", "mysql": "mysql://root@127.0.0.1:3306/test"}
JOBS = '''
import cronjobs


@cronjobs.handler("bench.noop")
def noop(ctx, payload):
    pass
'''


def env() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = ROOT + os.pathsep + environment.get("PYTHONPATH", "")
    return environment


def new_store(engine: str, directory: str) -> tuple[str, object]:
    """(URL or path, cleanup) of an empty store: a PostgreSQL schema, a MariaDB database, an SQLite file."""
    if engine == "sqlite":
        return os.path.join(directory, "bench.sqlite3"), lambda: None
    from cronjobs.store.server import open_fast

    name = f"rc_bench_{uuid.uuid4().hex[:8]}"
    admin = open_fast(SERVERS[engine])
    if engine == "postgresql":
        url = f"{SERVERS[engine]}?schema={name}"
        drop = f"DROP SCHEMA IF EXISTS {name} CASCADE"
    else:
        admin.execute_raw(f"CREATE DATABASE {name}")
        url = SERVERS[engine].rsplit("/", 1)[0] + "/" + name
        drop = f"DROP DATABASE IF EXISTS {name}"

    def cleanup() -> None:
        admin.execute_raw(drop)
        admin.close()

    return url, cleanup


def write_host(directory: str, name: str, database: str) -> str:
    config = os.path.join(directory, f"{name}.ini")
    with open(config, "w") as handle:
        handle.write(textwrap.dedent(f"""\
            [run-cron]
            database = {database}
            lock_file = {directory}/{name}.lock
            jobs = bench_engine_jobs
            python_path = {directory}
            timezone = UTC
            time_limit = 0
            """))
    return config


def fill(database: str, count: int) -> None:
    import cronjobs

    with cronjobs.connect(database=database) as queue:
        connection = queue.db
        now = time.time() - 1
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO message (uuid, kind, type, payload, status, priority, run_at, attempts, max_attempts, "
            "seq, progress, created_at) VALUES (?, 'message', 'bench.noop', NULL, 'new', 0, ?, 0, 3, 0, 0, ?)",
            [(str(uuid.uuid4()), now, now) for _ in range(count)],
        )
        connection.execute("COMMIT")


def completed_once(database: str, count: int) -> bool:
    import cronjobs

    with cronjobs.connect(database=database) as queue:
        counts = queue.counts()
        attempts = queue.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT message_id) FROM attempt JOIN message ON message.id = message_id "
            "WHERE outcome = 'completed' AND kind = 'message'").fetchone()
    return counts["completed"] == count and tuple(attempts) == (count, count)


def drain(engine: str, runners: int, count: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "bench_engine_jobs.py"), "w") as handle:
            handle.write(JOBS)
        database, cleanup = new_store(engine, directory)
        try:
            configs = [write_host(directory, f"host{i}", database) for i in range(runners)]
            subprocess.run([PYTHON, "-m", "cronjobs", "--config", configs[0], "migrate"], check=True,
                           env=env(), capture_output=True)
            fill(database, count)
            began = time.perf_counter()
            ticks = [subprocess.Popen([PYTHON, "-m", "cronjobs", "--config", config], env=env()) for config in configs]
            for tick in ticks:
                tick.wait()
            elapsed = time.perf_counter() - began
            if not completed_once(database, count):
                raise SystemExit(f"FAIL: {engine} x{runners}: not every message completed exactly once")
            return count / elapsed
        finally:
            cleanup()  # type: ignore[operator]


def idle_tick(engine: str, runs: int) -> tuple[float, float]:
    """Median wall time of an idle `run-cron` tick on the server, and of the floor: click, filelock,
    sqlite3 and the driver imported, one connection opened and one query run with the driver itself."""
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "bench_engine_jobs.py"), "w") as handle:
            handle.write(JOBS)
        database, cleanup = new_store(engine, directory)
        try:
            config = write_host(directory, "idle", database)
            subprocess.run([PYTHON, "-m", "cronjobs", "--config", config], check=True, env=env())
            from cronjobs.store.url import parse

            target = parse(database)
            if engine == "postgresql":  # the driver itself, without run-cron's code
                connect = (f"import pg8000.dbapi; c = pg8000.dbapi.connect(user='postgres', host={target.host!r}, "
                           f"port={target.port}, database={target.name!r})")
            else:
                connect = (f"import pymysql; c = pymysql.connect(host={target.host!r}, port={target.port}, "
                           f"user='root', database={target.name!r})")
            floor_code = f"import click, filelock, sqlite3; {connect}; k = c.cursor(); k.execute('SELECT 1'); " \
                         "k.fetchone(); c.close()"
            tick, floor = [], []
            for _ in range(runs):
                for command, into in (([PYTHON, "-m", "cronjobs", "--config", config], tick),
                                      ([PYTHON, "-c", floor_code], floor)):
                    began = time.perf_counter()
                    subprocess.run(command, check=True, env=env())
                    into.append(time.perf_counter() - began)
            return statistics.median(tick), statistics.median(floor)
        finally:
            cleanup()  # type: ignore[operator]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    idle_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    print(f"| engine | runners | msg/s ({count:,} no-op messages, whole ticks) |")
    print("|---|---|---|")
    print(f"| sqlite | 1 | {drain('sqlite', 1, count):,.0f} |")
    for engine in SERVERS:
        for runners in (1, 2, 4):
            print(f"| {engine} | {runners} | {drain(engine, runners, count):,.0f} |", flush=True)
    print()
    print("| engine | idle tick (median) | floor: imports + 1 connection | ratio |")
    print("|---|---|---|---|")
    for engine in SERVERS:
        tick, floor = idle_tick(engine, idle_runs)
        print(f"| {engine} | {tick * 1000:.1f} ms | {floor * 1000:.1f} ms | {tick / floor:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
