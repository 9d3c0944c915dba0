"""Small HTML pieces of the status page: escaping, times, badges, progress bars and buttons.

Every stored value goes through `escape`: payloads, errors and names come from job code.
"""

from __future__ import annotations

import html
from typing import Any, Optional
from urllib.parse import quote

_OUTCOME_CLASS = {"success": "ok", "completed": "ok", "failed": "bad", "timeout": "bad", "crashed": "bad",
                  "pending": "run", "running": "run", "new": "wait", "cancelled": "wait",
                  "waiting for children": "wait"}


def escape(value: Any) -> str:
    """Escape anything for HTML text and attribute values; None shows as a dash."""
    return "&ndash;" if value is None or value == "" else html.escape(str(value), quote=True)


def time_tag(iso: Optional[str]) -> str:
    """A time in the configured zone; /page.js shows it in the browser's zone."""
    if not iso:
        return escape(None)
    return f'<time datetime="{escape(iso)}">{escape(iso.replace("T", " "))}</time>'


def badge(text: Optional[str]) -> str:
    return f'<span class="badge {_OUTCOME_CLASS.get(text or "", "")}">{escape(text or "never")}</span>'


def url(*parts: str) -> str:
    return "/".join(quote(part.encode("latin-1", "replace") if i == 0 else part, safe="/" if i == 0 else "")
                    for i, part in enumerate(parts))


def progress_bar(uuid: str, progress: float) -> str:
    """A bar /page.js moves while a tick runs (it finds it by `data-progress`)."""
    return (f'<span data-progress="{escape(uuid)}"><progress max="100" value="{progress:.1f}">'
            f'</progress> <span class="pct">{progress:.0f}%</span></span>')


def button(base: str, csrf: Optional[str], action: str, field: str, value: str, label: str,
           filters: dict[str, str], danger: bool = False) -> str:
    """A POST form of one button (see cronjobs.web.actions); nothing on a read-only page."""
    if csrf is None:
        return ""
    hidden = {"csrf": csrf, "action": action, field: value, **filters}
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden.items())
    return (f'<form class="inline" method="post" action="{escape(url(base, "action"))}">{inputs}'
            f'<button type="submit"{" class=danger" if danger else ""}>{escape(label)}</button></form>')


def message_button(base: str, csrf: Optional[str], uuid: str, status: str, filters: dict[str, str]) -> str:
    """Retry for a failed or cancelled message, Cancel for a new or running one."""
    if status in ("failed", "cancelled"):
        return button(base, csrf, "retry", "uuid", uuid, "Retry", filters)
    if status in ("new", "pending"):
        return button(base, csrf, "cancel", "uuid", uuid, "Cancel", filters, danger=True)
    return ""
