"""Declaring periodic jobs and message handlers, and importing the modules that declare them.

Kept free of heavy imports: every idle tick imports this module and the user's job modules, so cron
expressions are stored as text here and only parsed (by python-crontab) when a tick has work to do.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable, Optional, TypeVar, Union

from .constants import FAILED_OUTCOMES, INTERVALS, MANUAL, schedule_key  # noqa: F401 (re-exported)
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
    """A periodic job: a function of `ctx` with an interval or a cron expression.

    `schedule` is what the job was declared with ("daily", a cron expression, or "manual") and decides
    its place in a tick; `spec` is what the scheduling rules compute its fire times from (the cron
    expression of `daily(at="03:00")`, else `schedule`). `timezone` overrides the configured zone and
    `time_limit` bounds each of its runs (see `jobopts`).
    """

    __slots__ = ("name", "func", "schedule", "module", "cli_only", "spec", "timezone", "time_limit",
                 "catch_up", "max_catch_up", "jitter")
    _fields = __slots__
    name: str
    func: Callable[..., Any]
    schedule: str
    module: Optional[str]
    cli_only: bool
    spec: str
    timezone: Optional[str]
    time_limit: Optional[float]
    catch_up: str
    max_catch_up: int
    jitter: int

    def __init__(self, name: str, func: Callable[..., Any], schedule: str, module: Optional[str] = None,
                 cli_only: bool = False, spec: Optional[str] = None, timezone: Optional[str] = None,
                 time_limit: Optional[float] = None, catch_up: str = "latest", max_catch_up: int = 10,
                 jitter: int = 0) -> None:
        setter = object.__setattr__
        setter(self, "name", name)
        setter(self, "func", func)
        setter(self, "schedule", schedule)
        setter(self, "module", module)
        setter(self, "cli_only", cli_only)
        setter(self, "spec", spec or schedule)
        setter(self, "timezone", timezone)
        setter(self, "time_limit", time_limit)
        setter(self, "catch_up", catch_up)
        setter(self, "max_catch_up", max_catch_up)
        setter(self, "jitter", jitter)

    @property
    def is_interval(self) -> bool:
        return self.schedule in INTERVALS

    @property
    def manual(self) -> bool:
        """Runs only when named: `--force NAME` or `run-cron run NAME`."""
        return self.schedule == MANUAL

    @property
    def group(self) -> int:
        """Position of the job's group in a tick: intervals by period, cron expressions last."""
        return INTERVALS.index(self.schedule) if self.is_interval else len(INTERVALS)

    @property
    def label(self) -> str:
        """The schedule as listings show it: `daily at 03:00 (0 3 * * *)`, `weekly`, a cron expression."""
        return self.schedule if self.spec == self.schedule else f"{self.schedule} ({self.spec})"

    def key(self, tz_name: str) -> str:
        """What the job's cached next-due time depends on (see `constants.schedule_key`)."""
        spec = self.spec
        if self.jitter or self.catch_up != "latest":  # defaults keep the keys of databases from before
            spec = f"{spec}|{self.catch_up}:{self.max_catch_up}|jitter:{self.jitter}"
        return schedule_key(spec, self.timezone or tz_name)


class Handler(_Frozen):
    """A handler for queued messages of one type: a function of `(ctx, payload)`."""

    __slots__ = ("type", "func", "module", "cli_only", "rate")
    _fields = __slots__
    type: str
    func: Callable[..., Any]
    module: Optional[str]
    cli_only: bool
    rate: Optional[tuple[int, float]]  # at most this many starts per this many seconds (see `rates`)

    def __init__(self, type: str, func: Callable[..., Any], module: Optional[str] = None,
                 cli_only: bool = False, rate: Optional[tuple[int, float]] = None) -> None:
        setter = object.__setattr__
        setter(self, "type", type)
        setter(self, "func", func)
        setter(self, "module", module)
        setter(self, "cli_only", cli_only)
        setter(self, "rate", rate)


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

    def scheduled_jobs(self) -> list[Job]:
        """The jobs that run by themselves, in tick order: all but `@cronjobs.manual` ones."""
        return [job for job in self.ordered_jobs() if not job.manual]

    def ordered_jobs(self) -> list[Job]:
        """Jobs in tick order: yearly ... minutely, then cron jobs; declaration order within a group."""
        return sorted(self.jobs.values(), key=lambda job: job.group)  # sorted() is stable

    def select(self, what: Iterable[str]) -> list[Job]:
        """Jobs named by `--force` values: an interval name, a job name or `all`."""
        from .errors import UnknownJobError

        chosen: set[str] = set()
        for item in what:
            if item == "all":
                chosen.update(name for name, job in self.jobs.items() if not job.manual)
            elif item in INTERVALS:
                chosen.update(name for name, job in self.jobs.items() if job.schedule == item)
            elif item in self.jobs:
                chosen.add(item)
            else:
                raise UnknownJobError(item)
        return [job for job in self.ordered_jobs() if job.name in chosen]

    def validate(self) -> None:
        """Parse every cron expression and time zone; raises JobDefinitionError naming the module and job."""
        from .scheduling.schedule import check_expression, get_timezone

        for job in self.jobs.values():
            if not job.is_interval and not job.manual:
                problem = check_expression(job.spec)
                if problem:
                    raise JobDefinitionError(job.module, job.name, problem)
            if job.timezone:
                try:
                    get_timezone(job.timezone)
                except ValueError as exc:
                    raise JobDefinitionError(job.module, job.name, f"timezone={job.timezone!r}: {exc}") from None

    def clear(self) -> None:
        self.jobs.clear()
        self.handlers.clear()


#: The registry the decorators write to. Tests and embedders may build their own.
registry = Registry()


def _declare(schedule: str, func: F, name: Optional[str], cli_only: bool, **options: Any) -> F:
    job = Job(
        name=name or func.__name__,
        func=func,
        schedule=schedule,
        module=getattr(func, "__module__", None),
        cli_only=cli_only,
        **options,
    )
    registry.add_job(job)
    func.cronjob = job  # type: ignore[attr-defined]
    return func


def _options(schedule: str, func: Any, name: Optional[str], spec: Optional[str] = None, *,
             at: Any = None, day: Any = None, month: Any = None, timezone: Optional[str] = None,
             time_limit: Optional[float] = None, catch_up: str = "latest", max_catch_up: int = 10,
             jitter: int = 0) -> dict[str, Any]:
    """The Job fields of a decorator's options; JobDefinitionError names the module and job."""
    if (at, day, month, timezone, time_limit, catch_up, max_catch_up, jitter) == (
            None, None, None, None, None, "latest", 10, 0):  # a bare decorator: no need to import jobopts
        return {"spec": spec}
    from .scheduling.jobopts import check_options, interval_spec

    try:
        spec = interval_spec(schedule, at, day, month) or spec
        check_options(time_limit, catch_up, max_catch_up, jitter)
        if timezone is not None and (not isinstance(timezone, str) or not timezone.strip()):
            raise ValueError(f"timezone={timezone!r}: expected an IANA zone name such as \"America/New_York\"")
    except ValueError as exc:
        raise JobDefinitionError(getattr(func, "__module__", None), str(name or getattr(func, "__name__", "?")),
                                 str(exc)) from None
    return {"spec": spec, "timezone": timezone, "time_limit": time_limit, "catch_up": catch_up,
            "max_catch_up": max_catch_up, "jitter": jitter}


def _interval(schedule: str) -> Any:
    def decorator(func: Optional[F] = None, *, name: Optional[str] = None, cli_only: bool = False,
                  **options: Any) -> Union[F, Callable[[F], F]]:
        if func is not None:
            return _declare(schedule, func, name, cli_only, **_options(schedule, func, name))

        def wrap(f: F) -> F:
            return _declare(schedule, f, name, cli_only, **_options(schedule, f, name, **options))

        return wrap

    decorator.__name__ = schedule
    decorator.__doc__ = (f"Declare a {schedule} job: it runs once per period, and a period begins "
                         f"{_PERIOD[schedule]}. Usable bare or with options: name=, cli_only=, at=, "
                         "timezone=, time_limit=, catch_up=, max_catch_up=, jitter= (see README).")
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


def cron(expression: str, *, name: Optional[str] = None, cli_only: bool = False,
         **options: Any) -> Callable[[F], F]:
    """Declare a job run at the fire times of a cron expression: five fields or a macro (`@daily`), read
    and fired, DST changes included, as Debian's cron daemon does (see `schedule` and `cronspec`).
    Options as for the interval decorators, except at=/day=."""
    normalized = " ".join(str(expression).split())

    def decorator(func: F) -> F:
        if not normalized:
            raise JobDefinitionError(
                getattr(func, "__module__", None), name or func.__name__, "empty cron expression"
            )
        return _declare(normalized, func, name, cli_only, **_options("cron", func, name, **options))

    return decorator


def manual(func: Optional[F] = None, *, name: Optional[str] = None, cli_only: bool = False,
           time_limit: Optional[float] = None) -> Any:
    """Declare a job that never runs by itself: only `run-cron --force NAME` or `run-cron run NAME`
    runs it (not `--force all`)."""

    def wrap(f: F) -> F:
        return _declare(MANUAL, f, name, cli_only, **_options(MANUAL, f, name, time_limit=time_limit))

    return wrap(func) if func is not None else wrap


def handler(message_type: str, *, cli_only: bool = False, rate: Optional[str] = None) -> Callable[[F], F]:
    """Declare the handler of queued messages of `message_type`: a function of `(ctx, payload)`.

    `rate="200/h"` (also /min, /d): messages beyond it wait in the queue without using attempts.
    """
    if not isinstance(message_type, str) or not message_type:
        # A bare `@cronjobs.handler` passes the function here and would register nothing.
        func = message_type if callable(message_type) else None
        raise JobDefinitionError(
            getattr(func, "__module__", None), getattr(func, "__name__", repr(message_type)),
            "@cronjobs.handler needs the message type: @cronjobs.handler(\"mail.send\")",
        )

    def decorator(func: F) -> F:
        parsed = None
        if rate is not None:
            from .control.rates import parse_rate

            try:
                parsed = parse_rate(rate)
            except ValueError as exc:
                raise JobDefinitionError(getattr(func, "__module__", None), message_type, str(exc)) from None
        registry.add_handler(
            Handler(
                type=message_type,
                func=func,
                module=getattr(func, "__module__", None),
                cli_only=cli_only,
                rate=parsed,
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
