"""`RunCronBackend`: a `django.tasks` backend whose tasks run in run-cron's next tick.

    TASKS = {"default": {"BACKEND": "cronjobs.contrib.django.RunCronBackend",
                         "OPTIONS": {"max_attempts": 1}}}   # also "config": "run-cron.ini"

`enqueue` writes a message to run-cron's store (one INSERT into SQLite); `get_result` reads it back.
Statuses: a queued message is READY (also while it waits for a retry), a claimed one RUNNING, a
completed one SUCCESSFUL, a failed or cancelled one FAILED. Each attempt that raised is one TaskError.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any, Optional

from django.tasks import TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from ...errors import AttachmentNotFound, MessageNotFound
from .source import django_config
from .worker import MESSAGE_TYPE, RETURN_VALUE, load_task

_STATUS = {
    "new": TaskResultStatus.READY,
    "pending": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}
WORKER_ID = "run-cron"


class RunCronBackend(BaseTaskBackend):
    """Tasks as run-cron messages. OPTIONS: `config` (an INI file; default: settings.RUN_CRON) and
    `max_attempts` (default 1: a task that raises is FAILED, as with Django's other backends)."""

    supports_defer = True
    supports_async_task = True  # Task.call runs a coroutine function to completion
    supports_get_result = True
    supports_priority = True  # Django's -100..100, higher first, is run-cron's order too

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.max_attempts = int(self.options.get("max_attempts", 1))
        if self.max_attempts < 1:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']['max_attempts'] must be >= 1")
        self._queue: Any = None
        self._lock = threading.Lock()

    def queue(self) -> Any:
        """run-cron's Queue on the configured store, opened on first use."""
        with self._lock:
            if self._queue is None:
                from ...messages.queue import Queue
                from ...store import connect_store

                config = django_config(self.options.get("config"))
                database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
                self._queue = Queue(database, models)
            return self._queue

    def close(self) -> None:
        """Close the store's connection (before a fork; the next use opens another)."""
        with self._lock:
            if self._queue is not None:
                self._queue.close()
                self._queue = None

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        result = TaskResult(  # normalises args and kwargs, and refuses what JSON cannot hold
            task=task, id="", status=TaskResultStatus.READY, enqueued_at=None, started_at=None,
            finished_at=None, last_attempted_at=None, args=args, kwargs=kwargs, backend=self.alias,
            errors=[], worker_ids=[],
        )
        payload = {"task": task.module_path, "args": result.args, "kwargs": result.kwargs, "backend": self.alias,
                   "queue_name": task.queue_name, "priority": task.priority,
                   "run_after": task.run_after.isoformat() if task.run_after else None}
        uuid = self.queue().enqueue(MESSAGE_TYPE, payload, priority=task.priority, delay=task.run_after or 0,
                                    max_attempts=self.max_attempts, allow_unknown=True)
        object.__setattr__(result, "id", uuid)
        object.__setattr__(result, "enqueued_at", _when(datetime.now(timezone.utc).timestamp()))
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        queue = self.queue()
        try:
            view = queue.get(str(result_id))
        except MessageNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        if view.kind != "message" or view.type != MESSAGE_TYPE or not isinstance(view.payload, dict):
            raise TaskResultDoesNotExist(result_id)
        payload = view.payload
        task = load_task(payload["task"]).using(
            priority=payload.get("priority"), queue_name=payload.get("queue_name"), backend=self.alias,
            run_after=_parse(payload.get("run_after")))
        attempts = queue.db.execute(
            "SELECT attempt.started_at, attempt.outcome FROM attempt JOIN message ON message.id = attempt.message_id "
            "WHERE message.uuid = ? ORDER BY attempt.id", (view.uuid,)).fetchall()
        result = TaskResult(
            task=task, id=view.uuid, status=_STATUS[view.status], enqueued_at=_when(view.created_at),
            started_at=_when(view.started_at), finished_at=_when(view.finished_at),
            last_attempted_at=_when(attempts[-1][0]) if attempts else None,
            args=payload.get("args") or [], kwargs=payload.get("kwargs") or {}, backend=self.alias,
            errors=[TaskError(exception_class_path=exception_class_path(item["traceback"], item["error"]),
                              traceback=item["traceback"] or item["error"] or "")
                    for item in view.errors if item["outcome"] != "continued"],
            worker_ids=[WORKER_ID for _, outcome in attempts if outcome != "continued"],
        )
        if view.status == "completed":
            object.__setattr__(result, "_return_value", self._return_value(queue, view.uuid))
        return result

    @staticmethod
    def _return_value(queue: Any, uuid: str) -> Any:
        try:
            data = b"".join(queue.attachment(uuid, RETURN_VALUE))
        except AttachmentNotFound:
            return None  # completed by `run-cron` without the Django worker (or before it stored one)
        return json.loads(data)

    def check(self, **kwargs: Any) -> list[Any]:
        from django.core import checks

        try:
            django_config(self.options.get("config"))
        except Exception as exc:
            return [checks.Error(f"run-cron configuration: {exc}", obj=self.alias, id="run_cron.E001")]
        return []


def exception_class_path(traceback: Optional[str], error: Optional[str]) -> str:
    """The dotted class of the exception a traceback ends with (Python omits `builtins.`)."""
    lines = [line for line in (traceback or "").splitlines() if line and not line[0].isspace()]
    last = lines[-1] if lines and not lines[-1].startswith("Traceback") else (error or "Exception")
    name = last.split(":", 1)[0].strip()
    if not name or " " in name:
        return "builtins.Exception"
    return name if "." in name else f"builtins.{name}"


def _when(timestamp: Optional[float]) -> Optional[datetime]:
    """An epoch time as Django wants it: aware UTC with USE_TZ, naive local time without."""
    from django.conf import settings

    if timestamp is None:
        return None
    if settings.USE_TZ:
        return datetime.fromtimestamp(timestamp, timezone.utc)
    return datetime.fromtimestamp(timestamp)


def _parse(text: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(text) if text else None
