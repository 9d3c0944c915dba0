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
    if not state.quiet:
        for item in result.failed:
            click.echo(f"run-cron: {item.kind} {item.name} {item.uuid or ''} {item.outcome}: {item.error}",
                       err=True)
        if result.error:
            click.echo(f"run-cron: error: {result.error}", err=True)
    if result.timed_out and state.verbose:
        click.echo("run-cron: stopped at the time limit", err=True)
    ctx.exit(result.exit_code)


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


@cli.command("list")
@config_option
@json_option
@click.pass_obj
def list_jobs(state: State, config_path: Optional[str], as_json: bool) -> None:
    """Every periodic job with its schedule, last run, last outcome and next due time."""
    from .registry import registry
    from .views import job_rows, render_table

    config = state.config(config_path)
    rows = job_rows(config, registry)
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(render_table(rows, ["name", "schedule", "last_run", "last_outcome", "next_due"]))


@cli.command()
@config_option
@click.argument("message_type", metavar="TYPE")
@click.argument("payload", metavar="[PAYLOAD_JSON]", required=False)
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--delay", type=click.FloatRange(min=0), default=0, metavar="SECONDS", help="Run no sooner.")
@click.option("--key", default=None, help="De-duplicate: return the live message with this key.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--owner", default=None, help="Who the message belongs to (for example user:7).")
@click.pass_obj
def enqueue(state: State, config_path: Optional[str], message_type: str, payload: Optional[str], priority: int,
            delay: float, key: Optional[str], max_attempts: int, owner: Optional[str]) -> None:
    """Queue a message of TYPE with a JSON payload; prints its uuid."""
    data = None
    if payload is not None:
        import json

        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise CliError(f"PAYLOAD_JSON is not valid JSON: {exc}") from None
    with state.queue(config_path) as queue:
        click.echo(queue.enqueue(message_type, data, priority=priority, delay=delay, key=key,
                                 max_attempts=max_attempts, owner=owner))


@cli.command()
@config_option
@click.option("--status", type=click.Choice(["new", "pending", "completed", "failed", "cancelled"]))
@click.option("--type", "message_type", metavar="TYPE")
@click.option("--owner")
@click.option("--limit", type=click.IntRange(min=1), default=None)
@json_option
@click.pass_obj
def jobs(state: State, config_path: Optional[str], status: Optional[str], message_type: Optional[str],
         owner: Optional[str], limit: Optional[int], as_json: bool) -> None:
    """Queued messages with status and progress, newest first."""
    from .views import message_rows, render_table

    with state.queue(config_path) as queue:
        found = queue.jobs(owner=owner, status=status, type=message_type, limit=limit, details=as_json)
        if as_json:
            import json

            click.echo(json.dumps([view.to_json() for view in found], indent=2))
            return
        click.echo(render_table(message_rows(found),
                                ["uuid", "type", "status", "progress", "attempts", "owner", "created"]))


@cli.command()
@config_option
@click.argument("uuid")
@json_option
@click.pass_obj
def show(state: State, config_path: Optional[str], uuid: str, as_json: bool) -> None:
    """One message with its checkpoint, attempts, errors, warnings and attachments."""
    from .views import describe_message

    with state.queue(config_path) as queue:
        view = queue.get(uuid)
        if as_json:
            import json

            click.echo(json.dumps(view.to_json(), indent=2))
        else:
            click.echo(describe_message(view))


@cli.command()
@config_option
@click.argument("uuid", required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed message.")
@click.pass_obj
def retry(state: State, config_path: Optional[str], uuid: Optional[str], all_failed: bool) -> None:
    """Put a failed message (same uuid) back to new with fresh attempts."""
    if bool(uuid) == all_failed:
        raise CliError("give either a UUID or --failed")
    with state.queue(config_path) as queue:
        if all_failed:
            count = queue.retry_failed()
            if state.verbose:
                click.echo(f"run-cron: {count} failed message(s) queued again", err=True)
        else:
            queue.retry(uuid)


@cli.command()
@config_option
@click.argument("uuid")
@click.pass_obj
def cancel(state: State, config_path: Optional[str], uuid: str) -> None:
    """Cancel a new or running message (a running handler stops at its next checkpoint)."""
    with state.queue(config_path) as queue:
        queue.cancel(uuid)


@cli.command()
@config_option
@click.argument("uuid")
@click.argument("name")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE.")  # no click.Path: it calls gettext at import
@click.pass_obj
def attachment(state: State, config_path: Optional[str], uuid: str, name: str, output: Optional[str]) -> None:
    """Write one attachment of a message to stdout or FILE."""
    with state.queue(config_path) as queue:
        chunks = queue.attachment(uuid, name)
        if output:
            try:
                handle = open(output, "wb")  # noqa: SIM115 (closed by the `with` below)
            except OSError as exc:
                raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
            with handle:
                for chunk in chunks:
                    handle.write(chunk)
        else:
            stream = sys.stdout.buffer
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()


@cli.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port).")
@click.pass_obj
def serve(state: State, config_path: Optional[str], host: str, port: int) -> None:
    """Serve the HTTP trigger (/run), /health and the status page, for trying them locally."""
    from .web import make_app, make_server

    config = state.config(config_path)
    server = make_server(make_app(config), host, port)
    click.echo(f"run-cron: serving on http://{host}:{server.server_port}{config.http.prefix}/ "
               "(Ctrl-C to stop)", err=True)
    if not config.http.token:
        click.echo("run-cron: no [http] token configured: /run and the status page answer 404", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


@cli.command()
@config_option
@click.option("--every", type=int, default=1, show_default=True, metavar="MINUTES",
              help="Minutes between ticks, for hosts that allow only every 5 or 15 minutes.")
@click.option("--print", "print_only", is_flag=True, help="Print the line (for a control panel); change nothing.")
@click.option("--remove", is_flag=True, help="Take this installation's line out again.")
@click.option("--tab-file", metavar="PATH",
              help="Edit this crontab file instead of the user's crontab.")
@click.pass_obj
def install(state: State, config_path: Optional[str], every: int, print_only: bool, remove: bool,
            tab_file: Optional[str]) -> None:
    """Add the crontab line that runs a tick (once; the user's other lines stay as they are)."""
    from .config import find_config_path
    from .crontab_install import build_entry
    from .crontab_install import install as add_line
    from .crontab_install import remove as remove_line

    if print_only and remove:
        raise CliError("give either --print or --remove")
    if remove:  # even with a configuration that no longer loads
        path = find_config_path(config_path or state.config_path)
    else:
        path = state.config(config_path, load_jobs=False).path
    entry = build_entry(path, every)
    if print_only:
        click.echo(entry.line)
        return
    change = (remove_line if remove else add_line)(entry, tab_file)
    if not state.quiet:
        done = {"installed": "installed in", "updated": "updated in", "unchanged": "already in",
                "removed": "removed from", "absent": "not in"}[change.action]
        click.echo(f"run-cron: {done} {change.target}: {entry.line}")


@cli.command()
@config_option
@json_option
@click.pass_obj
def status(state: State, config_path: Optional[str], as_json: bool) -> None:
    """Health for monitoring; exit 0 OK, 1 WARNING, 2 CRITICAL (the Nagios convention).

    WARNING: failed messages, or periodic jobs that failed or are overdue. CRITICAL: no tick finished
    within [run-cron] stale_after seconds, or none ever.
    """
    from .registry import registry
    from .status import check, render

    config = state.config(config_path)
    result = check(config, registry)
    if as_json:
        import json

        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render(result, config.tz))
    sys.exit(result.code)


@cli.command()
@config_option
@click.option("--time-limit", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Hard limit of each tick (default: the configuration's time_limit; 0: none).")
@click.option("--sleep", type=click.FloatRange(min=0.05), default=5.0, show_default=True, metavar="SECONDS",
              help="Pause between ticks while there is nothing to do.")
@click.pass_obj
def worker(state: State, config_path: Optional[str], time_limit: Optional[float], sleep: float) -> None:
    """Tick in a loop, as a service (systemd); stops after the current tick on SIGTERM or SIGINT.

    Shares the lock with crontab ticks: both may be installed, no work runs twice.
    """
    from .eventlog import TickLog
    from .registry import registry
    from .service import run_worker, stop_on_signals

    config = state.config(config_path)
    events = TickLog("worker", Reporter(state.verbose))

    def finished(result: Any) -> None:
        events.finished(result)
        if not state.quiet:
            for item in result.failed:
                click.echo(f"run-cron: {item.kind} {item.name} {item.uuid or ''} {item.outcome}: {item.error}",
                           err=True)
            if result.error:
                click.echo(f"run-cron: error: {result.error}", err=True)

    with stop_on_signals() as stop:
        run_worker(config, registry, stop, time_limit=time_limit, sleep=sleep, on_event=events, on_result=finished)


@cli.command()
@config_option
@click.option("--job", "name", metavar="NAME", help="Only runs of this job, or attempts of this message type.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_obj
def history(state: State, config_path: Optional[str], name: Optional[str], limit: int, as_json: bool) -> None:
    """Every run of a periodic job and every message attempt, newest first."""
    from .history import history as read_history
    from .history import table_rows
    from .views import render_table

    config = state.config(config_path, load_jobs=False)
    entries = read_history(config, name, limit)
    if as_json:
        import json

        click.echo(json.dumps([entry.to_json() for entry in entries], indent=2))
        return
    click.echo(render_table(table_rows(entries, config.tz),
                            ["started", "kind", "name", "uuid", "attempt", "outcome", "duration", "error"]))


@cli.command()
@config_option
@click.option("--failed", "failed", is_flag=True,
              help="Also delete every failed message, with its history and attachments.")
@click.pass_obj
def purge(state: State, config_path: Optional[str], failed: bool) -> None:
    """Delete now what the daily run-cron.prune job deletes: finished runs older than retention_days."""
    from .retention import run_now

    config = state.config(config_path, load_jobs=False)
    pruned, failed_count = run_now(config, failed)
    if not state.quiet:
        click.echo(f"run-cron: deleted {pruned.messages} finished message(s) and {pruned.job_runs} job run(s) "
                   f"older than {config.retention_days:g} days"
                   + (f", and {failed_count} failed message(s)" if failed else ""))


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="run-cron")


if __name__ == "__main__":
    main()
