"""`ctx`: what a periodic job or a message handler gets to checkpoint, report progress and stop in time."""

from __future__ import annotations

import io
import json
import logging
import math
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

from ..errors import ResumeLater, StoreFailed
from ..messages.insert import to_json
from .runs import Run, Runs

#: Progress-only updates are written at most this often; checkpoints are always written.
PROGRESS_WRITE_INTERVAL = 0.25
ATTACHMENT_CHUNK = 1 << 20


def compute_progress(done: float, total: Optional[float] = None) -> float:
    """Percent complete, below 100 until the run completes.

    With a known total, done/total. With an unknown total, a curve that always rises and never reaches
    100 (Contao's `min(95, 20 * log10(1 + done))`), so a bar moves even when the end is unknown.
    """
    done = max(float(done), 0.0)
    if total:
        return max(0.0, min(99.9, 100.0 * done / float(total)))
    return min(95.0, 20.0 * math.log10(1.0 + done))


@dataclass(frozen=True)
class JobInfo:
    """Who is running: `ctx.job.uuid`, `.type` (message type or job name), `.attempt`, `.kind`, and
    `.max_attempts` (an exception in attempt `max_attempts` fails the message for good)."""

    uuid: str
    type: str
    attempt: int
    kind: str
    max_attempts: int = 1


def _chunks(data: Union[bytes, bytearray, str, io.IOBase, Any]) -> Iterator[bytes]:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for start in range(0, len(view), ATTACHMENT_CHUNK):
            yield bytes(view[start : start + ATTACHMENT_CHUNK])
        return
    read = getattr(data, "read", None)
    if read is None:
        raise TypeError(f"attachment data must be bytes, str or a file object, not {type(data).__name__}")
    while True:
        chunk = read(ATTACHMENT_CHUNK)
        if not chunk:
            return
        yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


@contextmanager
def _store_write() -> Iterator[None]:
    """The store failing under a handler is not the handler failing: see StoreFailed. A constraint or
    programming error stays what it is (it may well be the caller's doing)."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise
    except sqlite3.DatabaseError as exc:  # OperationalError (full, I/O error, locked, read-only), corrupt
        raise StoreFailed(exc) from exc


class _ResumeLaterMarker:
    """What `ctx.resume_later()` returns, so `return ctx.resume_later()` reads as what it does."""

    def __repr__(self) -> str:
        return "RESUME_LATER"


RESUME_LATER = _ResumeLaterMarker()


class Context:
    """The one `ctx` passed to periodic jobs and message handlers alike."""

    def __init__(
        self,
        runs: Runs,
        run: Run,
        deadline: Optional[float] = None,
        emit: Optional[Callable[..., None]] = None,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self._runs = runs
        self._run = run
        self._deadline = deadline  # time.monotonic() value of the soft deadline, None for no limit
        self._emit = emit
        self._stop_requested = stop_requested
        self._offset = None if run.offset_json is None else json.loads(run.offset_json)
        self._state = {} if run.state_json is None else json.loads(run.state_json)
        self._last_progress_write = 0.0
        self.resume_requested = False  # read by the worker: the run continues next tick
        self.job = JobInfo(uuid=run.uuid, type=run.type, attempt=run.attempt, kind=run.kind,
                           max_attempts=run.max_attempts)

    @property
    def log(self) -> logging.Logger:
        """A logger named after the job or message type."""
        return logging.getLogger(f"cronjobs.run.{self._run.type}")

    @property
    def offset(self) -> Any:
        """The offset of the last checkpoint; None on a first run."""
        return self._offset

    @property
    def state(self) -> dict[str, Any]:
        """The state dict of the last checkpoint; {} on a first run."""
        return self._state

    def checkpoint(
        self,
        offset: Any = None,
        state: Optional[dict[str, Any]] = None,
        done: Optional[float] = None,
        total: Optional[float] = None,
    ) -> None:
        """Durably commit offset, state and progress together; None leaves a value as it was.

        Once the soft deadline has passed (or a stop was asked for), it raises `cronjobs.ResumeLater`
        after committing: the handler stops here and the run continues from this checkpoint on the
        next tick, without using an attempt. Raises `cronjobs.Cancelled` if the message was cancelled
        meanwhile.
        """
        offset_json = to_json(offset, "offset")
        state_json = to_json(state, "state")
        progress = compute_progress(done, total) if done is not None else None
        with _store_write():
            self._runs.checkpoint(self._run, offset_json, state_json, done, total, progress)
        if offset is not None:
            self._offset = offset
        if state is not None:
            self._state = state
        if progress is not None:
            self._report(done, total, progress)
        if self.should_stop():
            self.resume_requested = True
            raise ResumeLater()

    def progress(self, done: float, total: Optional[float] = None) -> None:
        """Report progress without a checkpoint (written at most every 0.25 s)."""
        value = compute_progress(done, total)
        now = time.monotonic()
        if now - self._last_progress_write >= PROGRESS_WRITE_INTERVAL:
            with _store_write():
                self._runs.set_progress(self._run, done, total, value)
            self._report(done, total, value)

    def _report(self, done: Optional[float], total: Optional[float], value: float) -> None:
        self._last_progress_write = time.monotonic()
        if self._emit is not None:
            self._emit("progress", uuid=self._run.uuid, progress=round(value, 1), done=done, total=total)

    def warn(self, text: str) -> None:
        """Record a warning shown with the run; the run still succeeds."""
        with _store_write():
            self._runs.warn(self._run, str(text), time.time())
        self.log.warning("%s %s: %s", self._run.type, self._run.uuid, text)

    def attach(self, name: str, data: Union[bytes, str, Any]) -> int:
        """Store bytes, text or a file object under `name` (streamed in chunks); returns its size."""
        with _store_write():
            return self._runs.attach(self._run, str(name), _chunks(data), time.time())

    def time_left(self) -> float:
        """Seconds until the soft deadline (math.inf without a time limit)."""
        if self._deadline is None:
            return math.inf
        return self._deadline - time.monotonic()

    def should_stop(self) -> bool:
        """True once the soft deadline passed or a stop was asked for.

        Follow it with `return ctx.resume_later()` (or a `ctx.checkpoint(...)`, which then stops the
        handler): a plain `return` means the run is done and records it completed.
        """
        return self._stop_requested() or self.time_left() <= 0

    def resume_later(self) -> _ResumeLaterMarker:
        """Ask for this run to continue on the next tick from its last checkpoint: `return ctx.resume_later()`.

        The run is not completed, uses no attempt and records no error.
        """
        self.resume_requested = True
        return RESUME_LATER

    def enqueue(self, type: str, payload: Any = None, **options: Any) -> str:
        """Queue a follow-up message (for example the next chunk); same options as Queue.enqueue."""
        with _store_write():
            return self._runs.enqueue(type=type, payload=payload, **options)

    def enqueue_child(self, type: str, payload: Any = None, *, on_child_failure: str = "fail", **options: Any) -> str:
        """Queue a child of this run: it completes only once its children have, and fails when one
        fails for good (unless `on_child_failure="ignore"`); same options as Queue.enqueue."""
        with _store_write():
            return self._runs.enqueue(type=type, payload=payload, parent=self._run.uuid,
                                      on_child_failure=on_child_failure, **options)
