"""The `run-cron` command: parses arguments, calls the core, prints, and picks the exit code.

Exit codes: 0 success (also: nothing due, another tick holds the lock); 1 a job or message failed or
timed out; 2 usage, configuration or database error. Heavy modules are imported inside the commands
that need them, so an idle tick pays only for click, filelock and sqlite3.
"""

from __future__ import annotations

import time

_STARTED = time.monotonic()  # the hard time limit counts from here, as close to exec as we can get

import logging  # noqa: E402
import sys  # noqa: E402
from typing import Any, Optional  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
from .errors import CronjobsError  # noqa: E402

EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(click.ClickException):
    """One clean line on stderr and exit code 2, never a traceback."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"run-cron: error: {self.format_message()}", err=True)


class Group(click.Group):
    """The `run-cron` group. Its subcommands live in cronjobs.commands, imported only when one is
    named or listed (help, completion): a tick runs none of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .commands import COMMANDS

        return sorted(COMMANDS.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        from .commands import COMMANDS

        return COMMANDS.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CronjobsError as exc:
            raise CliError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("run-cron: interrupted", err=True)
            sys.exit(130)


class State:
    """Options of the group, shared with the subcommands."""

    def __init__(self, config_path: Optional[str], verbose: int, quiet: bool) -> None:
        self.config_path = config_path
        self.verbose = 0 if quiet else verbose
        self.quiet = quiet
        self._config: Any = None

    def config(self, override: Optional[str] = None, load_jobs: bool = True) -> Any:
        from .config import find_config_path, load_config
        from .registry import load_modules

        if self._config is None:
            self._config = load_config(find_config_path(override or self.config_path))
            setup_logging(self._config, self.verbose)
            if load_jobs:
                load_modules(self._config.jobs, self._config.python_path, self._config.path)
                from .registry import registry
                from .retention import register

                register(registry, self._config)
        return self._config

    def queue(self, override: Optional[str] = None) -> Any:
        from .queue import Queue
        from .store import connect_store

        config = self.config(override, load_jobs=False)
        database, models = connect_store(config.database, config.busy_timeout, config.synchronous)
        return Queue(database, models)


def setup_logging(config: Any, verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("run-cron: %(message)s"))
    handler.setLevel(level)
    handler.addFilter(lambda record: record.name != "cronjobs.events")  # for the log file (eventlog.py)
    root = logging.getLogger("cronjobs")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    if config is not None and getattr(config.log, "file", None):
        from .logs import add_file_handler

        add_file_handler(root, config)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # What click.version_option prints, without the gettext lookup it makes when declared (it imports
    # locale and searches for .mo files: time every tick, idle ones included, paid at import).
    if value and not ctx.resilient_parsing:
        click.echo(f"run-cron, version {__version__}", color=ctx.color)
        ctx.exit()


def _print_help(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # click's own help option, declared here because click builds that one at parse time with a gettext
    # call; subcommands keep click's (from help_option_names), built only when they are invoked.
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


config_option = click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Configuration file (default: $RUN_CRON_CONFIG, else ./config/run-cron.ini).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(cls=Group, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--force", "force", multiple=True, metavar="WHAT",
              help="Run these jobs now: an interval (daily ...), a job name, or 'all'. Repeatable.")
@click.option("--time-limit", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Hard limit for this tick (default: the configuration's time_limit; 0: none).")
@click.option("--dry-run", is_flag=True, help="Print what would run now and why; change nothing.")
@click.option("-v", "--verbose", count=True, help="Say what happens (-vv: more).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but configuration errors.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
@click.option("-h", "--help", is_flag=True, expose_value=False, is_eager=True, callback=_print_help,
              help="Show this message and exit.")
@click.pass_context
def cli(ctx: click.Context, config_path: Optional[str], force: tuple[str, ...], time_limit: Optional[float],
        dry_run: bool, verbose: int, quiet: bool) -> None:
    """Run one tick: the due periodic jobs in order, then queued messages, under a hard time limit.

    Call it every minute from cron. A second copy exits at once while one runs.
    """
    state = ctx.obj = State(config_path, verbose, quiet)
    if ctx.invoked_subcommand is not None:
        return
    config = state.config()
    from .registry import registry

    forced = registry.select(force) if force else None
    if dry_run:
        _print_dry_run(config, registry, forced)
        return
    from .eventlog import TickLog
    from .tick import run_tick

    reporter = TickLog("cli", Reporter(state.verbose, show_progress=bool(force) and sys.stderr.isatty()))
    result = run_tick(config, registry, time_limit=time_limit, force=forced, trigger="cli",
                      started=_STARTED, on_event=reporter)
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


def _print_dry_run(config: Any, registry: Any, forced: Optional[list[Any]]) -> None:
    from .views import dry_run_plan

    for line in dry_run_plan(config, registry, forced):
        click.echo(line)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="run-cron")


if __name__ == "__main__":
    main()
