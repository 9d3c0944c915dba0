"""SIGTERM, SIGINT and SIGHUP end a running tick cleanly instead of killing the supervisor outright.

Hosts send these (a shutdown, a process reaper, a closed terminal, Ctrl-C). Killed by one, the
supervisor would leave its worker to PR_SET_PDEATHSIG and its runs to the next tick, with no word
said. While `handling()` is active the signal is only recorded and wakes the supervisor (a byte on a
pipe its select() watches). It asks the worker to stop at its next checkpoint, as at the soft
deadline, and gives it GRACE seconds (none after a second signal); then it kills the worker's process
group and settles what the worker left as after the hard limit. The tick returns a TickResult whose
`interrupted` names the signal; the caller (the CLI, `serve`, the CGI script, the worker mode) says so
in one line and exits 128 + the signal number.

The state is per process, in this module: ticks run in request threads under `serve`, but signal
handlers can only be installed from the main thread.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Seconds a worker gets to reach its next checkpoint after a stop signal. Hosts that send SIGTERM
#: send SIGKILL a few seconds later (Apache to CGI scripts after 3 s); a person pressing Ctrl-C
#: should not wait long either.
GRACE = 2.0

_received: list[int] = []  # the first stop signal, then one more if another came (or was urged)
_winding: list[bool] = []  # [True] once asked to finish the current runs and start no more
_wake: list[int] = []  # [read end, write end] of the wake-up pipe while handling() is active
_ticks = threading.Condition()
_running = [0]


def received() -> Optional[int]:
    """The first stop signal received since `handling()` began, or None."""
    return _received[0] if _received else None


def wake_fd() -> Optional[int]:
    """A descriptor that becomes readable once a stop signal is received (None outside `handling()`)."""
    return _wake[0] if _wake else None


def winding_down() -> bool:
    """True once `wind_down()` was called, or a stop signal came."""
    return bool(_winding or _received)


def wind_down() -> None:
    """Ask the running tick's worker to stop at its next checkpoint and start nothing new, without
    killing it or calling the tick interrupted (the worker mode's first signal)."""
    if not _winding:
        _winding.append(True)
    _wake_up()


def _wake_up() -> None:
    if _wake:
        try:
            os.write(_wake[1], b"\0")
        except OSError:  # full or closed: a byte is already waiting, or nobody listens any more
            pass


def urgent() -> bool:
    """True once a second stop signal came (or `request(..., at_once=True)`): no more grace."""
    return len(_received) > 1


def request(signum: int, at_once: bool = False) -> None:
    """Ask the running ticks to stop, as if `signum` had arrived (safe in a signal handler)."""
    for _ in range(2 if at_once else 1):
        if len(_received) < 2:
            _received.append(signum)
    _wake_up()


def name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """The shell's convention for "ended by signal N", kept although the process exits by itself."""
    return 128 + signum


@contextmanager
def handling(signals: tuple[int, ...] = STOP_SIGNALS,
             on_signal: Optional[Callable[[int], None]] = None) -> Iterator[None]:
    """Within: `signals` call `on_signal` (default: `request`) instead of killing the process.

    A signal the process ignores (SIGHUP under nohup) stays ignored. Outside the main thread, where
    Python cannot install handlers, and inside an outer `handling()` (the worker mode's, `serve`'s),
    nothing changes.
    """
    if _wake or threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    for fd in (read_end, write_end):
        os.set_blocking(fd, False)
    _wake[:] = [read_end, write_end]
    _received.clear()
    _winding.clear()
    act = on_signal or request

    def handle(signum: int, frame: Any) -> None:
        act(signum)

    previous = {}
    for signum in signals:
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _wake.clear()
        for fd in (read_end, write_end):
            os.close(fd)


def consume_wake() -> None:
    """Empty the wake-up pipe, so that select() waits again until the next signal."""
    if _wake:
        try:
            while os.read(_wake[0], 64):
                pass
        except OSError:  # empty (EAGAIN)
            pass


def forget_in_child() -> None:
    """In a forked worker: the stop signals are the supervisor's business; drop the pipe and state."""
    for fd in _wake:
        try:
            os.close(fd)
        except OSError:
            pass
    _wake.clear()
    _received.clear()
    _winding.clear()


@contextmanager
def tick_running() -> Iterator[None]:
    """Marks a supervised tick as running, for `wait_for_ticks`."""
    with _ticks:
        _running[0] += 1
    try:
        yield
    finally:
        with _ticks:
            _running[0] -= 1
            _ticks.notify_all()


def wait_for_ticks(timeout: float) -> bool:
    """Wait until no tick of this process is running (they settle and return once interrupted)."""
    with _ticks:
        return _ticks.wait_for(lambda: _running[0] == 0, timeout)
