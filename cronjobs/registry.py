"""Declaring periodic jobs and message handlers, and importing the modules that declare them.

Kept free of heavy imports: every idle tick imports this module and the user's job modules, so cron
expressions are stored as text here and only parsed (by python-crontab) when a tick has work to do.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable, Optional, TypeVar, Union, overload

from .constants import FAILED_OUTCOMES, INTERVALS, schedule_key  # noqa: F401 (re-exported)
from .errors import JobDefinitionError, JobLoadError

F = TypeVar("F", bound=Callable[..., Any])


class _Frozen:
    """Immutable records with a frozen dataclass's constructor, equality, hash and repr, built without
    `dataclasses` (a frozen dataclass costs about 0.5 ms at import, on every tick). `func` is left out of
    equality and repr, as before."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields if name != "func")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields if name != "func")
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")


class Job(_Frozen):
    """A periodic job: a function of `ctx` with an interval or a cron expression."""

    __slots__ = ("name", "func", "schedule", "module", "cli_only")
    _fields = __slots__
    name: str
    func: Callable[..., Any]
    schedule: str
    module: Optional[str]
    cli_only: bool

    def __init__(self, name: str, func: Callable[..., Any], schedule: str, module: Optional[str] = None,
                 cli_only: bool = False) -> None:
        setter = object.__setattr__
        setter(self, "name", name)
        setter(self, "func", func)
        setter(self, "schedule", schedule)
        setter(self, "module", module)
        setter(self, "cli_only", cli_only)

    @property
    def is_interval(self) -> bool:
        return self.schedule in INTERVALS

    @property
    def group(self) -> int:
        """Position of the job's group in a tick: intervals by period, cron expressions last."""
        return INTERVALS.index(self.schedule) if self.is_interval else len(INTERVALS)


class Handler(_Frozen):
    """A handler for queued messages of one type: a function of `(ctx, payload)`."""

    __slots__ = ("type", "func", "module", "cli_only")
    _fields = __slots__
    type: str
    func: Callable[..., Any]
    module: Optional[str]
    cli_only: bool

    def __init__(self, type: str, func: Callable[..., Any], module: Optional[str] = None,
                 cli_only: bool = False) -> None:
        setter = object.__setattr__
        setter(self, "type", type)
        setter(self, "func", func)
        setter(self, "module", module)
        setter(self, "cli_only", cli_only)


class Registry:
    """The jobs and handlers declared so far, in declaration order."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.handlers: dict[str, Handler] = {}
        #: Called in the supervisor just before it forks a worker: an ORM closes its connections here,
        #: so that the worker never shares a socket or an SQLite handle with the supervisor.
        self.fork_hooks: list[Callable[[], None]] = []

    def before_fork(self, hook: Callable[[], None]) -> None:
        """Call `hook` before each fork of a worker (once, however often it is added)."""
        if hook not in self.fork_hooks:
            self.fork_hooks.append(hook)

    def add_job(self, job: Job) -> None:
        other = self.jobs.get(job.name)
        if other is not None and other.func is not job.func:
            raise JobDefinitionError(
                job.module, job.name, f"a job of this name is already declared in {other.module}"
            )
        self.jobs[job.name] = job

    def add_handler(self, handler: Handler) -> None:
        other = self.handlers.get(handler.type)
        if other is not None and other.func is not handler.func:
            raise JobDefinitionError(
                handler.module,
                handler.type,
                f"a handler for this message type is already declared in {other.module}",
            )
        self.handlers[handler.type] = handler

    def ordered_jobs(self) -> list[Job]:
        """Jobs in tick order: yearly ... minutely, then cron jobs; declaration order within a group."""
        return sorted(self.jobs.values(), key=lambda job: job.group)  # sorted() is stable

    def select(self, what: Iterable[str]) -> list[Job]:
        """Jobs named by `--force` values: an interval name, a job name or `all`."""
        from .errors import UnknownJobError

        chosen: set[str] = set()
        for item in what:
            if item == "all":
                chosen.update(self.jobs)
            elif item in INTERVALS:
                chosen.update(name for name, job in self.jobs.items() if job.schedule == item)
            elif item in self.jobs:
                chosen.add(item)
            else:
                raise UnknownJobError(item)
        return [job for job in self.ordered_jobs() if job.name in chosen]

    def validate(self) -> None:
        """Parse every cron expression; raises JobDefinitionError naming the module and job."""
        from .schedule import check_expression

        for job in self.jobs.values():
            if not job.is_interval:
                problem = check_expression(job.schedule)
                if problem:
                    raise JobDefinitionError(job.module, job.name, problem)

    def clear(self) -> None:
        self.jobs.clear()
        self.handlers.clear()


#: The registry the decorators write to. Tests and embedders may build their own.
registry = Registry()


def _declare(schedule: str, func: F, name: Optional[str], cli_only: bool) -> F:
    job = Job(
        name=name or func.__name__,
        func=func,
        schedule=schedule,
        module=getattr(func, "__module__", None),
        cli_only=cli_only,
    )
    registry.add_job(job)
    func.cronjob = job  # type: ignore[attr-defined]
    return func


def _interval(schedule: str) -> Any:
    @overload
    def decorator(func: F) -> F: ...

    @overload
    def decorator(*, name: Optional[str] = None, cli_only: bool = False) -> Callable[[F], F]: ...

    def decorator(
        func: Optional[F] = None, *, name: Optional[str] = None, cli_only: bool = False
    ) -> Union[F, Callable[[F], F]]:
        if func is not None:
            return _declare(schedule, func, name, cli_only)
        return lambda f: _declare(schedule, f, name, cli_only)

    decorator.__name__ = schedule
    decorator.__doc__ = (f"Declare a {schedule} job: it runs once per period, and a period begins "
                         f"{_PERIOD[schedule]}. Usable bare or with name=...")
    return decorator


#: When each interval's period begins: the fire times of `schedule.INTERVAL_EXPRESSIONS`.
_PERIOD = {
    "yearly": "on 1 January at midnight (cron `0 0 1 1 *`)",
    "monthly": "on the 1st at midnight (cron `0 0 1 * *`)",
    "weekly": "on Monday at midnight, ISO weeks (cron `0 0 * * 1`; cron's @weekly is Sunday)",
    "daily": "at midnight (cron `0 0 * * *`)",
    "hourly": "at minute 0 of every hour, both copies of a repeated hour included (cron `0 * * * *`)",
    "minutely": "every minute (cron `* * * * *`)",
}

yearly = _interval("yearly")
monthly = _interval("monthly")
weekly = _interval("weekly")
daily = _interval("daily")
hourly = _interval("hourly")
minutely = _interval("minutely")


def cron(expression: str, *, name: Optional[str] = None, cli_only: bool = False) -> Callable[[F], F]:
    """Declare a job run at the fire times of a cron expression: five fields or a macro (`@daily`), read
    and fired, DST changes included, as Debian's cron daemon does (see `schedule` and `cronspec`)."""
    normalized = " ".join(str(expression).split())

    def decorator(func: F) -> F:
        if not normalized:
            raise JobDefinitionError(
                getattr(func, "__module__", None), name or func.__name__, "empty cron expression"
            )
        return _declare(normalized, func, name, cli_only)

    return decorator


def handler(message_type: str, *, cli_only: bool = False) -> Callable[[F], F]:
    """Declare the handler of queued messages of `message_type`: a function of `(ctx, payload)`."""
    if not isinstance(message_type, str) or not message_type:
        # A bare `@cronjobs.handler` passes the function here and would register nothing.
        func = message_type if callable(message_type) else None
        raise JobDefinitionError(
            getattr(func, "__module__", None), getattr(func, "__name__", repr(message_type)),
            "@cronjobs.handler needs the message type: @cronjobs.handler(\"mail.send\")",
        )

    def decorator(func: F) -> F:
        registry.add_handler(
            Handler(
                type=message_type,
                func=func,
                module=getattr(func, "__module__", None),
                cli_only=cli_only,
            )
        )
        return func

    return decorator


def load_modules(modules: Iterable[str], python_path: Iterable[str], config_path: str) -> None:
    """Import the jobs modules named in the configuration, after putting `python_path` first."""
    for directory in reversed(list(python_path)):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    for module in modules:
        try:
            importlib.import_module(module)
        except JobDefinitionError:
            raise
        except Exception as exc:  # any import-time failure is the user's module, reported in one line
            raise JobLoadError(config_path, module, exc) from exc
