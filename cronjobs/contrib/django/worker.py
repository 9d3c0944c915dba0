"""Running Django tasks in a run-cron worker: one message type whose payload names the task.

The return value is stored as the message's JSON attachment `return_value.json`, so it lives (and is
pruned) with the message; errors and tracebacks are the attempts run-cron records anyway.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import Cancelled, PermanentError

MESSAGE_TYPE = "django.task"
RETURN_VALUE = "return_value.json"


def load_task(path: str) -> Any:
    """The `django.tasks.Task` at the dotted `path`; PermanentError if it is gone or not a task."""
    from django.tasks import Task
    from django.utils.module_loading import import_string

    try:
        task = import_string(path)
    except ImportError as exc:
        raise PermanentError(f"cannot import task {path}: {exc}") from exc
    if not isinstance(task, Task):
        raise PermanentError(f"{path} is not a task (decorate it with @django.tasks.task)")
    return task


def run_task(ctx: Any, payload: dict[str, Any]) -> None:
    """The handler of MESSAGE_TYPE: call the task, store its return value, keep the ORM's connections fresh.

    Sends Django's `task_started` signal before each attempt and `task_finished` once the result is
    final: SUCCESSFUL when the task returned, FAILED when it raised in its last attempt (the backend's
    `max_attempts`), raised PermanentError or was cancelled. An attempt that will be retried, or a
    run stopped at the time limit to resume next tick, sends no `task_finished`. Both are sent from the
    worker when the handler ends, just before run-cron commits the outcome.
    """
    from django.db import close_old_connections
    from django.tasks import TaskContext, TaskResultStatus, task_backends
    from django.tasks.signals import task_finished, task_started
    from django.utils.json import normalize_json

    task = load_task(payload["task"])
    backend = task_backends[payload.get("backend") or task.backend]
    result = _running(backend.get_result(ctx.job.uuid), ctx.job.attempt)
    task_started.send(sender=type(backend), task_result=result)
    args, kwargs = payload.get("args") or [], payload.get("kwargs") or {}
    close_old_connections()  # as Django does around each request: CONN_MAX_AGE and broken connections
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        try:
            value = normalize_json(value)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"the return value of {payload['task']} is not JSON: {exc}") from None
    except Exception as exc:  # ResumeLater and the stop signals are BaseExceptions: never final
        if _final(exc, ctx.job):
            task_finished.send(sender=type(backend), task_result=_failed(result, exc))
        raise
    finally:
        close_old_connections()
    ctx.attach(RETURN_VALUE, json.dumps(value))
    task_finished.send(sender=type(backend), task_result=_finished(result, TaskResultStatus.SUCCESSFUL, value))


def _final(exc: Exception, job: Any) -> bool:
    """Does this exception end the task for good (no retry follows)?"""
    from ...errors import Retry

    if isinstance(exc, Retry):
        return False
    return isinstance(exc, (PermanentError, Cancelled)) or job.attempt >= job.max_attempts


def _finished(result: Any, status: Any, value: Any = None) -> Any:
    from django.utils import timezone

    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    if value is not None:
        object.__setattr__(result, "_return_value", value)
    return result


def _failed(result: Any, exc: Exception) -> Any:
    import traceback

    from django.tasks import TaskResultStatus
    from django.tasks.base import TaskError

    cls = type(exc)
    result.errors.append(TaskError(exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
                                   traceback="".join(traceback.format_exception(exc))))
    return _finished(result, TaskResultStatus.FAILED)


def _running(result: Any, attempt: int) -> Any:
    """The result as the task sees it while it runs: this attempt counted, though not yet committed."""
    from django.tasks import TaskResultStatus
    from django.utils import timezone

    now = timezone.now()
    object.__setattr__(result, "status", TaskResultStatus.RUNNING)
    object.__setattr__(result, "last_attempted_at", now)
    if result.started_at is None:
        object.__setattr__(result, "started_at", now)
    if len(result.worker_ids) < attempt:
        result.worker_ids.extend(["run-cron"] * (attempt - len(result.worker_ids)))
    return result


def register(registry: Any) -> None:
    """Declare the handler in `registry` (once)."""
    from ...registry import Handler

    if MESSAGE_TYPE not in registry.handlers:
        registry.add_handler(Handler(MESSAGE_TYPE, run_task, module=__name__))
