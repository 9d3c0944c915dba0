"""What the status page's buttons do: retry a failed message, cancel a waiting one, run a periodic job now.

Each button is a POST form (post/redirect/get): the action runs, then a 303 sends the browser back to
the page with a notice code that the page turns into a sentence. Forms carry a CSRF token derived from
the HTTP token, checked beside the page cookie (itself SameSite=Strict) and the Origin header.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from ..errors import InvalidState, MessageNotFound
from ..host.config import Config
from ..registry import Registry

#: The filters of the page, kept across an action (anything else in `back` is dropped).
FILTERS = ("status", "type", "owner", "tag")
ACTIONS = ("retry", "cancel", "run")
#: Outcomes a notice may name; anything else reads as "finished".
OUTCOMES = ("completed", "failed", "timeout", "crashed", "continued", "cancelled", "retry", "skipped")


def csrf_token(token: str) -> str:
    """The forms' hidden field: derived from the token, different from the cookie and from the token."""
    return hmac.new(token.encode("utf-8"), b"run-cron page actions", hashlib.sha256).hexdigest()


def csrf_matches(given: Optional[str], token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("ascii", "replace"), csrf_token(token).encode())


def same_origin(environ: dict[str, Any]) -> bool:
    """False when the browser says the form came from another site (Sec-Fetch-Site, else Origin).

    The page's no-referrer policy makes browsers send `Origin: null` with its own forms, so a null
    origin proves nothing either way: the CSRF token decides then.
    """
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site:
        return site in ("same-origin", "none")
    origin = environ.get("HTTP_ORIGIN")
    if not origin or origin == "null":
        return True
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def back_query(form: dict[str, list[str]]) -> dict[str, str]:
    """The page's filters from the form's `back` fields, so the user lands where they were."""
    return {name: form[name][0][:200] for name in FILTERS if form.get(name) and form[name][0]}


def perform(config: Config, form: dict[str, list[str]], registry: Callable[[], Registry],
            guard: Any) -> dict[str, str]:
    """Run the action the form names; returns the notice for the page (`notice`, `subject`, `detail`)."""
    from ..store import connect_store

    action = (form.get("action") or [""])[0]
    subject = (form.get("uuid") or form.get("job") or [""])[0][:200]
    if action not in ACTIONS or not subject:
        return {"notice": "bad_request"}
    if action == "run":
        return run_now(config, registry(), subject)
    from ..messages.queue import Queue

    with guard:
        database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
        with Queue(database, models) as queue:
            try:
                if action == "retry":
                    queue.retry(subject)
                else:
                    queue.cancel(subject)
                return {"notice": "retried" if action == "retry" else "cancelled", "subject": subject}
            except MessageNotFound:
                return {"notice": "missing", "subject": subject}
            except InvalidState:
                status = queue.get(subject).status
                return {"notice": "refused", "subject": subject, "detail": status}


def run_now(config: Config, registry: Registry, name: str) -> dict[str, str]:
    """One tick that runs `name` now, as `run-cron --force NAME` does, under `[http] time_limit`."""
    from ..runtime.eventlog import TickLog
    from ..runtime.lock import SupervisorLock
    from ..runtime.tick import run_tick
    from .store import trigger_lock

    job = registry.jobs.get(name)
    if job is None:
        return {"notice": "unknown_job", "subject": name}
    if job.cli_only:
        return {"notice": "cli_only", "subject": name}
    if SupervisorLock(config.lock_file).held_elsewhere():
        return {"notice": "busy", "subject": name}
    with trigger_lock(config.lock_file + ".http") as held:
        if not held:
            return {"notice": "busy", "subject": name}
        events = TickLog("http")
        result = run_tick(config, registry, time_limit=config.http.time_limit, force=[job], trigger="http",
                          on_event=events)
        events.finished(result)
    if result.status == "locked":
        return {"notice": "busy", "subject": name}
    outcome = next((item.outcome for item in result.items if item.kind == "job" and item.name == name), None)
    return {"notice": "ran", "subject": name, "detail": outcome if outcome in OUTCOMES else "finished"}


def redirect_target(base: str, notice: dict[str, str], form: dict[str, list[str]]) -> str:
    return f"{base}/?{urlencode({**back_query(form), **notice})}"
