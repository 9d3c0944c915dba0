"""`run-cron why NAME`: in plain words, why a periodic job or a message type did or did not run at
the last ticks, and when it will run next. Reads the store, the tick file and the lock; writes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from ..errors import StoreError, UnknownNameError
from ..registry import Job, Registry
from ..runtime.board import held_since
from ..runtime.idle import no_schema, open_fast, read_tick
from ..runtime.lock import SupervisorLock
from ..scheduling.schedule import EPOCH, UTC, next_due


@dataclass
class Answer:
    """The explanation for one job or message type: sentences, and the facts behind them."""

    kind: str  # "job" or "type"
    name: str
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "explanation": self.lines, **self.facts}


class _Ticks:
    """What the tick file and the lock say about the ticks."""

    def __init__(self, config: Any, now: float) -> None:
        meta = read_tick(config.database)
        self.started = _float(meta.get("tick.started"))
        self.finished = _float(meta.get("tick.finished"))
        self.trigger = meta.get("tick.trigger")
        self.outcome = meta.get("tick.outcome")
        self.running = SupervisorLock(config.lock_file).held_elsewhere()
        self.held_since = held_since(config.lock_file) if self.running else None
        self.stale = self.finished is None or now - self.finished > config.stale_after
        self.now = now

    def facts(self, tz: Any) -> dict[str, Any]:
        return {"last_tick_started": _at(self.started, tz), "last_tick_finished": _at(self.finished, tz),
                "last_tick_trigger": self.trigger, "last_tick_outcome": self.outcome, "tick_running": self.running,
                "lock_held_since": _at(self.held_since, tz)}

    def why_not_yet(self, due: float, cli_only: bool, tz: Any) -> list[str]:
        """Why something due since `due` has not run: no tick since, only HTTP ticks, budget spent."""
        lines = []
        if self.running and self.held_since is not None:
            lines.append(f"a tick has held the lock since {_clock(self.held_since, self.now, tz)} "
                         f"({_ago(self.now - self.held_since)}): it or the next one takes it")
        elif self.running:
            lines.append("a tick is running now (it holds the lock): it or the next one takes it")
        if self.finished is None:
            lines.append("no tick has ever finished here: is the crontab line installed? (run-cron install)")
        elif self.stale:
            lines.append(f"ticks are not running: the last one finished {_ago(self.now - self.finished)} ago, "
                         f"at {_at(self.finished, tz)}")
        elif self.started is not None and self.started < due:
            lines.append(f"no tick has started since it became due (last tick started {_at(self.started, tz)})")
        elif cli_only and self.trigger == "http":
            lines.append("it is cli_only and the last tick came from the HTTP trigger: the next CLI tick runs it")
        elif not self.running:
            lines.append(f"the last tick (started {_at(self.started, tz)}, {self.outcome}) did not reach it: its "
                         "time budget was spent on the work before it, or it was cut at its time limit")
        return lines


def _clock(timestamp: float, now: float, tz: Any) -> str:
    """HH:MM:SS in the configured zone, with the date when it is not today's."""
    at, today = (datetime.fromtimestamp(t, UTC).astimezone(tz) for t in (timestamp, now))
    return at.strftime("%H:%M:%S" if at.date() == today.date() else "%Y-%m-%d %H:%M:%S")


def _float(text: Optional[str]) -> Optional[float]:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _at(timestamp: Optional[float], tz: Any) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).astimezone(tz).isoformat(timespec="seconds")


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def explain(config: Any, registry: Registry, name: str, now: Optional[float] = None) -> list[Answer]:
    """The answers for `name` (a job, a message type, or both); UnknownNameError for neither."""
    if name not in registry.jobs and name not in registry.handlers:
        raise UnknownNameError(name)
    now = time.time() if now is None else now
    ticks = _Ticks(config, now)
    connection = open_fast(config.database, config.busy_timeout)
    try:
        answers = []
        if name in registry.jobs:
            answers.append(_job(connection, config, registry.jobs[name], ticks, now))
        if name in registry.handlers:
            answers.append(_type(connection, config, registry, name, ticks, now))
        return answers
    except sqlite3.Error as exc:
        raise StoreError(config.database, exc) from exc
    finally:
        if connection is not None:
            connection.close()


def _read(connection: Optional[sqlite3.Connection], sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if connection is None:
        return []
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if no_schema(exc):
            return []
        raise


def _job(connection: Optional[sqlite3.Connection], config: Any, job: Job, ticks: _Ticks, now: float) -> Answer:
    from ..control import pauses
    from ..runtime.scheduler import job_jitter, job_tz, load_states
    from ..scheduling import ledger

    tz = config.tz
    answer = Answer("job", job.name)
    say = answer.lines.append
    has_states = connection is not None and _read(connection, "SELECT 1 FROM job_state LIMIT 1")
    states = load_states(connection) if connection is not None and has_states else {}
    state = states.get(job.name)
    held = pauses.paused(connection).get((pauses.JOB, job.name)) if connection is not None else None
    answer.facts.update({"schedule": job.label, "timezone": job.timezone or str(tz), "catch_up": job.catch_up,
                         "cli_only": job.cli_only, "paused_since": _at(held, tz),
                         "last_run": _at(state.last_run if state else None, tz),
                         "last_outcome": state.last_outcome if state else None,
                         "last_error": state.last_error if state else None, **ticks.facts(tz)})
    if state is not None and state.last_run is not None:
        say(f"last run started {_at(state.last_run, tz)}: {state.last_outcome}"
            + (f" ({state.last_error})" if state.last_error else ""))
    else:
        say("it has never run")
    if job.manual:
        answer.facts["next_due"] = None
        say(f"it is a manual job: it runs only when named (run-cron run {job.name})")
        return answer
    if held is not None:
        say(f"it is paused since {_at(held, tz)}: it does not run until run-cron resume {job.name}")
    if state is not None and state.current is not None:
        due = max(state.current_run_at or now, now)
        reason = "its unfinished run continues from its last checkpoint"
    else:
        first_seen = datetime.fromtimestamp(state.first_seen if state else now, UTC)
        at, reason = next_due(job.spec, state.last() if state else None, job_tz(job, tz), first_seen,
                              config.retry_backoff, job_jitter(job))
        due = now if at == EPOCH else at.timestamp()
    answer.facts["next_due"] = _at(due, tz)
    answer.facts["next_due_reason"] = reason
    if state is not None and state.next_due is not None and job.catch_up != "latest":
        due = state.next_due  # the catch-up policy may have moved it past skipped slots
        answer.facts["next_due"] = _at(due, tz)
    if due > now:
        if reason.startswith("retry"):
            say(f"waiting for retry backoff: {reason}, at {_at(due, tz)}")
        else:
            say(f"not due yet: next at {_at(due, tz)} ({reason})")
    elif held is None:
        say(f"due since {_at(due, tz)} ({reason})")
        answer.lines += ticks.why_not_yet(due, job.cli_only, tz)
    if job.catch_up != "latest":
        missed = ledger.missed(connection, job.name, 5) if connection is not None else []
        say(f"catch-up policy {job.catch_up!r}"
            + (f" (max_catch_up {job.max_catch_up})" if job.catch_up == "all" else "")
            + ("; missed fire times given up lately: "
               + ", ".join(f"{_at(slot, tz)} ({action})" for _, slot, action, _ in missed) if missed else ""))
    if job.jitter:
        say(f"jitter: its fire times move by {job_jitter(job):.0f} s of up to {job.jitter} s")
    return answer


def _type(connection: Optional[sqlite3.Connection], config: Any, registry: Registry, name: str, ticks: _Ticks,
          now: float) -> Answer:
    from ..control import pauses
    from ..control.rates import budget, describe

    tz = config.tz
    handler = registry.handlers[name]
    answer = Answer("type", name)
    say = answer.lines.append
    counts = dict(_read(connection, "SELECT status, COUNT(*) FROM message WHERE kind = 'message' AND type = ? "
                                    "GROUP BY status", (name,)))
    runnable = _read(connection, "SELECT COUNT(*), MIN(created_at) FROM message WHERE kind = 'message' AND "
                                 "type = ? AND status = 'new' AND run_at <= ?", (name, now))
    delayed = _read(connection, "SELECT attempts > 0, COUNT(*), MIN(run_at) FROM message WHERE kind = 'message' "
                                "AND type = ? AND status = 'new' AND run_at > ? GROUP BY attempts > 0", (name, now))
    last = _read(connection, "SELECT attempt.started_at, attempt.outcome, attempt.error FROM attempt JOIN message "
                             "ON message.id = attempt.message_id WHERE message.type = ? AND message.kind = 'message' "
                             "ORDER BY attempt.started_at DESC LIMIT 1", (name,))
    held = pauses.paused(connection).get((pauses.TYPE, name)) if connection is not None else None
    ready, oldest = runnable[0] if runnable else (0, None)
    answer.facts.update({"queue": counts, "runnable": ready, "cli_only": handler.cli_only,
                         "rate": describe(handler.rate) if handler.rate else None, "paused_since": _at(held, tz),
                         **ticks.facts(tz)})
    if last:
        started, outcome, error = last[0]
        say(f"last attempt started {_at(started, tz)}: {outcome or 'running'}" + (f" ({error})" if error else ""))
    else:
        say("no message of this type has run yet")
    say("queue: " + (", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "empty"))
    for retrying, count, at in delayed:
        if retrying:
            say(f"{count} waiting for retry backoff, the first until {_at(at, tz)}")
        else:
            say(f"{count} delayed, the first until {_at(at, tz)}")
    if held is not None:
        say(f"the type is paused since {_at(held, tz)}: its messages wait until run-cron resume {name}")
    if not ready:
        say("nothing of this type is runnable now")
        return answer
    say(f"{ready} runnable now, waiting since {_at(oldest, tz)}")
    if held is not None:
        return answer
    if handler.rate and connection is not None:
        left, until = budget(connection, name, handler.rate, now)
        if until is not None:
            say(f"rate limit {describe(handler.rate)} reached: the next may start at {_at(until, tz)}")
            answer.facts["rate_limited_until"] = _at(until, tz)
            return answer
    answer.lines += ticks.why_not_yet(oldest or now, handler.cli_only, tz)
    return answer


def render(answers: list[Answer]) -> str:
    lines = []
    for answer in answers:
        lines.append(f"{'periodic job' if answer.kind == 'job' else 'message type'} {answer.name}:")
        lines += [f"  {line}" for line in answer.lines]
    return "\n".join(lines)



