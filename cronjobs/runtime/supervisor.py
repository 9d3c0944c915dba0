"""Run a function in a forked worker process under a hard deadline, and hear what it reports.

The supervisor owns the clock: at the deadline it SIGKILLs the worker's whole process group, which no
Python code, signal handler or blocking C call can ignore. The worker asks the kernel to SIGKILL it
when the supervisor dies (PR_SET_PDEATHSIG), so a host that kill -9s the supervisor leaves no orphan
running without a deadline. Events travel over a pipe as JSON lines, one per line; so do the worker's
log records, which the supervisor then logs itself, so job output and events stay in order.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import interrupt

Emit = Callable[..., None]
WORKER_ERROR_EXIT = 70
BLOCK = 256  # message events sent as one line at most


@dataclass
class Supervised:
    """How a supervised worker ended."""

    timed_out: bool
    exit_status: Optional[int]  # the worker's exit code; None when killed by a signal
    signal: Optional[int] = None
    error: Optional[str] = None  # set when the worker raised out of its work function
    finished: bool = False  # the worker said "done": its work function returned
    interrupted: Optional[int] = None  # the stop signal the supervisor received (see interrupt.py)
    lost: Optional[str] = None  # why `watch` had the worker killed

    @property
    def clean(self) -> bool:
        # Exit 0 alone is not enough: a job calling os._exit(0) ends the worker mid-run with code 0.
        return not self.timed_out and self.exit_status == 0 and self.finished


def _die_with_parent(parent: int) -> None:
    """Make the kernel kill this process when `parent` dies; a thread is the fallback off Linux."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(WORKER_ERROR_EXIT)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(WORKER_ERROR_EXIT)

    threading.Thread(target=watch, name="cronjobs-parent-watch", daemon=True).start()


class _PipeLogHandler(logging.Handler):
    """In the worker: sends each `cronjobs` log record to the supervisor as a `log` event.

    With `foreign`, on the root logger: records of the job code's own loggers (`getLogger(__name__)`),
    renamed `cronjobs.run.NAME`, so they are shown, filed and kept quiet as `ctx.log` lines are, in
    order with the tick's events; `cronjobs` records are the other handler's.
    """

    def __init__(self, emit: Emit, foreign: bool = False) -> None:
        super().__init__()
        self._emit = emit
        self._foreign = foreign

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if self._foreign:
            if name == "cronjobs" or name.startswith("cronjobs."):
                return
            name = "cronjobs.run." + name
        try:
            exc_text = logging.Formatter().formatException(record.exc_info) if record.exc_info else None
            self._emit("log", name=name, level=record.levelno, message=record.getMessage(),
                       exc_text=exc_text, process=record.process)
        except Exception:
            self.handleError(record)


def _log_in_supervisor(event: dict[str, Any]) -> None:
    level = int(event.get("level") or logging.INFO)
    record = logging.makeLogRecord({
        "name": str(event.get("name") or "cronjobs"), "levelno": level, "levelname": logging.getLevelName(level),
        "msg": str(event.get("message", "")), "exc_text": event.get("exc_text"), "process": event.get("process"),
    })
    logging.getLogger(record.name).handle(record)


def _child(work: Callable[[Emit], None], write_fd: int, parent: int, close_fds: tuple[int, ...]) -> None:
    """Body of the forked worker; never returns."""
    code = 0
    try:
        os.setpgid(0, 0)  # its own process group, so a kill reaches what a job spawned too
        _die_with_parent(parent)
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for signum in interrupt.STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        interrupt.forget_in_child()
        pipe = os.fdopen(write_fd, "w", buffering=1 << 16, encoding="utf-8")
        encode = json.JSONEncoder(default=str, separators=(",", ":")).encode  # built once: hot path
        held: list[dict[str, Any]] = []

        def emit(event: str, **fields: Any) -> None:
            fields["event"] = event
            # A message's start and end are only for the summary and logs, so they travel in blocks:
            # one JSON line per block costs both sides a fraction of a line per event. What recovery
            # needs after a kill is on the shared Board, not in this pipe.
            if event in ("start", "end") and fields.get("kind") == "message":
                held.append(fields)
                if len(held) < BLOCK:
                    return
                fields = {"event": "block", "events": held[:]}
            elif held:
                pipe.write(encode({"event": "block", "events": held}) + "\n")
            held.clear()
            pipe.write(encode(fields) + "\n")
            pipe.flush()

        logging.getLogger("cronjobs").handlers[:] = [_PipeLogHandler(emit)]
        root = logging.getLogger()
        if not root.handlers:  # logging the jobs modules did not configure themselves
            root.addHandler(_PipeLogHandler(emit, foreign=True))
            root.setLevel(logging.getLogger("cronjobs").getEffectiveLevel())

        try:
            work(emit)
            emit("done")
        except BaseException as exc:  # reported to the supervisor, which turns it into a clean error
            emit("error", error=str(exc) or type(exc).__name__, type=type(exc).__name__)
            code = WORKER_ERROR_EXIT
        pipe.flush()
    except BaseException:
        code = WORKER_ERROR_EXIT
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def supervise(
    work: Callable[[Emit], None],
    deadline: Union[float, None, Callable[[], Optional[float]]],
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    close_in_child: tuple[int, ...] = (),
    ask_to_stop: Callable[[], None] = lambda: None,
    watch: Callable[[], Optional[str]] = lambda: None,
) -> Supervised:
    """Fork a worker that calls `work(emit)`; kill it at `deadline` (time.monotonic()), None for never.

    On a stop signal (interrupt.py) it calls `ask_to_stop()`, then waits interrupt.GRACE seconds for
    the worker to end by itself before it kills it (at once after a second signal).
    `deadline` may be a function, asked again after each event: a job's own time limit moves it.
    `watch()` is called first right after the fork, then after each event and at least every half
    second: a reason it returns kills the worker at once (`Supervised.lost`).
    """
    current_deadline = deadline if callable(deadline) else lambda: deadline  # type: ignore[return-value]
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(work, write_fd, parent, close_in_child)
    os.close(write_fd)
    try:
        os.setpgid(pid, pid)  # also here: whichever of the two runs first wins the race
    except OSError:
        pass
    result = Supervised(timed_out=False, exit_status=None)
    buffer = b""
    reader = os.fdopen(read_fd, "rb", buffering=0)
    wake = interrupt.wake_fd()
    watched: list[Any] = [reader] if wake is None else [reader, wake]
    stop_by: Optional[float] = None  # after a stop signal: the end of the worker's grace
    asked = False
    try:
        open_pipe = True
        while True:
            lost = watch()
            if lost is not None:
                result.lost = lost
                break
            if not asked and interrupt.winding_down():
                interrupt.consume_wake()
                ask_to_stop()
                asked = True
            if stop_by is None and interrupt.received() is not None:
                result.interrupted = interrupt.received()
                interrupt.consume_wake()
                stop_by = time.monotonic() + interrupt.GRACE
            if stop_by is not None and (interrupt.urgent() or time.monotonic() >= stop_by):
                break
            at = current_deadline()
            remaining = None if at is None else at - time.monotonic()
            if stop_by is not None and (remaining is None or stop_by - time.monotonic() < remaining):
                remaining = max(stop_by - time.monotonic(), 0.0)
            elif remaining is not None and remaining <= 0:
                result.timed_out = True
                break
            if open_pipe:
                wait = 0.5 if remaining is None else min(remaining, 0.5)
                ready, _, _ = select.select(watched, [], [], wait)
                if reader not in ready:
                    # A process the job forked may hold the pipe open after the worker exited.
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        _set_status(result, status)
                        return result
                    continue
                chunk = reader.read(65536)
                if not chunk:
                    open_pipe = False
                    continue
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    _dispatch(line, result, on_event)
            else:
                # The pipe closed (the worker is exiting, or a job closed it): wait for the exit.
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    _set_status(result, status)
                    return result
                time.sleep(0.01)
    finally:
        if result.exit_status is None and result.signal is None:
            _kill_group(pid)
            _, status = os.waitpid(pid, 0)
            _set_status(result, status)
            # What the worker wrote before it died is still in the pipe: it tells which run was in
            # flight, so recovery charges that one and not the runs it had not started yet.
            buffer += _drain(reader)
            for line in buffer.split(b"\n"):
                if line:
                    _dispatch(line, result, on_event)
        reader.close()
    return result


def _drain(reader: Any) -> bytes:
    """Whatever is left in the pipe, without waiting for writers that may still hold it open."""
    data = b""
    while select.select([reader], [], [], 0)[0]:
        chunk = reader.read(65536)
        if not chunk:
            break
        data += chunk
    return data


def _dispatch(line: bytes, result: Supervised, on_event: Callable[[dict[str, Any]], None]) -> None:
    try:
        event = json.loads(line)
    except ValueError:
        return
    kind = event.get("event")
    if kind == "block":
        for held in event["events"]:
            on_event(held)
        return
    if kind == "log":
        _log_in_supervisor(event)
        return
    if kind == "error":
        result.error = event.get("error")
    elif kind == "done":
        result.finished = True
    on_event(event)


def _set_status(result: Supervised, status: int) -> None:
    if os.WIFSIGNALED(status):
        result.signal = os.WTERMSIG(status)
    else:
        result.exit_status = os.WEXITSTATUS(status)


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
