"""Metrics per periodic job and message type over the last hour and day, read from the attempts.

Wait time is enqueue to first start (messages only; a job's run starts when a tick takes it), run
time is each attempt's start to end. Throughput counts completed runs, the success rate is completed
among finished attempts (continuations and `Retry` left out), retries are attempts after the first.
Plain sqlite3; percentiles in Python over the window's rows.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Optional

WINDOWS = {"hour": 3600.0, "day": 86400.0}
#: Outcomes that end an attempt one way or the other; "continued" and "retry" are neither.
_FINISHED = ("completed", "failed", "timeout", "crashed", "cancelled")


def percentile(values: list[float], fraction: float) -> Optional[float]:
    """The nearest-rank percentile of sorted `values`; None when empty."""
    if not values:
        return None
    rank = max(int(-(-fraction * len(values) // 1)), 1)  # ceil(fraction * n), at least 1
    return values[min(rank, len(values)) - 1]


def _summary(rows: list[tuple[Any, ...]], seconds: float) -> dict[str, Any]:
    waits = sorted(row[3] - row[2] for row in rows if row[4] == 1 and row[1] == "message" and row[2] is not None)
    runs = sorted(row[6] - row[3] for row in rows if row[6] is not None)
    finished = [row for row in rows if row[5] in _FINISHED]
    completed = sum(1 for row in finished if row[5] == "completed")
    return {
        "runs": len(rows),
        "completed": completed,
        "failed": len(finished) - completed,
        "retries": sum(1 for row in rows if row[4] > 1),
        "throughput_per_hour": round(completed * 3600.0 / seconds, 3),
        "success_rate": round(completed / len(finished), 4) if finished else None,
        "wait_p50": _round(percentile(waits, 0.5)),
        "wait_p95": _round(percentile(waits, 0.95)),
        "run_p50": _round(percentile(runs, 0.5)),
        "run_p95": _round(percentile(runs, 0.95)),
    }


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(max(value, 0.0), 3)


def collect(db: sqlite3.Connection, now: float) -> dict[str, dict[str, Any]]:
    """{name: {"kind": ..., "hour": {...}, "day": {...}}} for every job and type with attempts in the day."""
    rows = db.execute(
        "SELECT message.type, message.kind, message.created_at, attempt.started_at, attempt.number, "
        "attempt.outcome, attempt.finished_at FROM attempt JOIN message ON message.id = attempt.message_id "
        "WHERE attempt.started_at >= ? ORDER BY attempt.started_at", (now - WINDOWS["day"],)).fetchall()
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_name.setdefault(row[0], []).append(row)
    found = {}
    for name, named in sorted(by_name.items()):
        entry: dict[str, Any] = {"kind": "job" if named[0][1] == "job" else "message"}
        for window, seconds in WINDOWS.items():
            entry[window] = _summary([row for row in named if row[3] >= now - seconds], seconds)
        found[name] = entry
    return found


def read(database: str, busy_timeout: float, now: float) -> dict[str, dict[str, Any]]:
    """`collect` on the database file; {} when it does not exist or has no schema yet."""
    from ..errors import StoreError
    from ..runtime.idle import no_schema, open_fast

    connection = open_fast(database, busy_timeout)
    if connection is None:
        return {}
    try:
        return collect(connection, now)
    except sqlite3.Error as exc:
        if no_schema(exc):
            return {}
        raise StoreError(database, exc) from exc
    finally:
        connection.close()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_PROMETHEUS = (
    ("runs", "", "runs", "Attempts started in the window"),
    ("completed", "", "completed", "Attempts completed in the window"),
    ("failed", "", "failed", "Attempts that failed, timed out, crashed or were cancelled in the window"),
    ("retries", "", "retries", "Attempts after the first in the window"),
    ("throughput_per_hour", "", "throughput_per_hour", "Completed runs per hour over the window"),
    ("success_rate", "", "success_ratio", "Completed among finished attempts in the window"),
)


def prometheus(metrics: dict[str, dict[str, Any]], queue: dict[str, int]) -> str:
    """The metrics in Prometheus' text exposition format (version 0.0.4), all gauges over a window."""
    lines: list[str] = []

    def family(metric: str, help_text: str) -> None:
        lines.append(f"# HELP run_cron_{metric} {help_text}")
        lines.append(f"# TYPE run_cron_{metric} gauge")

    family("queue_messages", "Messages in the queue by status")
    for status, count in sorted(queue.items()):
        lines.append(f'run_cron_queue_messages{{status="{_label(status)}"}} {count}')
    for key, _, metric, help_text in _PROMETHEUS:
        family(metric, help_text)
        for name, entry in metrics.items():
            for window in WINDOWS:
                value = entry[window][key]
                if value is not None:
                    lines.append(f'run_cron_{metric}{{kind="{entry["kind"]}",name="{_label(name)}",'
                                 f'window="{window}"}} {value}')
    for what in ("wait", "run"):
        family(f"{what}_seconds", f"{'Enqueue to start' if what == 'wait' else 'Run time'} of attempts, "
                                  "quantiles over the window")
        for name, entry in metrics.items():
            for window in WINDOWS:
                for quantile in ("50", "95"):
                    value = entry[window][f"{what}_p{quantile}"]
                    if value is not None:
                        lines.append(f'run_cron_{what}_seconds{{kind="{entry["kind"]}",name="{_label(name)}",'
                                     f'window="{window}",quantile="0.{quantile}"}} {value}')
    return "\n".join(lines) + "\n"
