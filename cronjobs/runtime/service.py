"""Worker mode: ticks in a loop for hosts that allow a long-running service (systemd, supervisord).

Each tick is an ordinary `run_tick` under its own hard time limit and the same supervisor lock as a
crontab tick, so both may be installed at once without work ever running twice. Between ticks it sleeps
while there is nothing to do. SIGTERM, SIGINT or SIGHUP ends the current tick early, as its soft
deadline would: the run in flight finishes (or stops at its next checkpoint, to continue later) and
nothing new starts. A second one stops that tick at once, as a stop signal stops a crontab tick
(interrupt.py): the forked worker is killed and what it ran is settled, checkpoints kept.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from ..errors import StoreError
from . import interrupt

log = logging.getLogger(__name__)

DEFAULT_SLEEP = 5.0
STOP_SIGNALS = interrupt.STOP_SIGNALS


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[threading.Event]:
    """An event set by the first of `signals`; the second stops the running tick at once (then
    `interrupt.received()` names it). Main thread only."""
    stop = threading.Event()

    def handle(signum: int) -> None:
        if stop.is_set():
            log.info("received %s again: stopping the current tick now", interrupt.name(signum))
            interrupt.request(signum)
            return
        log.info("received %s: stopping after the current run", interrupt.name(signum))
        stop.set()
        interrupt.wind_down()

    with interrupt.handling(signals, on_signal=handle):
        yield stop


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
