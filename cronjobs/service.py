"""Worker mode: ticks in a loop for hosts that allow a long-running service (systemd, supervisord).

Each tick is an ordinary `run_tick` under its own hard time limit and the same supervisor lock as a
crontab tick, so both may be installed at once without work ever running twice. Between ticks it sleeps
while there is nothing to do. SIGTERM or SIGINT asks it to stop after the current tick; a second one
stops it at once (the forked worker is killed and the next tick settles what it left).
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from .errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_SLEEP = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[threading.Event]:
    """An event set by the first of `signals`; the second raises KeyboardInterrupt. Main thread only."""
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("received %s: stopping after the current tick", signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in signals}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_worker(
    config: Any,
    registry: Any,
    stop: threading.Event,
    *,
    time_limit: Optional[float] = None,
    sleep: float = DEFAULT_SLEEP,
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    on_result: Callable[[Any], None] = lambda result: None,
) -> int:
    """Tick until `stop` is set; returns the number of ticks that ran work.

    After a tick that ran work without failures it ticks again at once (the next one is idle and
    cheap if nothing is left); after an idle, locked or failed tick it sleeps `sleep` seconds, so a
    job that fails at once with no backoff does not spin.
    """
    from .tick import run_tick

    limit = config.time_limit if time_limit is None else time_limit
    log.info("worker started: time limit %s, sleep %g s", f"{limit:g} s" if limit else "none", sleep)
    ran = 0
    while not stop.is_set():
        try:
            result = run_tick(config, registry, time_limit=limit, trigger="worker", on_event=on_event)
        except StoreError as exc:  # a locked or briefly unavailable database: try again later
            log.error("tick failed: %s", exc)
            stop.wait(sleep)
            continue
        on_result(result)
        if result.status == "ran":
            ran += 1
            if not result.failed and not result.error:
                continue
        stop.wait(sleep)
    log.info("worker stopped after %d tick(s) with work", ran)
    return ran
