"""Helpers shared by the benchmarks: paths, a temporary run-cron setup, medians."""

from __future__ import annotations

import os
import statistics
import sys
import textwrap
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(os.path.abspath(sys.executable))  # the venv's bin/ when run with .venv/bin/python
PYTHON = sys.executable
RUN_CRON = os.path.join(BIN, "run-cron")

JOBS_MODULE = '''
import cronjobs


@cronjobs.daily
def bench_daily(ctx):
    pass


@cronjobs.weekly
def bench_weekly(ctx):
    pass


@cronjobs.monthly(name="bench-monthly")
def bench_monthly(ctx):
    pass


@cronjobs.cron("30 4 * * *", name="bench-cron")
def bench_cron(ctx):
    pass


@cronjobs.handler("bench.noop")
def noop(ctx, payload):
    pass
'''


def make_setup(directory: str, synchronous: str = "NORMAL", time_limit: float = 0) -> str:
    """Write a jobs module and a configuration under `directory`; returns the configuration path."""
    with open(os.path.join(directory, "bench_jobs.py"), "w") as handle:
        handle.write(JOBS_MODULE)
    config = os.path.join(directory, "run-cron.ini")
    with open(config, "w") as handle:
        handle.write(textwrap.dedent(f"""\
            [run-cron]
            database = {directory}/run-cron.sqlite3
            lock_file = {directory}/run-cron.lock
            jobs = bench_jobs
            python_path = {directory}
            timezone = Europe/Berlin
            time_limit = {time_limit:g}
            synchronous = {synchronous}
            """))
    return config


def fill_queue(connection: Any, count: int, pad: str = "") -> None:
    """Queue `count` no-op `bench.noop` messages in one transaction."""
    from cronjobs.messages.queue import insert_message

    connection.execute("BEGIN IMMEDIATE")
    for index in range(count):
        insert_message(connection, "bench.noop", {"n": index, "pad": pad} if pad else {"n": index})
    connection.execute("COMMIT")


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
