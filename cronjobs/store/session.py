"""Keeping a lock-holding database session alive, and stopping its worker before the server lets go of it.

A worker's messages belong to it while the server keeps its session (see server.py); the server ends a
session that has been silent for T seconds (`[run-cron] session_timeout`, default 30), which frees its
runner lock and lets the next tick of any host take its messages over. Two promises follow:

- A live worker is never silent that long, however long its handler runs without touching the
  database: a thread of its own pings the session after T/6 s without a round trip (the idle timeouts
  of shared hosts, MariaDB's `wait_timeout` and PostgreSQL's `idle_session_timeout`, are overridden on
  this session by T; they would otherwise drop it while the handler runs, and its message would run
  twice).
- A worker that cannot reach the server is dead before the server can release its session. Every
  round trip the worker starts is timed; a ping unanswered within T/6 s, or a driver error that says
  the connection is gone, kills the worker's process group at once (`Keeper.lose`), and the supervisor
  kills it when no round trip sent in the last T/2 s has been answered (a statement that hangs, a
  thread that cannot run). So a worker cut off from the server is dead within T/2 + 0.5 s of the
  last request the server answered (usually after about 3T/8), and the server ends the session no
  sooner than T after that request reached it: client detects within T/2 + 0.5 s < server releases
  after T. The worker also keeps a duplicate of its socket open until it dies, so the drivers closing
  a failed connection cannot end the session (and free its messages) while the handler still runs.

What each engine enforces on the worker's session (`keep_session` in postgresql.py and mysql.py):
MariaDB/MySQL `wait_timeout`, `net_read_timeout` and `net_write_timeout` = T: a silent or vanished
client's session ends after T, whatever the network does. PostgreSQL 14+: `idle_session_timeout` and
`idle_in_transaction_session_timeout` = T, the same; before 14, TCP keepalives (idle T/2, interval
T/6, 3 probes) and, from 12, `tcp_user_timeout` T: a host that vanished from the network is released
after about T, but one whose network still answers TCP (a proxy, a NAT that keeps the connection) is
released only when the connection ends.

The supervisor's own session (the scheduler lock) is kept alive the same way while the worker runs; if
it is lost, the worker is asked to stop at its next checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

#: What a worker's keeper publishes when its session is lost (else the monotonic time it last confirmed):
#: the connection failed (or the server ended the session), or a ping went unanswered.
LOST, UNANSWERED = -1, -2


class Timing:
    """The fractions of T (`release`, the server's silence limit) each side works with."""

    def __init__(self, release: float = 30.0) -> None:
        self.release = release
        self.ping_after = release / 6  # a session without a round trip this long is pinged
        self.ping_timeout = release / 6  # a ping unanswered this long: the session is lost
        self.give_up = release / 2  # no answered round trip sent in this long: the supervisor kills the worker
        self.step = release / 24  # how often the keeper looks

    def __repr__(self) -> str:
        return f"Timing(release={self.release:g})"


class Keeper:
    """Pings `connection` (a ServerConnection) when it has been idle for `timing.ping_after`, in a thread.

    `start()` applies the engine's session settings (one statement) and attaches the keeper to the
    connection, whose statements then take `mutex` and stamp `confirmed` (the monotonic time the last
    answered round trip was sent). `on_lost(reason, unanswered)` is called once, from whichever thread
    found out; `unanswered`: a ping timed out (else the connection failed).
    `publish(confirmed)`, if given, is called at every look (the worker's board, which its supervisor
    watches). With `hold_socket`, a duplicate of the session's socket stays open until the process ends.
    """

    def __init__(self, connection: Any, timing: Timing, on_lost: Callable[[str, bool], None],
                 publish: Optional[Callable[[float], None]] = None, hold_socket: bool = False) -> None:
        self.connection = connection
        self.timing = timing
        self.on_lost = on_lost
        self.publish = publish
        self.hold_socket = hold_socket
        self.mutex = threading.Lock()
        self.confirmed = 0.0
        self.lost: Optional[str] = None
        self._held: Optional[int] = None
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def prepare(self) -> None:
        """Apply the session settings and start timing the connection's round trips (no thread yet)."""
        connection = self.connection
        sent = time.monotonic()
        connection.keep_session(self.timing.release)
        self.confirmed = sent
        if self.hold_socket:
            fd = connection.fileno()
            self._held = os.dup(fd) if fd is not None else None
        connection.keeper = self

    def start(self) -> None:
        """`prepare()` if not done, then the pinging thread (in the process that will keep the session)."""
        if self.connection.keeper is not self:
            self.prepare()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cronjobs-session-keeper", daemon=True)
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self) -> None:
        """Stop pinging (the connection is being closed, or the supervisor is done with it); a loss
        found later is only recorded in `lost` (what `on_lost` acts on may be gone)."""
        self.on_lost = _ignore
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def lose(self, reason: str, unanswered: bool = False) -> None:
        if self.lost is None:
            self.lost = reason
            self.on_lost(reason, unanswered)

    def _run(self) -> None:
        timing = self.timing
        while not self._stopping.wait(timing.step):
            if self.lost is not None:
                return
            if time.monotonic() - self.confirmed >= timing.ping_after and self.mutex.acquire(blocking=False):
                try:  # never while a statement is under way: that statement is the round trip
                    self._ping()
                finally:
                    self.mutex.release()
            if self.publish is not None and self.lost is None:
                self.publish(self.confirmed)

    def _ping(self) -> None:
        if time.monotonic() - self.confirmed < self.timing.ping_after or self._stopping.is_set():
            return  # a statement answered meanwhile
        connection = self.connection
        sent = time.monotonic()
        try:
            connection.engine.ping(connection.raw, self.timing.ping_timeout)
        except Exception as exc:  # any failure of a ping is the session's: it runs no SQL of ours
            waited = time.monotonic() - sent
            if waited >= self.timing.ping_timeout * 0.9:
                self.lose(f"no answer to a ping within {waited:.1f} s", unanswered=True)
            else:
                self.lose(f"the connection failed: {_one_line(exc)}")
            return
        self.confirmed = sent


def _ignore(reason: str, unanswered: bool) -> None:
    pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- the worker's side ------------------------------------------------------------------------------


def keep_worker_session(connection: Any, timing: Timing, board: Any) -> Keeper:
    """Keep the worker's session (its runner lock) alive; a lost session kills the worker at once.

    Runs in the worker process. The board carries the last confirmed time to the supervisor.
    """

    def publish(confirmed: float) -> None:
        board.set_session(int(confirmed * 1_000_000))

    def lost(reason: str, unanswered: bool) -> None:
        # The session may be gone on the server already (another host may take its messages now): no
        # handler step may run after this. The supervisor reads the board and logs why.
        board.set_session(UNANSWERED if unanswered else LOST)
        os.killpg(0, signal.SIGKILL)

    keeper = Keeper(connection, timing, lost, publish, hold_socket=True)
    keeper.start()
    publish(keeper.confirmed)
    return keeper


# -- the supervisor's side ----------------------------------------------------------------------------


class Watch:
    """What the supervisor checks while the worker runs: the worker's session, and its own.

    Called (see runtime.supervisor.supervise's `watch`) first right after the fork, so the keeper of the
    supervisor's own session starts its thread then, never before a fork. Returns why the worker
    must be killed, or None.
    """

    def __init__(self, board: Any, timing: Timing, own: Optional[Keeper] = None) -> None:
        self.board = board
        self.timing = timing
        self.own = own

    def __call__(self) -> Optional[str]:
        if self.own is not None and not self.own.started:
            self.own.start()
        return self.verdict()

    def verdict(self) -> Optional[str]:
        state = self.board.session()
        if state == LOST:
            return "its connection to the database server failed, or the server ended its session"
        if state == UNANSWERED:
            return f"the database server did not answer a ping within {self.timing.ping_timeout:g} s"
        if state > 0:
            silent = time.monotonic() - state / 1_000_000
            if silent > self.timing.give_up:
                return f"no answer from the database server for {silent:.1f} s"
        return None

    def stop(self) -> None:
        if self.own is not None:
            self.own.stop()


def keep_supervisor_session(connection: Any, timing: Timing, board: Any) -> Keeper:
    """Prepare to keep the supervisor's session (the scheduler lock) alive while the worker runs; if it
    is lost, the worker stops at its next checkpoint (another host may run the periodic jobs now)."""

    def lost(reason: str, unanswered: bool) -> None:
        board.request_stop()

    keeper = Keeper(connection, timing, lost)
    keeper.prepare()
    return keeper
