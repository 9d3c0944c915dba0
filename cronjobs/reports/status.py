"""Is run-cron healthy? The facts monitoring needs, and a verdict in the Nagios convention.

0 OK; 1 WARNING: failed messages, periodic jobs whose last run failed or that are overdue although
ticks run, or files of run-cron's that other users may read; 2 CRITICAL: no tick finished within
`stale_after` seconds, or none ever, or the database is corrupt, truncated, read-only or on a full
disk; 3 UNKNOWN: this user cannot read files another user owns, so nothing can be checked. The
highest applies. Reading is plain sqlite3 and never writes;
`evaluate` is a pure function of the facts and `now`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ..constants import FAILED_OUTCOMES
from ..control.pauses import paused
from ..errors import StoreError
from ..host.files import loose_files, store_files
from ..messages.queue import iso
from ..registry import Registry
from ..runtime.board import held_since
from ..runtime.idle import no_schema, open_fast, read_tick
from ..runtime.lock import LockError, SupervisorLock
from ..runtime.runs import STATUSES
from .metrics import collect as collect_metrics

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
FAILED_SHOWN = 20


@dataclass
class JobFacts:
    name: str
    schedule: str
    last_run: Optional[float]
    last_outcome: Optional[str]
    last_error: Optional[str]
    next_due: Optional[float]
    running: bool


@dataclass
class Facts:
    """What `collect` reads; built by hand in tests."""

    meta: dict[str, str] = field(default_factory=dict)
    running: bool = False
    running_since: Optional[float] = None  # when the running tick began, if its board says so
    queue: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    failed_messages: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[JobFacts] = field(default_factory=list)
    loose_files: list[tuple[str, int]] = field(default_factory=list)  # (path, mode) others may read
    paused: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, name) -> since
    metrics: dict[str, Any] = field(default_factory=dict)  # see `metrics.collect`


@dataclass
class Status:
    code: int
    summary: str
    problems: list[str]
    facts: Facts
    now: float
    stale_after: float
    problem_jobs: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return LABELS[self.code]

    @property
    def last_tick(self) -> Optional[dict[str, Any]]:
        meta = self.facts.meta
        finished = _float(meta.get("tick.finished"))
        if finished is None:
            return None
        return {
            "started_at": iso(_float(meta.get("tick.started"))),
            "finished_at": iso(finished),
            "age": round(self.now - finished, 1),
            "duration": _float(meta.get("tick.duration")),
            "outcome": meta.get("tick.outcome"),
            "trigger": meta.get("tick.trigger"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.label,
            "code": self.code,
            "summary": self.summary,
            "problems": self.problems,
            "now": iso(self.now),
            "stale_after": self.stale_after,
            "last_tick": self.last_tick,
            "running": self.facts.running,
            "running_since": iso(self.facts.running_since),
            "queue": dict(self.facts.queue),
            "failed_messages": [dict(row, finished_at=iso(row.get("finished_at")))
                                for row in self.facts.failed_messages],
            "jobs": [dict(row, last_run=iso(row["last_run"]), next_due=iso(row["next_due"]))
                     for row in self.problem_jobs],
            "paused": [{"kind": kind, "name": name, "since": iso(at)}
                       for (kind, name), at in sorted(self.facts.paused.items())],
            "metrics": self.facts.metrics,
        }


def _float(text: Optional[str]) -> Optional[float]:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def evaluate(facts: Facts, now: float, stale_after: float) -> Status:
    """The verdict on `facts` at `now`: code, one-line summary, and the problems found."""
    code = OK
    problems: list[str] = []
    finished = _float(facts.meta.get("tick.finished"))
    if finished is None:
        code = CRITICAL
        problems.append("no tick has ever finished")
    elif now - finished > stale_after:
        code = CRITICAL
        problems.append(f"no tick finished for {_ago(now - finished)} (stale_after {stale_after:g} s)")
    failed = facts.queue.get("failed", 0)
    if failed:
        code = max(code, WARNING)
        problems.append(f"{failed} failed message(s)")
    if facts.loose_files:
        code = max(code, WARNING)
        problems.append("other users may read " + ", ".join(f"{path} ({mode:04o})" for path, mode in facts.loose_files)
                        + ": chmod 600 them")
    problem_jobs = []
    for job in facts.jobs:
        failing = job.last_outcome in FAILED_OUTCOMES
        overdue = (not job.running and job.next_due is not None and now - job.next_due > stale_after
                   and ("job", job.name) not in facts.paused)
        if not (failing or overdue):
            continue
        code = max(code, WARNING)
        if failing:
            problems.append(f"job {job.name}: last run {job.last_outcome}")
        if overdue:
            problems.append(f"job {job.name}: overdue by {_ago(now - (job.next_due or now))}")
        problem_jobs.append({
            "name": job.name,
            "schedule": job.schedule,
            "last_run": job.last_run,
            "last_outcome": job.last_outcome,
            "last_error": job.last_error,
            "next_due": job.next_due,
            "failing": failing,
            "overdue": overdue,
        })
    if finished is None:
        tick = "no tick yet"
    else:
        duration = _float(facts.meta.get("tick.duration"))
        tick = (f"last tick {_ago(now - finished)} ago: {facts.meta.get('tick.outcome')}"
                + (f" in {duration:.2f} s" if duration is not None else "")
                + f" ({facts.meta.get('tick.trigger')})")
    if facts.running:
        since = facts.running_since
        tick += "; a tick is running" + (f" (for {_ago(now - since)})" if since is not None else "")
    summary = f"{LABELS[code]} - " + "; ".join([*problems, tick] if code else [tick])
    return Status(code, summary, problems, facts, now, stale_after, problem_jobs)


def collect(config: Any, registry: Registry) -> Facts:
    """Read the facts from the store and the lock; a missing database gives empty facts.

    Raises StoreError or LockError when they cannot be read (see `cannot_check`).
    """
    facts = Facts(running=SupervisorLock(config.lock_file).held_elsewhere())
    facts.running_since = held_since(config.lock_file) if facts.running else None
    facts.loose_files = loose_files(store_files(config.database, config.lock_file, config.log.file))
    facts.meta = read_tick(config.database)
    connection = open_fast(config.database, config.busy_timeout)
    if connection is None:
        return facts
    try:
        try:
            for status, count in connection.execute(
                "SELECT status, COUNT(*) FROM message WHERE kind = 'message' GROUP BY status"
            ):
                facts.queue[status] = count
            facts.failed_messages = [
                {"uuid": uuid, "type": type_, "attempts": attempts, "finished_at": finished, "error": error}
                for uuid, type_, attempts, finished, error in connection.execute(
                    "SELECT uuid, type, attempts, finished_at, error FROM message "
                    "WHERE kind = 'message' AND status = 'failed' ORDER BY id DESC LIMIT ?", (FAILED_SHOWN,))
            ]
            facts.paused = paused(connection)
            facts.metrics = collect_metrics(connection, time.time())
            states = {
                row[0]: row[1:]
                for row in connection.execute(
                    "SELECT name, last_run, CASE last_outcome WHEN 'success' THEN 'completed' ELSE last_outcome END, "
                    "last_error, next_due, current FROM job_state")
            }
        except sqlite3.Error as exc:
            if no_schema(exc):  # created, but no schema yet
                return facts
            raise StoreError(config.database, exc) from exc
    finally:
        connection.close()
    for job in registry.ordered_jobs():
        state = states.get(job.name)
        if state is None:
            continue  # not registered by a tick yet: nothing to say about it
        last_run, last_outcome, last_error, due, current = state
        facts.jobs.append(JobFacts(job.name, job.schedule, last_run, last_outcome, last_error, due,
                                   current is not None))
    return facts


def check(config: Any, registry: Registry, now: Optional[float] = None) -> Status:
    """`collect` and `evaluate` at `now` (default: the current time)."""
    facts = collect(config, registry)
    return evaluate(facts, time.time() if now is None else now, config.stale_after)


def cannot_check(exc: Union[StoreError, LockError]) -> tuple[int, str]:
    """The verdict when the facts cannot be read: (code, Nagios summary line).

    UNKNOWN when the file belongs to another user (the check runs as the wrong user: it says nothing
    about the ticks, which run as the owner); CRITICAL otherwise, because a corrupt, truncated or
    read-only database, or a full disk, stops the ticks of its owner too.
    """
    cause = exc.cause if isinstance(exc, StoreError) else None
    corrupt = isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, sqlite3.OperationalError)
    if not corrupt and _foreign(exc.path):
        return UNKNOWN, f"UNKNOWN - cannot check as uid {os.geteuid()}: {exc}"
    return CRITICAL, f"CRITICAL - {exc}"


def _foreign(path: str) -> bool:
    """True when `path` (or the nearest directory above it that exists) is another user's, or hidden."""
    path = os.path.abspath(path)
    while True:
        try:
            return os.stat(path).st_uid != os.geteuid()
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent
        except OSError:  # a directory on the way that this user may not enter
            return True


def render(status: Status, tz: Any) -> str:
    """The summary line (what Nagios shows), then the queue and tables of what needs attention."""
    from .views import local_iso, render_table

    lines = [status.summary, ""]
    queue = status.facts.queue
    lines.append("queue: " + ", ".join(f"{queue.get(name, 0)} {name}" for name in STATUSES))
    if status.facts.paused:
        lines.append("paused: " + ", ".join(
            f"{'job' if kind == 'job' else 'message type'} {name} (since {local_iso(at, tz)})"
            for (kind, name), at in sorted(status.facts.paused.items())))
    if status.facts.failed_messages:
        lines += ["", f"failed messages (newest {FAILED_SHOWN}; retry or purge them):"]
        lines.append(render_table(
            [dict(row, finished=local_iso(row["finished_at"], tz)) for row in status.facts.failed_messages],
            ["uuid", "type", "attempts", "finished", "error"]))
    if status.problem_jobs:
        lines += ["", "periodic jobs that failed or are overdue:"]
        lines.append(render_table(
            [dict(row, last_run=local_iso(row["last_run"], tz), next_due=local_iso(row["next_due"], tz),
                  problem=" and ".join(word for word, flag in (("failed", row["failing"]),
                                                               ("overdue", row["overdue"])) if flag))
             for row in status.problem_jobs],
            ["name", "schedule", "problem", "last_run", "last_outcome", "next_due", "last_error"]))
    return "\n".join(lines)
