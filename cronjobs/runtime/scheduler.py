"""Which periodic jobs run in this tick, and what their runs leave behind for the next one.

The decisions are the pure functions of `schedule`; this module reads and writes the `job_state`
rows they work from, including the cached `next_due` that lets idle ticks skip all of this.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Iterable, Optional

from ..constants import FAILED_OUTCOMES
from ..registry import Job
from ..scheduling.jobopts import jitter_offset
from ..scheduling.schedule import UTC, LastRun, count_failures, decide, next_due, next_regular
from .board import BoardState
from .runs import Run, Runs


@dataclass
class JobState:
    name: str
    schedule: str
    first_seen: float
    last_run: Optional[float]
    last_finished: Optional[float]
    last_outcome: Optional[str]
    last_error: Optional[str]
    failures: int
    next_due: Optional[float]
    current: Optional[str]
    current_run_at: Optional[float] = None

    def last(self) -> Optional[LastRun]:
        if self.last_run is None or self.last_outcome is None:
            return None
        return LastRun(_dt(self.last_run), self.last_outcome, self.failures)


@dataclass
class Planned:
    """A job chosen for this tick, why, and the unfinished run to resume if any."""

    job: Job
    reason: str
    resume: Optional[str] = None
    slot: Optional[float] = None  # the fire time this run stands for, under catch_up "skip" or "all"


def job_tz(job: Job, tz: tzinfo) -> tzinfo:
    """The zone a job's schedule is read in: its own `timezone=`, else the configured one."""
    if job.timezone:
        from ..scheduling.schedule import get_timezone

        return get_timezone(job.timezone)
    return tz


def job_jitter(job: Job) -> float:
    """Seconds by which this job's fire times move: fixed per job name (see `jobopts.jitter_offset`)."""
    return float(jitter_offset(job.name, job.jitter)) if job.jitter else 0.0


def _dt(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


#: Databases written before 0.2 say "success" where everything else says "completed".
LAST_OUTCOME = "CASE last_outcome WHEN 'success' THEN 'completed' ELSE last_outcome END"
_COLUMNS = (
    f"job_state.name, job_state.schedule, first_seen, last_run, last_finished, {LAST_OUTCOME}, "
    "last_error, failures, next_due, current"
)


def load_states(db: sqlite3.Connection) -> dict[str, JobState]:
    rows = db.execute(
        f"SELECT {_COLUMNS}, message.run_at FROM job_state "
        "LEFT JOIN message ON message.uuid = job_state.current AND message.status IN ('new', 'pending')"
    ).fetchall()
    states = {}
    for row in rows:
        state = JobState(*row)
        if state.current is not None and state.current_run_at is None:
            state.current = None  # its run ended without the state being told (cancelled by hand)
        states[state.name] = state
    return states


def sync_states(
    db: sqlite3.Connection, jobs: Iterable[Job], now: float, tz: tzinfo, backoff: float
) -> dict[str, JobState]:
    """Register new jobs and refresh cached due times whose schedule or time zone changed."""
    states = load_states(db)
    for job in jobs:
        key = job.key(str(tz))
        state = states.get(job.name)
        if state is None:
            state = JobState(job.name, key, now, None, None, None, None, 0, None, None)
            states[job.name] = state
        elif state.schedule == key and (state.next_due is not None or job.manual):  # None: dropped after skew
            continue
        state.schedule = key
        state.next_due = None if job.manual else next_due(
            job.spec, state.last(), job_tz(job, tz), _dt(state.first_seen), backoff, job_jitter(job))[0].timestamp()
        db.execute(
            "INSERT INTO job_state (name, schedule, first_seen, failures, next_due) VALUES (?, ?, ?, 0, ?) "
            "ON CONFLICT (name) DO UPDATE SET schedule = excluded.schedule, next_due = excluded.next_due",
            (job.name, key, state.first_seen, state.next_due),
        )
    return states


def plan(
    jobs: Iterable[Job],
    states: dict[str, JobState],
    now: float,
    tz: tzinfo,
    backoff: float,
) -> list[Planned]:
    """The due jobs in tick order: regular runs first, then retries and resumed unfinished runs.

    Regular runs go longest period first. Retries and continuations follow them, so a job that
    times out every time, or needs many ticks to finish, never keeps the other jobs from running.
    """
    regular: list[Planned] = []
    second: list[Planned] = []
    moment = _dt(now)
    for job in jobs:
        if job.manual:
            continue
        state = states.get(job.name)
        if state is not None and state.current is not None:
            if (state.current_run_at or 0) <= now:
                second.append(Planned(job, "resuming its unfinished run", state.current))
            continue
        last = state.last() if state else None
        first_seen = _dt(state.first_seen) if state else moment
        decision = decide(job.spec, last, moment, job_tz(job, tz), first_seen, backoff, job_jitter(job))
        if decision.due:
            retrying = last is not None and last.outcome in FAILED_OUTCOMES and decision.reason.startswith("retry")
            (second if retrying else regular).append(Planned(job, decision.reason))
    return regular + second


def apply_catch_up(
    db: sqlite3.Connection,
    jobs: Iterable[Job],
    states: dict[str, JobState],
    chosen: list[Planned],
    now: float,
    tz: tzinfo,
) -> list[Planned]:
    """`chosen` with the catch-up policies of jobs that have one applied (see `catchup`).

    Writes the ledger (slots skipped, dropped, about to run) and, for a job that does not run now,
    its cached due time, so idle ticks stay idle until its next slot.
    """
    from ..scheduling import ledger
    from ..scheduling.catchup import decide_catch_up

    planned = {p.job.name: p for p in chosen}
    moment = _dt(now)
    for job in jobs:
        state = states.get(job.name)
        if job.manual or job.catch_up == "latest" or state is None or state.current is not None:
            continue
        current = planned.get(job.name)
        if current is not None and current.reason.startswith("retry"):
            continue  # a retry of the slot that failed
        handled = ledger.last_handled(db, job.name)
        if handled is None:
            if state.last_run is None:
                if current is not None:  # its first run ever stands for the latest slot
                    current.slot = now
                continue
            handled = state.last_run
        zone = job_tz(job, tz)
        decision = decide_catch_up(job.catch_up, job.spec, _dt(handled), moment, zone, job.max_catch_up,
                                   job_jitter(job))
        ledger.record(db, job.name, [at.timestamp() for at in decision.skipped], ledger.SKIPPED, now)
        ledger.record(db, job.name, [at.timestamp() for at in decision.dropped], ledger.DROPPED, now)
        if decision.slot is None:
            planned.pop(job.name, None)
            due = decision.next_due or next_regular(job.spec, _dt(handled), zone, job_jitter(job))
            state.next_due = due.timestamp()
            db.execute("UPDATE job_state SET next_due = ? WHERE name = ?", (state.next_due, job.name))
            continue
        slot = decision.slot.timestamp()
        reason = f"catch-up ({job.catch_up}): the slot of {decision.slot.isoformat()}"
        if current is None:
            current = planned[job.name] = Planned(job, reason)
        else:
            current.reason = reason
        current.slot = slot
    order = {p.job.name: index for index, p in enumerate(chosen)}
    ranks = {job.name: index for index, job in enumerate(jobs)}
    return sorted(planned.values(), key=lambda p: (order.get(p.job.name, len(order)), ranks.get(p.job.name, 0)))


def after_slot(db: sqlite3.Connection, job: Job, slot: float, tz: tzinfo) -> None:
    """After a run of `slot`: due again at its next slot at the latest (at once when that passed too)."""
    from ..scheduling.catchup import after_run

    due = after_run(job.spec, _dt(slot), job_tz(job, tz), job_jitter(job)).timestamp()
    db.execute("UPDATE job_state SET next_due = ? WHERE name = ? AND (next_due IS NULL OR next_due > ?)",
               (due, job.name, due))


def record_outcome(
    db: sqlite3.Connection,
    job: Job,
    state: Optional[JobState],
    started_at: float,
    outcome: str,
    error: Optional[str],
    finished_at: float,
    tz: tzinfo,
    backoff: float,
) -> None:
    """Store a finished run's outcome and the job's next due time (read by idle ticks)."""
    previous = state.last() if state else None
    key = job.key(str(tz))
    tz = job_tz(job, tz)
    failures = 0
    if outcome != "completed":
        failures = count_failures(job.spec, previous, _dt(started_at), tz, job_jitter(job))
    last = LastRun(_dt(started_at), outcome, failures)
    first_seen = _dt(state.first_seen) if state else last.started_at
    due = None if job.manual else next_due(job.spec, last, tz, first_seen, backoff, job_jitter(job))[0].timestamp()
    db.execute(
        "UPDATE job_state SET last_run = ?, last_finished = ?, last_outcome = ?, last_error = ?, "
        "failures = ?, next_due = ?, current = NULL, schedule = ? WHERE name = ?",
        (started_at, finished_at, last.outcome, error, failures, due, key, job.name),
    )
    if state is not None:
        state.last_run, state.last_finished, state.last_outcome = started_at, finished_at, last.outcome
        state.last_error, state.failures, state.next_due, state.current = error, failures, due, None


def settle(
    runs: Runs,
    jobs: dict[str, Job],
    now: float,
    reason: str,
    tz: tzinfo,
    backoff: float,
    board: Optional[BoardState] = None,
    why: Optional[str] = None,
) -> list[tuple[Run, str]]:
    """Settle the runs a dead worker left pending (`Runs.recover`), and record the periodic runs
    that ended with it (`reason`: "timeout" or "crashed") in their jobs' state, in the same
    transaction as the run. `why` replaces the error text the reason implies (a stop signal)."""
    states = load_states(runs.db)
    error = why or ("stopped at the time limit" if reason == "timeout" else "the worker died")

    def record(run: Run, outcome: str) -> None:
        job = jobs.get(run.type)
        if run.kind == "job" and job is not None:
            record_outcome(runs.db, job, states.get(job.name), run.started_at, outcome,
                           None if outcome == "completed" else error, now, tz, backoff)

    return runs.recover(now, reason, board, also=record, why=why)
