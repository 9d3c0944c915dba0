"""The worker: one tick's work, inside the child process the supervisor may kill at any moment.

It settles runs a dead tick left behind, runs the due periodic jobs in order, then drains the queue
until it is empty or the soft deadline arrives. Checkpoints and every outcome but a fast success are
committed at once; fast successes are committed in small groups (see `runs`), and the supervisor,
which hears of each start and end, settles a group that a kill cut short.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import traceback
from typing import Any, Callable, Optional

from ..control.pauses import JOB, TYPE, paused_names
from ..control.rates import budget, describe
from ..errors import Cancelled, PermanentError, ResumeLater, Retry
from ..registry import Job, Registry
from ..scheduling.skew import correct_skew
from .board import BoardState
from .context import Context
from .runs import CONTINUED, Run, Runs
from .scheduler import JobState, Planned, after_slot, apply_catch_up, plan, record_outcome, settle, sync_states

log = logging.getLogger(__name__)

Emit = Callable[..., None]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


#: A handler faster than this lets the claim batch grow; a slower one shrinks it to one message.
FAST_HANDLER = 0.02
#: At most this many messages per claim, and completions wait at most this long for their commit.
MAX_BATCH = 64
BATCH_WINDOW = 0.1


def execute(
    runs: Runs,
    run: Run,
    call: Callable[[Context], Any],
    ctx: Context,
    clock: Callable[[], float] = time.time,
    defer: bool = False,
    record: Optional[Callable[[str, Optional[str], float], None]] = None,
) -> tuple[str, Optional[str]]:
    """Run one job or message handler and commit its outcome: the one path both take.

    Returns (outcome, error): completed, failed, retry, continued or cancelled, and the error line if
    any. "continued": the handler stopped at the soft deadline (`ResumeLater` from a checkpoint, or
    `return ctx.resume_later()`) and continues next tick. With `defer`, a success is committed with
    the next claim (group commit) instead of at once. `record(outcome, error, now)` writes a periodic
    job's state in the same transaction as its run's outcome (not after Retry or a continuation).
    """

    def also(error: Optional[str], now: float) -> Optional[Callable[[str], None]]:
        return None if record is None else lambda outcome: record(outcome, error, now)

    try:
        call(ctx)
    except ResumeLater:
        return runs.suspend(run, clock()), None
    except Retry as exc:
        runs.reschedule(run, clock(), exc.delay, str(exc))
        return "retry", None
    except Cancelled:
        now = clock()
        return runs.close_cancelled(run, now, also(None, now)), None
    except PermanentError as exc:
        error, now = _one_line(exc), clock()
        runs.fail(run, now, error, traceback.format_exc(), permanent=True, also=also(error, now))
        return "failed", error
    except (Exception, SystemExit) as exc:  # a job's bug must never stop the jobs after it
        error, now = _one_line(exc), clock()
        log.error("%s %s failed: %s", run.type, run.uuid, error, exc_info=True)
        runs.fail(run, now, error, traceback.format_exc(), also=also(error, now))
        return "failed", error
    if ctx.resume_requested:  # also when the handler caught ResumeLater and returned
        return runs.suspend(run, clock()), None
    if defer:
        runs.defer_complete(run, clock())
        return "completed", None
    now = clock()
    return runs.complete(run, now, also(None, now)), None


def _call_handler(func: Callable[..., Any], payload: Any, ctx: Context) -> Any:
    return func(ctx, payload)


class Worker:
    """Does the work of one tick. `deadline` is the soft deadline on the time.monotonic() clock."""

    def __init__(
        self,
        runs: Runs,
        registry: Registry,
        tz: Any,
        *,
        retry_backoff: float = 60.0,
        deadline: Optional[float] = None,
        trigger: str = "cli",
        force: Optional[list[Job]] = None,
        emit: Emit = lambda event, **fields: None,
        clock: Callable[[], float] = time.time,
        stop_requested: Callable[[], bool] = lambda: False,
        abandoned: Optional[BoardState] = None,
        periodic: bool = True,
    ) -> None:
        self.runs = runs
        self.registry = registry
        self.tz = tz
        self.backoff = retry_backoff
        self.deadline = deadline
        self.trigger = trigger
        self.force = force
        self.emit = emit
        self.clock = clock
        self.stop_requested = stop_requested
        self.abandoned = abandoned  # the board a tick that died wholesale left, if trusted
        self.periodic = periodic  # False: another host runs the periodic jobs in this tick (server engines)
        self.resumed: list[int] = []  # messages that asked to continue on the next tick

    def out_of_time(self) -> bool:
        return self.stop_requested() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def run(self) -> None:
        correct_skew(self.runs.db, self.clock())
        self.settle_abandoned()
        if self.periodic or self.force is not None:
            self.run_periodic()
        if self.force is None:
            self.drain_queue()
            while not self.out_of_time() and self.advance_flows():  # callbacks and next steps, this tick
                self.drain_queue()

    def settle_abandoned(self) -> None:
        """Runs left pending by a tick that died: the lock we hold proves nothing runs them now."""
        for run, outcome in settle(self.runs, self.registry.jobs, self.clock(), "crashed", self.tz, self.backoff,
                                   self.abandoned):
            self.emit("recovered", kind=run.kind, name=run.type, uuid=run.uuid, outcome=outcome)

    def run_message(self, run: Run, handlers: dict[str, Any]) -> float:
        """Run one claimed message; returns how long it took."""
        began = time.monotonic()
        self.runs.board.set_current(run.id)  # before "start": a reported start is a run in flight
        self.emit("start", kind="message", name=run.type, uuid=run.uuid, attempt=run.attempt)
        handler = handlers.get(run.type)
        error: Optional[str]
        if handler is None:
            error = f"UnknownMessageType: no handler for message type {run.type!r}"
            self.runs.fail(run, self.clock(), error, None, permanent=True)
            outcome = "failed"
        else:
            ctx = Context(self.runs, run, self.deadline, self.emit, self.stop_requested)
            call = functools.partial(_call_handler, handler.func, run.payload)
            outcome, error = execute(self.runs, run, call, ctx, self.clock, defer=True)
            if outcome == CONTINUED:
                self.resumed.append(run.id)  # "resume later" means on the next tick, not in this one
        self.runs.board.set_current(0)
        elapsed = time.monotonic() - began
        self.emit("end", kind="message", name=run.type, uuid=run.uuid, outcome=outcome, error=error,
                  duration=round(elapsed, 3))
        return elapsed

    def run_periodic(self) -> None:
        now = self.clock()
        ordered = self.registry.ordered_jobs()
        states = sync_states(self.runs.db, ordered, now, self.tz, self.backoff)
        if self.force is not None:
            chosen = [
                Planned(job, "forced", states[job.name].current if job.name in states else None)
                for job in self.force
            ]
        else:
            chosen = plan(ordered, states, now, self.tz, self.backoff)
            if any(job.catch_up != "latest" for job in ordered):
                chosen = apply_catch_up(self.runs.db, ordered, states, chosen, now, self.tz)
            held = paused_names(self.runs.db, JOB)
            for planned in [p for p in chosen if p.job.name in held]:
                self.emit("skipped", kind="job", name=planned.job.name, reason="paused (run-cron resume NAME)")
            chosen = [p for p in chosen if p.job.name not in held]
        for index, planned in enumerate(chosen):
            job = planned.job
            if self.trigger == "http" and job.cli_only:
                self.emit("skipped", kind="job", name=job.name, reason="cli_only: runs only from the CLI")
                continue
            if self.out_of_time():
                for later in chosen[index:]:
                    self.emit("skipped", kind="job", name=later.job.name, reason="time limit reached")
                return
            self.run_job(planned, states.get(job.name))

    def run_job(self, planned: Planned, state: Optional[JobState]) -> None:
        job = planned.job
        if planned.slot is not None:  # the slot counts as run from its start: a kill does not run it twice
            from ..scheduling import ledger

            ledger.record(self.runs.db, job.name, [planned.slot], ledger.RAN, self.clock())
        run = self.runs.start_job_run(job.name, self.clock(), resume=planned.resume)
        self.runs.board.set_current(run.id)
        self.emit("start", kind="job", name=job.name, uuid=run.uuid, attempt=run.attempt, reason=planned.reason)
        began = time.monotonic()
        deadline = self.deadline
        if job.time_limit:  # its own soft deadline; the supervisor kills it at began + time_limit
            from ..constants import soft_margin

            own = began + job.time_limit - soft_margin(job.time_limit)
            deadline = own if deadline is None else min(deadline, own)
        ctx = Context(self.runs, run, deadline, self.emit, self.stop_requested)

        def record(outcome: str, error: Optional[str], now: float) -> None:
            record_outcome(self.runs.db, job, state, run.started_at, outcome, error, now, self.tz, self.backoff)
            if planned.slot is not None:
                after_slot(self.runs.db, job, planned.slot, self.tz)

        # After Retry or a continuation the run stays the job's current one, resumed when due.
        outcome, error = execute(self.runs, run, job.func, ctx, self.clock, record=record)
        self.runs.board.set_current(0)
        self.emit(
            "end", kind="job", name=job.name, uuid=run.uuid, outcome=outcome, error=error,
            duration=round(time.monotonic() - began, 3),
        )

    def drain_queue(self) -> None:
        """Claim and run messages until none is runnable or time is up.

        Claims grow from one message to MAX_BATCH while handlers stay fast, and fall back to one
        as soon as a handler is slow; the unstarted rest of a batch goes back to the queue then.
        """
        handlers = self.registry.handlers
        self.advance_flows()
        excluded = [t for t, h in handlers.items() if h.cli_only] if self.trigger == "http" else []
        held = sorted(paused_names(self.runs.db, TYPE))
        rates = {t: h.rate for t, h in handlers.items() if h.rate and t not in held and t not in excluded}
        limited: dict[str, float] = {}
        size = 1
        while not self.out_of_time():
            left = {}
            # The budgets and the claim that spends them, one worker at a time across hosts.
            with self.runs.rate_window() if rates else contextlib.nullcontext():
                if rates:
                    now = self.clock()
                    for type_, rate in rates.items():
                        left[type_], until = budget(self.runs.db, type_, rate, now)
                        if until is not None:
                            limited[type_] = until
                        else:
                            limited.pop(type_, None)
                batch = self.runs.claim_messages(self.clock(), size, excluded + held + sorted(limited),
                                                 self.resumed)
            if not batch:
                break
            self.emit("claimed", count=len(batch))  # also pushes the last batch's events to the supervisor
            opened = time.monotonic()
            all_fast = True
            for index, run in enumerate(batch):
                if index and (self.out_of_time() or time.monotonic() - opened > BATCH_WINDOW):
                    self.runs.release(batch[index:])
                    all_fast = False
                    break
                if run.type in left:
                    if left[run.type] <= 0:  # its type reached its rate limit within this batch
                        self.runs.release(batch[index:])
                        all_fast = False
                        break
                    left[run.type] -= 1
                if self.run_message(run, handlers) > FAST_HANDLER:
                    self.runs.flush()  # a slow handler's success is committed at once
                    self.runs.release(batch[index + 1:])
                    all_fast = False
                    break
            size = min(size * 2, MAX_BATCH) if all_fast else 1
        self.runs.flush()
        if held:
            self._report_left(held, "paused: left queued until run-cron resume")
        for type_, rate in sorted(rates.items()):
            _, until = budget(self.runs.db, type_, rate, self.clock())
            if until is not None:
                self._report_left([type_], f"rate limit {describe(rate)} reached: left queued, "
                                           f"the next may start in {max(until - self.clock(), 0):.0f} s")
        if excluded:
            self._report_left(excluded, "cli_only: left queued for the next CLI tick")

    def advance_flows(self) -> int:
        """Queue the callbacks of finished batches and the next steps of chains (see `flows`)."""
        from ..messages import family
        from ..messages.flows import advance

        self.runs.flush()  # a parent's completion must be committed before its children are counted
        for uuid, outcome in family.advance(self.runs.db, self.clock()):
            self.emit("parent", uuid=uuid, outcome=outcome)
            log.info("parent %s: %s, its children have finished", uuid, outcome)
        moved = advance(self.runs.db, self.clock())
        for uuid, what in moved:
            self.emit("flow", uuid=uuid, what=what)
            log.info("flow %s: %s", uuid, what)
        return sum(1 for _, what in moved if "queued" in what)

    def _report_left(self, types: list[str], reason: str) -> None:
        """A `skipped` event for runnable messages of `types` the drain did not take."""
        if types:
            row = self.runs.db.execute(
                f"SELECT COUNT(*) FROM message WHERE kind = 'message' AND status = 'new' AND run_at <= ? "
                f"AND type IN ({', '.join('?' * len(types))})",
                (self.clock(), *types),
            ).fetchone()
            if row[0]:
                self.emit("skipped", kind="message", name=", ".join(types), count=row[0], reason=reason)
