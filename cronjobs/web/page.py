"""The status page and attachment downloads of the web app; every stored value escaped.

Dense tables on wide screens, cards on phones (one stylesheet, a media query). Buttons are POST forms
(see cronjobs.web.actions). The one script, /page.js, shows times in the browser's zone and updates
progress while a tick runs; the Content-Security-Policy allows no other script, as a second line of
defence behind the escaping: payloads, errors and names come from job code.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
from contextlib import AbstractContextManager
from typing import Any, Iterator, Optional
from urllib.parse import quote

from ..control.pauses import TYPE, paused
from ..errors import CronjobsError
from ..host.config import Config
from ..messages.queue import MessageView, Queue
from ..registry import Registry
from ..runtime.idle import read_tick
from ..runtime.runs import STATUSES
from .actions import FILTERS, csrf_token
from .assets import CSS
from .http import Response, error_response
from .markup import badge as _badge
from .markup import button as _button
from .markup import escape as _e
from .markup import message_button, progress_bar
from .markup import time_tag as _time
from .markup import url as _url
from .store import live_state
from .tree import Layout, arrange, family_row, waiting

PAGE_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self'; "
     "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
]
#: Messages shown per status without a status filter: all running ones, then the newest of each other.
SHOWN = (("pending", None), ("new", 200), ("failed", 50), ("completed", 20), ("cancelled", 10))
FILTERED_SHOWN = 200
PAYLOAD_SHOWN = 2000
#: What the page says after an action (see actions.perform): text, and whether it is a problem.
NOTICES = {
    "retried": ("Message {subject} will run again at the next tick.", False),
    "cancelled": ("Message {subject} is cancelled.", False),
    "refused": ("Message {subject} is {detail} now: nothing changed.", True),
    "missing": ("There is no message {subject} (pruned, or never queued).", True),
    "ran": ("Ran {subject} now: {detail}.", False),
    "busy": ("A tick is running: {subject} did not start. Try again when it has finished.", True),
    "unknown_job": ("There is no periodic job {subject}.", True),
    "cli_only": ("{subject} runs from the command line only.", True),
    "bad_request": ("That action was not understood: nothing changed.", True),
}


def filters_from(query: dict[str, list[str]]) -> dict[str, str]:
    """The filters in the query string; an unknown status is dropped, not an error."""
    chosen = {name: query[name][0][:200] for name in FILTERS if query.get(name) and query[name][0]}
    if chosen.get("status") not in STATUSES:
        chosen.pop("status", None)
    return chosen


def collect(config: Config, registry: Registry, guard: AbstractContextManager,
            filters: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """What the page shows, read under `guard` (no fork while this thread is inside SQLite)."""
    from ..reports.views import job_rows
    from ..store import connect_store

    filters = filters or {}
    data: dict[str, Any] = {"messages": [], "counts": {}, "meta": {}, "runs": {}, "types": [], "owners": [],
                            "layout": Layout()}
    with guard:
        data["jobs"] = job_rows(config, registry)
        if "://" in config.database or os.path.exists(config.database):
            database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
            with Queue(database, models) as queue:
                kind, owner, tag = filters.get("type"), filters.get("owner"), filters.get("tag")
                if "status" in filters:
                    data["messages"] = queue.jobs(status=filters["status"], type=kind, owner=owner,
                                                  limit=FILTERED_SHOWN, tag=tag)
                else:  # without a filter each family is one row (its top), its messages nested below it
                    for status, limit in SHOWN:
                        data["messages"] += queue.jobs(status=status, type=kind, owner=owner, limit=limit,
                                                       tag=tag, roots_only=not filters)
                data["layout"] = arrange(queue.db, data["messages"], filtered=bool(filters))
                data["counts"] = queue.counts()
                for row in data["jobs"]:
                    latest = queue.jobs(kind="job", type=row["name"], limit=1)
                    if latest:
                        data["runs"][row["name"]] = latest[0]
                db = queue.db
                data["types"] = [t for (t,) in db.execute(
                    "SELECT DISTINCT type FROM message WHERE kind = 'message' ORDER BY type LIMIT 200")]
                data["owners"] = [o for (o,) in db.execute(
                    "SELECT DISTINCT owner FROM message WHERE kind = 'message' AND owner IS NOT NULL "
                    "ORDER BY owner LIMIT 200")]
                data["paused_types"] = sorted(name for kind, name in paused(db) if kind == TYPE)
                data["waiting"] = waiting_reasons(db, registry, data["paused_types"], config.tz)
        data["meta"] = read_tick(config.database)
    data["types"] = sorted(set(data["types"]) | set(registry.handlers))
    data["live"] = live_state(config)  # takes the guard itself
    return data


def status_page(config: Config, registry: Registry, base: str, guard: AbstractContextManager,
                query: Optional[dict[str, list[str]]] = None, *, interactive: bool = False) -> str:
    """The whole page. It looks again only while something is about to change: a tick runs, or a
    message or job is due within a couple of minutes.

    `interactive`: the host also serves /page.js, /live and /action (run-cron's own web app does):
    the page then has buttons (needs `[http] token` for their CSRF token), shows times in the
    browser's zone and updates itself by script (a <noscript> refresh without one). Else it is read
    only, in the configured zone, refreshed by a plain meta refresh.
    """
    from ..reports.views import local_iso

    query = query or {}
    filters = filters_from(query)
    data = collect(config, registry, guard, filters)
    tz = config.tz
    live = data["live"]
    csrf = csrf_token(config.http.token) if interactive and config.http.token else None
    poll = live["poll"]
    refresh = f'<meta http-equiv="refresh" content="{max(5, math.ceil(poll))}">' if poll else ""
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        (f"<noscript>{refresh}</noscript>" if interactive else refresh) if refresh else "",
        f"<title>run-cron status</title><style>{CSS}</style>",
        f'<script src="{_e(_url(base, "page.js"))}" defer></script></head>' if interactive else "</head>",
        f'<body data-live="{_e(_url(base, "live"))}" data-state="{_e(live["state"])}" '
        f'data-poll="{poll or 0:.1f}">' if interactive else "<body>",
        "<h1>run-cron status</h1>",
        _notice(query),
        _tick_line(data, tz, local_iso),
        ('<p class="paused">Paused message types (their messages wait in the queue): '
         + ", ".join(f"<b>{_e(name)}</b>" for name in data["paused_types"]) + ".</p>")
        if data.get("paused_types") else "",
        "<h2>Periodic jobs</h2>",
        _jobs_table(data, base, csrf, tz) if data["jobs"] else '<p class="muted">No periodic jobs declared.</p>',
        "<h2>Queued messages</h2>",
        _filter_form(data, filters, base),
        _messages_table(data["layout"], base, csrf, tz, filters, data.get("waiting")) if data["messages"] else
        f'<p class="muted">{"No messages match these filters." if filters else "No messages."}</p>',
        "</body></html>\n",
    ]
    return "\n".join(part for part in parts if part)


def _notice(query: dict[str, list[str]]) -> str:
    code = (query.get("notice") or [""])[0]
    if code not in NOTICES:
        return ""
    template, problem = NOTICES[code]
    fields = {name: f"<b>{_e((query.get(name) or [''])[0][:200])}</b>" for name in ("subject", "detail")}
    problem = problem or (code == "ran" and (query.get("detail") or [""])[0] != "completed")
    return f'<p class="notice{" problem" if problem else ""}" role="status">{template.format(**fields)}</p>'


def waiting_reasons(db: Any, registry: Registry, paused_types: list[str], tz: Any) -> dict[str, str]:
    """Why new messages of a type wait although due: {type: reason} (paused, rate limit reached)."""
    from ..control.rates import describe, exhausted
    from ..reports.views import local_iso

    reasons = {name: "its type is paused (run-cron resume)" for name in paused_types}
    rates = {name: handler.rate for name, handler in registry.handlers.items() if handler.rate}
    for name, until in exhausted(db, rates.items(), time.time()).items():
        reasons.setdefault(name, f"rate limit {describe(rates[name])} reached; the next may start at "
                                 f"{(local_iso(until, tz) or '').replace('T', ' ')}")
    return reasons


def _tick_line(data: dict[str, Any], tz: Any, local_iso: Any) -> str:
    live, meta = data["live"], data["meta"]
    counts = ", ".join(f"{count} {_e(status)}" for status, count in data["counts"].items() if count) or "empty"
    if live["running"]:
        current = live["current"]
        if current:
            what = "job" if current["kind"] == "job" else "message"
            on = (f' It is on {what} <b>{_e(current["type"])}</b> <span class="muted">{_e(current["uuid"])}</span>'
                  f', started {_time(local_iso(current["started_at"], tz))}'
                  f' (<span data-progress="{_e(current["uuid"])}"><span class="pct">'
                  f'{current["progress"] or 0:.0f}%</span></span>).')
        else:
            on = ""
        return f'<p class="ticking" role="status"><b>A tick is running now.</b>{on}<br>Queue: {counts}.</p>'
    finished = meta.get("tick.finished")
    try:
        when = float(finished) if finished else None
    except ValueError:
        when = None
    if when is not None:
        ago = max(time.time() - when, 0)
        tick = (f"Last tick finished {_time(local_iso(when, tz))} ({ago:.0f} s ago): "
                f"{_badge(meta.get('tick.outcome'))} via {_e(meta.get('tick.trigger'))}.")
    else:
        tick = "No tick has finished yet."
    return f'<p class="muted">{tick} No tick is running. Queue: {counts}.</p>'


def _details(view: Optional[MessageView], base: str, tz: Any, payload: bool = True) -> str:
    from ..reports.views import local_iso

    if view is None:
        return ""
    parts = []
    if view.errors:
        parts.append('<ul class="error">' + "".join(
            f"<li>attempt {_e(item['attempt'])} {_e(item['outcome'])}: {_e(item['error'])}"
            + (f"<details><summary>traceback</summary><pre>{_e(item['traceback'])}</pre></details>"
               if item.get("traceback") else "") + "</li>" for item in view.errors) + "</ul>")
    elif view.error:
        parts.append(f'<div class="error">{_e(view.error)}</div>')
    if view.warnings:
        parts.append('<ul class="warning">' + "".join(
            f"<li>warning: {_e(item['text'])} <span class=\"muted\">{_time(local_iso(item['at'], tz))}</span></li>"
            for item in view.warnings) + "</ul>")
    if view.attachments:
        parts.append("<ul>" + "".join(
            f'<li><a href="{_e(_url(base, "attachment", view.uuid, item["name"]))}" download>{_e(item["name"])}</a>'
            f' <span class="muted">({_e(item["size"])} bytes)</span></li>' for item in view.attachments) + "</ul>")
    if payload and view.payload is not None:
        text = json.dumps(view.payload, indent=1, ensure_ascii=False)
        if len(text) > PAYLOAD_SHOWN:
            text = text[:PAYLOAD_SHOWN] + " ..."
        parts.append(f"<details><summary>payload</summary><pre>{_e(text)}</pre></details>")
    return "".join(parts)


def _cell(label: str, content: str, css: str = "") -> str:
    empty = content in ("", "&ndash;")
    classes = " ".join(c for c in (css, "empty" if empty and css != "title" else "") if c)
    css_attribute = f' class="{classes}"' if classes else ""
    if css != "title":  # one child: on a phone the cell is a grid of its label and its content
        content = f"<div>{content}</div>"
    return f'<td data-label="{_e(label)}"{css_attribute}>{content}</td>'


def _jobs_table(data: dict[str, Any], base: str, csrf: Optional[str], tz: Any) -> str:
    rows = []
    for row in data["jobs"]:
        run = data["runs"].get(row["name"])
        badge = '<span class="badge run">running</span>' if row["running"] else _badge(row["last_outcome"])
        details = _details(run, base, tz, payload=False)
        if row.get("last_error") and not (run and (run.errors or run.error)):
            details = f'<div class="error">{_e(row["last_error"])}</div>' + details
        schedule = _e(row["schedule"]) + (' <span class="muted">(CLI only)</span>' if row.get("cli_only") else "")
        if row.get("paused"):
            schedule += f' <span class="badge paused">paused since {_time(row["paused"])}</span>'
        action = "" if row.get("cli_only") else _button(base, csrf, "run", "job", row["name"], "Run now", {})
        progress = ""
        if run is not None and run.status == "pending":
            progress = _progress(run)
        rows.append(
            f'<tr class="job" data-job="{_e(row["name"])}">'
            + _cell("Job", f"<span>{_e(row['name'])}</span> {badge}", "title")
            + _cell("Schedule", schedule) + _cell("Last run", _time(row["last_run"]), "nowrap")
            + _cell("Next due", _time(row["next_due"]), "nowrap") + _cell("Progress", progress)
            + _cell("Last run said", details) + _cell("Action", action, "nowrap") + "</tr>")
    head = "".join(f"<th>{label}</th>" for label in ("Job", "Schedule", "Last run", "Next due", "Progress",
                                                      "Last run said", ""))
    return f'<table class="jobs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _progress(view: MessageView, progress: Optional[float] = None) -> str:
    return progress_bar(view.uuid, view.progress if progress is None else progress)


def _messages_table(layout: Layout, base: str, csrf: Optional[str], tz: Any,
                    filters: dict[str, str], waiting_for: Optional[dict[str, str]] = None) -> str:
    from ..reports.views import local_iso

    labels = ("Message", "Progress", "Attempts", "Owner", "Created", "Runs at / started", "Finished", "Details", "")
    rows = []
    for view in layout.rows:
        action = message_button(base, csrf, view.uuid, view.status, filters)
        parent = view.uuid in layout.families
        held = waiting(view)
        due = view.run_at if view.status == "new" else view.started_at
        why = (waiting_for or {}).get(view.type) if view.status == "new" and not held else None
        progress = layout.progress.get(view.uuid)
        child_of = layout.parents.get(view.uuid)
        status = "waiting for children" if held else view.status
        rows.append(
            f'<tr class="message{" parent" if parent else ""}" data-uuid="{_e(view.uuid)}" '
            f'data-status="{_e(view.status)}">'
            + _cell("Message", f"<span>{_e(view.type)}</span> {_badge(status)}", "title")
            + _cell("Progress", _progress(view, progress) if view.status == "pending" or view.progress or parent
                    else "")
            + _cell("Attempts", f"{view.attempts}/{view.max_attempts}")
            + _cell("Owner", _e(view.owner)) + _cell("Created", _time(local_iso(view.created_at, tz)), "nowrap")
            + _cell("Runs at" if view.status == "new" else "Started",
                    '<span class="muted">when its children have finished</span>' if held else
                    _time(local_iso(due, tz)) + (f'<div class="waiting">waiting: {_e(why)}</div>' if why else ""),
                    "nowrap")
            + _cell("Finished", _time(local_iso(view.finished_at, tz)), "nowrap")
            + _cell("Details", f'<span class="muted">{_e(view.uuid)}</span>'
                    + (f' <span class="muted">key {_e(view.key)}</span>' if view.key else "")
                    + (f'<div class="muted">child of {_e(child_of[1])} {_e(child_of[0])}</div>' if child_of else "")
                    + _details(view, base, tz))
            + _cell("Action", action, "nowrap") + "</tr>"
            + family_row(layout, view, len(labels), base, csrf, tz, filters))
    head = "".join(f"<th>{label}</th>" for label in labels)
    return f'<table class="messages"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _filter_form(data: dict[str, Any], filters: dict[str, str], base: str) -> str:
    def select(name: str, label: str, options: list[str]) -> str:
        chosen = filters.get(name)
        if chosen and chosen not in options:
            options = [chosen, *options]
        items = ['<option value="">any</option>'] + [
            f'<option value="{_e(o)}"{" selected" if o == chosen else ""}>{_e(o)}</option>' for o in options]
        return f'<label>{label}<select name="{name}">{"".join(items)}</select></label>'

    clear = f' <a href="{_e(_url(base, ""))}">clear</a>' if filters else ""
    return (f'<form class="filters" method="get" action="{_e(_url(base, ""))}">'
            + select("status", "Status", list(STATUSES)) + select("type", "Type", data["types"])
            + select("owner", "Owner", data["owners"])
            + '<label>Tag<input name="tag" value="' + html.escape(filters.get("tag", ""), quote=True)
            + '" size="10"></label>'
            + f'<button type="submit">Filter</button>{clear}</form>')


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
    if not uuid or not name or ("://" not in config.database and not os.path.exists(config.database)):
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
