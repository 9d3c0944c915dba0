"""One log line per tick event: tick start and end, each job and message with uuid, outcome, duration.

The lines go to the `cronjobs.events` logger, which the CLI's terminal handler leaves out (it prints
its own summary, and cron mail should get failures once), so they end up in `[log] file`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from ..constants import FAILED_OUTCOMES

EVENTS = "cronjobs.events"

events_log = logging.getLogger(EVENTS)


def not_events(record: logging.LogRecord) -> bool:
    """Filter for terminal handlers: event lines are for the log file."""
    return record.name != EVENTS


class TickLog:
    """An `on_event` callback that logs each event of a tick, then passes it on to `forward`.

    Call `finished(result)` with run_tick's result for the tick's end line. Idle and locked ticks log
    at DEBUG only, so a log at INFO holds the ticks that did something.
    """

    def __init__(self, trigger: str, forward: Optional[Callable[[dict[str, Any]], None]] = None) -> None:
        self.trigger = trigger
        self.forward = forward
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.started = True
            events_log.info("tick start (%s)", self.trigger)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind in ("start", "end", "skipped", "recovered"):
            self._start()
        # isEnabledFor first: a tick of 20,000 messages sends 40,000 of these, mostly with no log file.
        if kind == "start":
            if events_log.isEnabledFor(logging.INFO):
                events_log.info("start %s %s %s attempt %s%s", event.get("kind"), event.get("name"),
                                event.get("uuid"), event.get("attempt"),
                                f" ({event['reason']})" if event.get("reason") else "")
        elif kind == "end":
            outcome = event.get("outcome")
            level = logging.WARNING if outcome in FAILED_OUTCOMES else logging.INFO
            if events_log.isEnabledFor(level):
                events_log.log(level, "end %s %s %s: %s in %.3f s%s", event.get("kind"), event.get("name"),
                               event.get("uuid"), outcome, event.get("duration") or 0.0,
                               f": {event['error']}" if event.get("error") else "")
        elif kind == "skipped":
            events_log.info("skipped %s %s: %s", event.get("kind"), event.get("name"), event.get("reason"))
        elif kind == "recovered":
            events_log.warning("recovered %s %s %s: %s", event.get("kind"), event.get("name"), event.get("uuid"),
                               event.get("outcome"))
        if self.forward is not None:
            self.forward(event)

    def finished(self, result: Any) -> None:
        if result.status != "ran":
            events_log.debug("tick %s (%s)", result.status, self.trigger)
            return
        self._start()
        failed = len(result.failed)
        events_log.log(
            logging.WARNING if result.outcome != "ok" else logging.INFO,
            "tick end (%s): %s in %.3f s, %d run(s), %d failed%s%s", self.trigger, result.outcome,
            result.duration, len(result.items), failed, ", stopped at the time limit" if result.timed_out else "",
            f": {result.error}" if result.error else "",
        )
