"""The status page and attachment downloads of the web app: read-only, and every stored value escaped.

The page is plain HTML and CSS, readable on a phone. Its Content-Security-Policy allows no script at
all, as a second line of defence behind the escaping: payloads, errors and names come from job code.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from contextlib import AbstractContextManager
from typing import Any, Iterator, Optional
from urllib.parse import quote

from ..config import Config
from ..errors import CronjobsError
from ..idle import read_tick
from ..queue import MessageView, Queue
from ..registry import Registry
from .http import Response, error_response

PAGE_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
]
REFRESH_SECONDS = 5
#: Messages shown per status: all running ones, then the newest of each other status.
SHOWN = (("pending", None), ("new", 200), ("failed", 50), ("completed", 20), ("cancelled", 10))
PAYLOAD_SHOWN = 2000
_OUTCOME_CLASS = {"success": "ok", "completed": "ok", "failed": "bad", "timeout": "bad", "crashed": "bad",
                  "pending": "run", "new": "wait", "cancelled": "wait"}

_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:.3em 0}h2{font-size:1.1em;margin:1em 0 .4em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5em .7em;margin:.4em 0;overflow-wrap:anywhere}
.head{display:flex;justify-content:space-between;gap:.5em;align-items:baseline}
.badge{border-radius:4px;padding:0 .4em;font-size:.85em;background:#eee;white-space:nowrap}
.ok{background:#d7f5dd}.bad{background:#fbd5d5}.run{background:#d6e8fb}.wait{background:#f3ecd0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0 .8em;margin:.3em 0;font-size:.9em}
dt{color:#666}dd{margin:0}progress{width:100%;height:1em}
pre{white-space:pre-wrap;font-size:.8em;background:#f4f4f4;padding:.4em;margin:.2em 0;max-height:20em;overflow:auto}
.error{color:#a00}.warning{color:#8a5a00}.muted{color:#666;font-size:.85em}ul{margin:.2em 0;padding-left:1.2em}
"""


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values; None shows as a dash."""
    return "&ndash;" if value is None or value == "" else html.escape(str(value), quote=True)


def _when(iso: Optional[str]) -> str:
    return _e(iso.replace("T", " ") if iso else None)


def _badge(text: Optional[str]) -> str:
    return f'<span class="badge {_OUTCOME_CLASS.get(text or "", "")}">{_e(text or "never")}</span>'


def _url(*parts: str) -> str:
    return "/".join(quote(part.encode("latin-1", "replace") if i == 0 else part, safe="/" if i == 0 else "")
                    for i, part in enumerate(parts))


def collect(config: Config, registry: Registry, guard: AbstractContextManager) -> dict[str, Any]:
    """What the page shows, read under `guard` (no fork while this thread is inside SQLite)."""
    from ..store import connect_store
    from ..views import job_rows

    data: dict[str, Any] = {"messages": [], "counts": {}, "meta": {}}
    with guard:
        data["jobs"] = job_rows(config, registry)
        if not os.path.exists(config.database):
            return data
        database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
        with Queue(database, models) as queue:
            for status, limit in SHOWN:
                data["messages"] += queue.jobs(status=status, limit=limit)
            data["counts"] = queue.counts()
        data["meta"] = read_tick(config.database)
    return data


def status_page(config: Config, registry: Registry, base: str, guard: AbstractContextManager) -> str:
    """The whole page; it refreshes itself while messages are new or pending or a job is running."""
    from ..views import local_iso

    data = collect(config, registry, guard)
    tz = config.tz
    busy = any(row["running"] for row in data["jobs"]) or any(
        view.status in ("new", "pending") for view in data["messages"])
    meta = data["meta"]
    finished = meta.get("tick.finished")
    if finished:
        ago = max(time.time() - float(finished), 0)
        tick = (f"Last tick finished {_when(local_iso(float(finished), tz))} ({ago:.0f} s ago): "
                f"{_badge(meta.get('tick.outcome'))} via {_e(meta.get('tick.trigger'))}")
    else:
        tick = "No tick has finished yet."
    counts = ", ".join(f"{count} {_e(status)}" for status, count in data["counts"].items() if count) or "empty"
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if busy else "",
        f"<title>run-cron status</title><style>{_CSS}</style></head><body>",
        "<h1>run-cron status</h1>",
        f'<p class="muted">{tick}<br>Queue: {counts}.'
        f'{" This page refreshes itself while work is pending." if busy else ""}</p>',
        "<h2>Periodic jobs</h2>",
    ]
    parts += [_job_card(row) for row in data["jobs"]] or ['<p class="muted">No periodic jobs declared.</p>']
    parts.append("<h2>Queued messages</h2>")
    parts += [_message_card(view, tz, base) for view in data["messages"]] or ['<p class="muted">No messages.</p>']
    parts.append("</body></html>\n")
    return "\n".join(part for part in parts if part)


def _job_card(row: dict[str, Any]) -> str:
    outcome = "running" if row["running"] else row["last_outcome"]
    badge = '<span class="badge run">running</span>' if row["running"] else _badge(outcome)
    error = f'<div class="error">{_e(row["last_error"])}</div>' if row.get("last_error") else ""
    cli_only = ' <span class="muted">(CLI only)</span>' if row.get("cli_only") else ""
    return (f'<div class="card job"><div class="head"><b>{_e(row["name"])}</b>{badge}</div>'
            f'<dl><dt>Schedule</dt><dd>{_e(row["schedule"])}{cli_only}</dd>'
            f'<dt>Last run</dt><dd>{_when(row["last_run"])}</dd>'
            f'<dt>Next due</dt><dd>{_when(row["next_due"])}</dd></dl>{error}</div>')


def _message_card(view: MessageView, tz: Any, base: str) -> str:
    from ..views import local_iso

    payload = json.dumps(view.payload, indent=1, ensure_ascii=False)
    if len(payload) > PAYLOAD_SHOWN:
        payload = payload[:PAYLOAD_SHOWN] + " ..."
    rows = [("Attempts", f"{view.attempts}/{view.max_attempts}"), ("Owner", view.owner), ("Key", view.key),
            ("Created", local_iso(view.created_at, tz)),
            ("Runs at", local_iso(view.run_at, tz) if view.status == "new" else None),
            ("Started", local_iso(view.started_at, tz)),
            ("Finished", local_iso(view.finished_at, tz)), ("UUID", view.uuid)]
    times = ("Created", "Runs at", "Started", "Finished")
    dl = "".join(f"<dt>{label}</dt><dd>{_when(value) if label in times else _e(value)}</dd>"
                 for label, value in rows if value is not None)
    parts = [
        f'<div class="card message"><div class="head"><b>{_e(view.type)}</b>{_badge(view.status)}</div>',
        f'<progress max="100" value="{view.progress:.1f}">{view.progress:.0f}%</progress>'
        f'<div class="muted">{view.progress:.0f}% done</div>',
        f"<dl>{dl}</dl>",
    ]
    if view.error and not view.errors:
        parts.append(f'<div class="error">{_e(view.error)}</div>')
    if view.errors:
        parts.append('<div>Errors:</div><ul class="error">' + "".join(
            f"<li>attempt {_e(item['attempt'])} {_e(item['outcome'])}: {_e(item['error'])}"
            + (f"<details><summary>traceback</summary><pre>{_e(item['traceback'])}</pre></details>"
               if item.get("traceback") else "") + "</li>" for item in view.errors) + "</ul>")
    if view.warnings:
        parts.append('<div>Warnings:</div><ul class="warning">'
                     + "".join(f"<li>{_e(item['text'])}</li>" for item in view.warnings) + "</ul>")
    if view.attachments:
        parts.append("<div>Attachments:</div><ul>" + "".join(
            f'<li><a href="{_e(_url(base, "attachment", view.uuid, item["name"]))}" download>{_e(item["name"])}</a>'
            f' <span class="muted">({_e(item["size"])} bytes)</span></li>' for item in view.attachments) + "</ul>")
    if view.payload is not None:
        parts.append(f"<details><summary>Payload</summary><pre>{_e(payload)}</pre></details>")
    parts.append("</div>")
    return "\n".join(parts)


class _Stream:
    """Attachment chunks read one at a time under the guard; close() closes the database."""

    def __init__(self, queue: Queue, chunks: Iterator[bytes], guard: AbstractContextManager) -> None:
        self.queue, self.chunks, self.guard = queue, chunks, guard

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self.guard:
                chunk = next(self.chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self.queue.close()


def attachment(config: Config, rest: str, guard: AbstractContextManager) -> Response:
    """`/attachment/UUID/NAME`: the file, streamed, as a download (never rendered by the browser)."""
    from ..store import connect_store

    uuid, _, name = rest.partition("/")
    try:
        name = name.encode("latin-1").decode("utf-8")  # PEP 3333 hands the path over as latin-1
    except (UnicodeEncodeError, UnicodeDecodeError):
        return error_response(404, "not found")
    if not uuid or not name or not os.path.exists(config.database):
        return error_response(404, "not found")
    with guard:
        database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
        queue = Queue(database, models)
        try:
            sizes = {item["name"]: item["size"] for item in queue.get(uuid).attachments}
            if name not in sizes:
                queue.close()
                return error_response(404, "not found")
            chunks = queue.attachment(uuid, name)
        except CronjobsError:
            queue.close()
            return error_response(404, "not found")
        except BaseException:
            queue.close()
            raise
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "attachment"
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    return Response(200, _Stream(queue, chunks, guard), "application/octet-stream",
                    [("Content-Length", str(sizes[name])), ("Content-Disposition", disposition)])
