"""What the group and every subcommand share: state, common options, the error line, tick output."""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional

import click

EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(click.ClickException):
    """One clean line on stderr and exit code 2, never a traceback."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"run-cron: error: {self.format_message()}", err=True)


class State:
    """Options of the group, shared with the subcommands (which may repeat -v, -q and --config).

    `source` is where a framework keeps the configuration instead of an INI file (Django's settings,
    see cronjobs.contrib.django): an object with `load() -> Config`, `load_jobs(config)` (its own job
    discovery, after the configured jobs modules) and `crontab_entry(every) -> Entry` (the line that
    calls the framework's command). `--config` still names an INI file and wins over the source.
    """

    def __init__(self, config_path: Optional[str], verbose: int, quiet: bool, source: Any = None,
                 started: Optional[float] = None) -> None:
        self.config_path = config_path
        self.started = started  # time.monotonic() at the start of the process: the hard limit counts from it
        self._verbose = verbose
        self.quiet = quiet
        self.source = source
        self._config: Any = None

    def from_source(self, override: Optional[str] = None) -> bool:
        """True when the configuration comes from the source, not from an INI file."""
        return self.source is not None and not (override or self.config_path)

    @property
    def verbose(self) -> int:
        return 0 if self.quiet else self._verbose

    def add_verbose(self, count: int) -> None:
        self._verbose += count

    def config(self, override: Optional[str] = None, load_jobs: bool = True) -> Any:
        from ..host.config import find_config_path, load_config
        from ..registry import load_modules

        if self._config is None:
            if self.from_source(override):
                self._config = self.source.load()
            else:
                self._config = load_config(find_config_path(override or self.config_path))
            setup_logging(self._config, self.verbose)
            if load_jobs:
                if self._config.env_file:
                    from ..host.envfile import load

                    load(self._config.env_file, self._config.path)
                load_modules(self._config.jobs, self._config.python_path, self._config.path)
                if self.source is not None:
                    self.source.load_jobs(self._config)
                from ..registry import registry
                from ..runtime.retention import register

                register(registry, self._config)
        return self._config

    def queue(self, override: Optional[str] = None) -> Any:
        from ..messages.queue import Queue
        from ..store import connect_store

        config = self.config(override, load_jobs=False)
        database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
        return Queue(database, models)


def setup_logging(config: Any, verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("run-cron: %(message)s"))
    handler.setLevel(level)
    handler.addFilter(lambda record: record.name != "cronjobs.events")  # for the log file (eventlog.py)
    if not verbose:
        handler.addFilter(_not_job_warnings)
    root = logging.getLogger("cronjobs")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    if config is not None and getattr(config.log, "file", None):
        from ..host.logs import add_file_handler

        add_file_handler(root, config)


def _not_job_warnings(record: logging.LogRecord) -> bool:
    # Without -v a successful tick prints nothing (cron mails any output): what jobs log below ERROR,
    # ctx.warn included, goes to the log file, the history, `status` and the page, not to stderr.
    return record.levelno >= logging.ERROR or not record.name.startswith("cronjobs.run.")


config_option = click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Configuration file (default: $RUN_CRON_CONFIG, else ./config/run-cron.ini).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _more_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    state = ctx.find_object(State)
    if value and state is not None:
        state.add_verbose(value)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    state = ctx.find_object(State)
    if value and state is not None:
        state.quiet = True


def common_options(command: Any) -> Any:
    """--config, -v and -q, accepted after the subcommand as well as before it."""
    command = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet,
                           help="Print nothing but errors.")(command)
    command = click.option("-v", "--verbose", count=True, expose_value=False, callback=_more_verbose,
                           help="Say what happens (-vv: more).")(command)
    return config_option(command)


def print_failures(result: Any, quiet: bool) -> None:
    """One line on stderr per failed job or message, and the worker's own error: what cron mails."""
    if quiet:
        return
    for item in result.failed:
        click.echo(f"run-cron: {item.kind} {item.name} {item.uuid or ''} {item.outcome}: {item.error}", err=True)
    if result.error:
        click.echo(f"run-cron: error: {result.error}", err=True)


class Reporter:
    """Prints tick events: each run at -v, live progress on a terminal with --force."""

    def __init__(self, verbose: int, show_progress: bool = False) -> None:
        self.verbose = verbose
        self.show_progress = show_progress
        self._labels: dict[str, str] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if self.show_progress and kind in ("start", "progress", "end"):
            self._progress(event)
        elif kind == "progress" or not self.verbose:
            return
        elif kind == "start":
            click.echo(f"run-cron: start {event['kind']} {event['name']} {event.get('uuid', '')}"
                       f"{' (' + event['reason'] + ')' if event.get('reason') else ''}", err=True)
        elif kind == "end":
            click.echo(f"run-cron: end {event['kind']} {event['name']}: {event['outcome']}"
                       f" in {event.get('duration', 0):.3f} s", err=True)
        elif kind == "skipped":
            click.echo(f"run-cron: skipped {event['kind']} {event['name']}: {event['reason']}", err=True)
        elif kind == "recovered":
            click.echo(f"run-cron: recovered {event['kind']} {event['name']} {event['uuid']}: "
                       f"{event['outcome']}", err=True)


    def _progress(self, event: dict[str, Any]) -> None:
        """One line per run, rewritten in place: `job name  42.0%`, then its outcome and duration."""
        kind, key = event["event"], str(event.get("uuid") or event.get("name"))
        if kind == "start":
            self._labels[key] = label = f"{event['kind']} {event['name']}"
            line = f"{label} ..."
        elif kind == "progress":
            line = f"{self._labels.get(key, key)} {event.get('progress', 0):5.1f}%"
        else:
            label = self._labels.pop(key, f"{event.get('kind')} {event.get('name')}")
            line = f"{label}: {event.get('outcome')} in {event.get('duration') or 0:.2f} s"
        click.echo(f"\r{line}\033[K", err=True, nl=kind == "end")


def tick(ctx: click.Context, state: State, config: Any, registry: Any, forced: Optional[list[Any]],
         time_limit: Optional[float]) -> None:
    """Run one tick (of `forced` jobs only, if given), report it and exit with its code."""
    from ..runtime.eventlog import TickLog
    from ..runtime.tick import run_tick

    reporter = TickLog("cli", Reporter(state.verbose, show_progress=bool(forced) and sys.stderr.isatty()))
    result = run_tick(config, registry, time_limit=time_limit, force=forced, trigger="cli",
                      started=state.started, on_event=reporter)
    reporter.finished(result)
    if result.status == "locked":
        if state.verbose:
            click.echo("run-cron: another tick is running; exiting", err=True)
        return
    if result.status == "idle" and state.verbose:
        click.echo("run-cron: nothing due", err=True)
    print_failures(result, state.quiet)
    if result.timed_out and state.verbose:
        click.echo("run-cron: stopped at the time limit", err=True)
    ctx.exit(result.exit_code)
