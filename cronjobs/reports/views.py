"""Read-only views for the CLI and the status page: job tables, dry runs, message descriptions."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from ..control.pauses import JOB, paused
from ..errors import StoreError
from ..messages.family import WAITING
from ..messages.queue import MessageView
from ..registry import Job, Registry
from ..runtime.idle import no_schema, open_fast
from ..runtime.scheduler import JobState, job_jitter, job_tz, load_states, plan
from ..scheduling.schedule import EPOCH, UTC, next_due


def _read_states(config: Any) -> tuple[dict[str, JobState], Optional[sqlite3.Connection]]:
    connection = open_fast(config.database, config.busy_timeout)
    if connection is None:
        return {}, None
    try:
        return load_states(connection), connection
    except sqlite3.Error as exc:
        if no_schema(exc):  # created but no schema yet
            return {}, connection
        connection.close()
        raise StoreError(config.database, exc) from exc


def local_iso(timestamp: Optional[float], tz: Any) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).astimezone(tz).isoformat(timespec="seconds")


def job_rows(config: Any, registry: Registry, now: Optional[float] = None) -> list[dict[str, Any]]:
    """Each job's name, schedule, last_run, last_outcome and next_due (ISO 8601, configured zone)."""
    registry.validate()  # a broken expression is reported as such, not as a failure to compute it
    tz = config.tz
    now = time.time() if now is None else now
    states, connection = _read_states(config)
    held: dict[tuple[str, str], float] = {}
    if connection is not None:
        try:
            held = paused(connection)
        finally:
            connection.close()
    rows = []
    for job in registry.ordered_jobs():
        state = states.get(job.name)
        due: Optional[float]
        if state is not None and state.current is not None:
            due = max(state.current_run_at or now, now)
        elif job.manual:
            due = None
        else:
            first_seen = datetime.fromtimestamp(state.first_seen if state else now, UTC)
            at, _ = next_due(job.spec, state.last() if state else None, job_tz(job, tz), first_seen,
                             config.retry_backoff, job_jitter(job))
            due = now if at == EPOCH else at.timestamp()
        rows.append({
            "name": job.name,
            "schedule": job.label,
            "timezone": job.timezone,
            "time_limit": job.time_limit,
            "last_run": local_iso(state.last_run if state else None, tz),
            "last_outcome": state.last_outcome if state else None,
            "next_due": local_iso(due, tz),
            "cli_only": job.cli_only,
            "running": bool(state and state.current),
            "paused": local_iso(held.get((JOB, job.name)), tz),
            "last_error": state.last_error if state else None,
        })
    return rows


def dry_run_plan(
    config: Any, registry: Registry, forced: Optional[list[Job]], now: Optional[float] = None
) -> list[str]:
    """What a tick would run now and why, read without changing anything."""
    now = time.time() if now is None else now
    states, connection = _read_states(config)
    lines = []
    try:
        if forced is not None:
            chosen = [(job, "forced") for job in forced]
        else:
            registry.validate()
            chosen = [(p.job, p.reason) for p in plan(registry.ordered_jobs(), states, now, config.tz,
                                                      config.retry_backoff)]
        held = paused(connection) if forced is None and connection is not None else {}
        for job, reason in chosen:
            if (JOB, job.name) in held:
                lines.append(f"would skip {job.label} job {job.name}: paused (run-cron resume {job.name})")
            else:
                lines.append(f"would run {job.label} job {job.name}: {reason}")
        if forced is None and connection is not None:
            try:
                (count,) = connection.execute(
                    "SELECT COUNT(*) FROM message WHERE kind = 'message' AND "
                    "(status = 'pending' OR (status = 'new' AND run_at <= ?))", (now,)).fetchone()
            except sqlite3.OperationalError:
                count = 0
            if count:
                lines.append(f"would run queued messages: {count} runnable")
    finally:
        if connection is not None:
            connection.close()
    return lines or ["nothing is due"]


def render_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """Aligned columns with a header; empty cells shown as '-'."""
    rows = list(rows)
    cells = [[col.upper().replace("_", " ") for col in columns]]
    cells += [["-" if row.get(col) is None else str(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


def message_rows(views: Iterable[MessageView], tz: Any) -> list[dict[str, Any]]:
    """Rows for `run-cron messages`: times in the configured zone, as every text output shows them."""
    return [
        {
            "uuid": view.uuid,
            "type": view.type,
            "status": "waiting for children" if view.status == "new" and view.run_at == WAITING else view.status,
            "progress": f"{view.progress:.0f}%",
            "attempts": f"{view.attempts}/{view.max_attempts}",
            "owner": view.owner,
            "created": local_iso(view.created_at, tz),
        }
        for view in views
    ]


def describe_message(view: MessageView, tz: Any) -> str:
    """`run-cron show`: times in the configured zone; attempts counted as `history` numbers them."""
    data = view.to_json()
    times = {"created_at": view.created_at, "started_at": view.started_at, "finished_at": view.finished_at,
             "run_at": view.run_at if view.status == "new" else None}
    for key, timestamp in times.items():
        data[key] = local_iso(timestamp, tz)
    data["public"] = "yes" if view.public else "no"
    data["tags"] = ", ".join(view.tags) or None
    if view.waiting_for_children:
        data["status"], data["run_at"] = "new, waiting for its children", None
    lines = [f"{key + ':':<13}{'-' if data[key] is None else data[key]}" for key in (
        "uuid", "type", "status", "progress", "offset", "state", "attempts", "max_attempts", "priority",
        "key", "owner", "public", "tags", "created_at", "run_at", "started_at", "finished_at")]
    lines.append("errors:" + ("" if view.errors else " -"))
    lines += [f"  attempt {e['attempt']} {e['outcome']}: {e['error']}" for e in view.errors]
    lines.append("warnings:" + ("" if view.warnings else " -"))
    lines += [f"  {local_iso(w['at'], tz)} {w['text']}" for w in view.warnings]
    lines.append("attachments:" + ("" if view.attachments else " -"))
    lines += [f"  {a['name']} ({a['size']} bytes)" for a in view.attachments]
    if view.parent:
        lines.append(f"parent:      {view.parent}")
    if view.children:
        lines.append("children:")
        lines += _tree_lines(view.children, view.uuid, 1)
    return "\n".join(lines)


#: Grandchildren and deeper listed per message by `show` (its own children are all listed).
NESTED_SHOWN = 20


def _tree_lines(kids: list[dict[str, Any]], parent: str, depth: int) -> list[str]:
    """A message's children, each followed by its own, indented two spaces a generation."""
    indent = "  " * depth
    listed = kids if depth == 1 else kids[:NESTED_SHOWN]
    lines = []
    for kid in listed:
        status = "new, waiting for its children" if kid.get("waiting_for_children") else kid["status"]
        lines.append(f"{indent}{kid['uuid']} {kid['type']} {status} {kid['progress']:.0f}%"
                     + (f" ({kid['error']})" if kid["error"] else ""))
        lines += _tree_lines(kid.get("children") or [], kid["uuid"], depth + 1)
        unread = kid.get("children_total", 0) - len(kid.get("children") or [])
        if unread > 0:
            lines.append(f"{indent}  ... {unread} more below (run-cron show {kid['uuid']})")
    if len(kids) > len(listed):
        lines.append(f"{indent}... and {len(kids) - len(listed)} more (run-cron show {parent})")
    return lines
