"""The heartbeat after each tick: a GET to `[run-cron] ping_url` (healthchecks.io style).

A tick that failed pings `<url>/fail`. The whole ping, name resolution included, gets at most
`TIMEOUT` seconds: it runs in a daemon thread that is abandoned if it hangs. A failed ping is logged,
never raised.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

log = logging.getLogger(__name__)

TIMEOUT = 5.0


def ping_url_for(url: str, failed: bool) -> str:
    return url.rstrip("/") + "/fail" if failed else url


def _get(url: str, timeout: float, errors: list[str]) -> None:
    import urllib.request

    from .. import __version__

    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"run-cron/{__version__}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only, checked by config)
            response.read(1024)
    except Exception as exc:  # any failure is reported, none is fatal
        errors.append(f"{type(exc).__name__}: {exc}")


def ping(url: str, failed: bool = False, timeout: float = TIMEOUT) -> Optional[str]:
    """GET the heartbeat URL; returns None on success, else the error (also logged)."""
    target = ping_url_for(url, failed)
    errors: list[str] = []
    thread = threading.Thread(target=_get, args=(target, timeout, errors), name="cronjobs-ping", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        errors.append(f"no answer within {timeout:g} s")
    if errors:
        log.warning("ping %s failed: %s", target, errors[0])
        return errors[0]
    log.debug("pinged %s", target)
    return None


def after_tick(url: str, outcome: str) -> None:
    """Ping for a tick that ran or was idle (never for one that found the lock held)."""
    if outcome != "locked":
        ping(url, failed=outcome in ("failed", "error"))
