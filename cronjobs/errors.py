"""The exceptions run-cron raises; each builds its own message so the CLI can print it as one line."""

from __future__ import annotations


class CronjobsError(Exception):
    """Base class of every error run-cron raises on purpose."""


class ConfigError(CronjobsError):
    """The configuration file is missing, unreadable or holds a bad value."""

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + problem)


class JobDefinitionError(CronjobsError):
    """A job or handler was declared wrongly (bad expression, duplicate name, ...)."""

    def __init__(self, module: str | None, name: str, problem: str) -> None:
        self.module = module
        self.name = name
        where = f"{module}: " if module else ""
        super().__init__(f"{where}job {name!r}: {problem}")


class JobLoadError(CronjobsError):
    """A jobs module named in the configuration could not be imported."""

    def __init__(self, path: str, module: str, cause: BaseException) -> None:
        self.module = module
        self.cause = cause
        where = _where(cause)
        super().__init__(
            f"{path}: jobs: cannot import {module!r}: {type(cause).__name__}: {cause}"
            + (f" ({where})" if where else "")
        )


def _where(cause: BaseException) -> str:
    """File and line of the failing statement in the user's code, not in importlib's machinery."""
    if isinstance(cause, SyntaxError) and cause.filename:
        return f"{cause.filename}, line {cause.lineno}"
    import traceback

    frames = [frame for frame in traceback.extract_tb(cause.__traceback__)
              if not frame.filename.startswith("<frozen ") and "/importlib/" not in frame.filename]
    return f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else ""


class UnknownMessageType(CronjobsError):
    """A message was enqueued for a type that no loaded jobs module declares a handler for."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        super().__init__(
            f"no handler for message type {message_type!r} in the jobs modules (declare one with "
            f"@cronjobs.handler({message_type!r}), or allow it with --allow-unknown-type / allow_unknown=True)"
        )


class UnknownJobError(CronjobsError):
    """`--force` or another command named a job or interval that does not exist."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"no job or interval named {what!r} (try 'run-cron periodic' or an interval such as 'daily')"
        )


class UnknownNameError(CronjobsError):
    """`pause`, `resume` or `why` named neither a periodic job nor a message type."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no periodic job or message type named {name!r} (try 'run-cron periodic')")


class MessageNotFound(CronjobsError):
    """No queued message has the given uuid."""

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        super().__init__(f"no message with uuid {uuid!r}")


class AttachmentNotFound(CronjobsError):
    """The message exists but has no attachment of that name."""

    def __init__(self, uuid: str, name: str) -> None:
        super().__init__(f"message {uuid!r} has no attachment named {name!r}")


class InvalidPayload(CronjobsError):
    """A payload or state could not be stored as JSON."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"payload must be JSON-serialisable: {problem}")


class InvalidState(CronjobsError):
    """An operation does not apply to a message in its current status."""


class StoreError(CronjobsError):
    """The database could not be opened, read or written (locked, unwritable, corrupt)."""

    def __init__(self, path: str, cause: BaseException | str) -> None:
        if "://" in path:  # a server's URL: never show its password
            from .store.url import redact

            path = redact(path)
        self.path = path
        self.cause = cause
        #: The problem without the file's path, for answers to unauthenticated clients (/health).
        self.reason = str(cause)
        super().__init__(f"database {path}: {cause}")


class PermanentError(CronjobsError):
    """Raised by a handler to fail its message at once, without further attempts."""


class Retry(CronjobsError):
    """Raised by a handler to run its message again later, without using up an attempt."""

    def __init__(self, delay: float = 60.0, reason: str = "") -> None:
        self.delay = float(delay)
        self.reason = reason
        super().__init__(reason or f"retry in {self.delay:g} s")


class Cancelled(CronjobsError):
    """Raised inside a handler when its message was cancelled while it ran."""


class ResumeLater(BaseException):
    """Raised by `ctx.checkpoint()` once the soft deadline has passed, after the checkpoint committed.

    The run then continues from that checkpoint on the next tick, without using an attempt. It derives
    from BaseException, like KeyboardInterrupt, so a handler's `except Exception` does not swallow it
    and the obvious loop `for ...: work(); ctx.checkpoint(...)` stops in time and loses nothing.
    """


class StoreFailed(BaseException):
    """Raised by a `ctx` method when the store cannot be written (a full disk, an I/O error, a lock
    held too long, a corrupt file): the tick stops with a StoreError, and the run is settled as after
    a kill (continued from its last committed checkpoint, or charged if it made no progress).

    It derives from BaseException, like ResumeLater, so that a handler's `except Exception` does not
    catch it, and the worker does not record the store's failure as the handler's own.
    """

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(str(cause))

class MissingDriver(StoreError):
    """A server engine's driver is not installed: names the extra that brings it."""

    def __init__(self, database: str, engine: str, module: str) -> None:
        from .store.url import EXTRAS

        self.extra = EXTRAS[engine]
        super().__init__(database, f"the {module} driver is not installed: pip install 'run-cron[{self.extra}]'")


class SchemaOutdated(StoreError):
    """The database's schema is older than this run-cron's: `run-cron migrate` upgrades it."""

    def __init__(self, database: str, found: int, expected: int) -> None:
        self.found = found
        self.expected = expected
        super().__init__(database, f"schema version {found} is older than this run-cron's ({expected}): "
                                   "run `run-cron migrate` to upgrade it")
