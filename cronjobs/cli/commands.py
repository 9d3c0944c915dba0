"""The subcommands of `run-cron` (`list`, `enqueue`, `status`, ...), split from main.py so that a tick,
which runs none of them, does not build them: their ~40 click options cost about 1 ms at import, on
every tick. `main.Group` imports this module when a command name is looked up or help lists them.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from .options import CliError, Reporter, State, common_options, json_option, print_failures

#: Holds the subcommands; `main.Group.get_command` and `list_commands` read `COMMANDS.commands`.
COMMANDS = click.Group("run-cron")
command = COMMANDS.command
#: Old names, kept working exactly as before: `list` lists periodic jobs, `jobs` queued messages.
ALIASES = {"list": "periodic", "jobs": "messages"}


@command("periodic")
@common_options
@json_option
@click.pass_obj
def periodic(state: State, config_path: Optional[str], as_json: bool) -> None:
    """Every periodic job with its schedule, last run, last outcome and next due time (alias: list)."""
    from ..registry import registry
    from ..reports.views import job_rows, render_table

    config = state.config(config_path)
    rows = job_rows(config, registry)
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(render_table(rows, ["name", "schedule", "last_run", "last_outcome", "next_due", "paused"]))


@command()
@common_options
@click.argument("name", metavar="JOB|TYPE")
@json_option
@click.pass_obj
def why(state: State, config_path: Optional[str], name: str, as_json: bool) -> None:
    """Why a periodic job or message type did or did not run at the last ticks, and when it runs next."""
    from ..registry import registry
    from ..reports.why import explain, render

    answers = explain(state.config(config_path), registry, name)
    if as_json:
        import json

        click.echo(json.dumps([answer.to_json() for answer in answers], indent=2))
        return
    click.echo(render(answers))


@command()
@common_options
@click.argument("names", metavar="JOB|TYPE...", nargs=-1, required=True)
@click.pass_obj
def pause(state: State, config_path: Optional[str], names: tuple[str, ...]) -> None:
    """Stop running a periodic job, or taking messages of a type (they stay queued), until resume."""
    _pause_or_resume(state, config_path, names, resume=False)


@command()
@common_options
@click.argument("names", metavar="JOB|TYPE...", nargs=-1, required=True)
@click.pass_obj
def resume(state: State, config_path: Optional[str], names: tuple[str, ...]) -> None:
    """Undo `run-cron pause`: the job runs when due again, the type's messages are taken again."""
    _pause_or_resume(state, config_path, names, resume=True)


def _pause_or_resume(state: State, config_path: Optional[str], names: tuple[str, ...], resume: bool) -> None:
    import time

    from ..control import pauses
    from ..registry import registry

    state.config(config_path)
    targets = [(kind, name) for name in names
               for kind in pauses.kinds_of(name, registry.jobs, registry.handlers)]  # all checked first
    with state.queue(config_path) as queue:
        for kind, name in targets:
            label = "job" if kind == pauses.JOB else "message type"
            if resume:
                changed = pauses.resume(queue.db, kind, name)
                said = "resumed" if changed else "was not paused"
            else:
                changed = pauses.pause(queue.db, kind, name, time.time())
                said = "paused" if changed else "was paused already"
            if not state.quiet:
                click.echo(f"run-cron: {label} {name} {said}")


@command("run")
@common_options
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("--time-limit", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Hard limit for this tick (default: the configuration's time_limit; 0: none).")
@click.pass_context
def run_now(ctx: click.Context, config_path: Optional[str], names: tuple[str, ...],
            time_limit: Optional[float]) -> None:
    """Run these periodic jobs now, @cronjobs.manual ones included: the same as --force NAME."""
    from ..registry import registry
    from .options import tick

    state = ctx.obj
    config = state.config(config_path)
    tick(ctx, state, config, registry, registry.select(names), time_limit)


@command()
@common_options
@click.argument("message_type", metavar="TYPE")
@click.argument("payload", metavar="[PAYLOAD_JSON]", required=False)
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--delay", type=click.FloatRange(min=0), default=0, metavar="SECONDS", help="Run no sooner.")
@click.option("--key", default=None, help="De-duplicate: return the live message with this key.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--owner", default=None, help="Who the message belongs to (for example user:7).")
@click.option("--public", is_flag=True, help="List it for every owner, not only its own.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Label it (repeatable); see messages --tag.")
@click.option("--allow-unknown-type", is_flag=True,
              help="Queue it even if no jobs module declares a handler for TYPE (yet).")
@click.pass_obj
def enqueue(state: State, config_path: Optional[str], message_type: str, payload: Optional[str], priority: int,
            delay: float, key: Optional[str], max_attempts: int, owner: Optional[str], public: bool,
            tags: tuple[str, ...], allow_unknown_type: bool) -> None:
    """Queue a message of TYPE with a JSON object as payload; prints its uuid."""
    data = None
    if payload is not None:
        import json

        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise CliError(f"PAYLOAD_JSON is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CliError(f"PAYLOAD_JSON must be a JSON object such as '{{\"id\": 7}}', not {payload.strip()[:40]}")
    if not allow_unknown_type:
        from ..errors import UnknownMessageType
        from ..registry import registry

        state.config(config_path)
        if message_type not in registry.handlers:
            raise UnknownMessageType(message_type)
    with state.queue(config_path) as queue:
        click.echo(queue.enqueue(message_type, data, priority=priority, delay=delay, key=key,
                                 max_attempts=max_attempts, owner=owner, public=public, tags=list(tags)))


@command()
@common_options
@click.option("--status", type=click.Choice(["new", "pending", "completed", "failed", "cancelled"]))
@click.option("--type", "message_type", metavar="TYPE")
@click.option("--owner", help="This owner's messages and everyone's public ones.")
@click.option("--tag", metavar="TAG", help="Only messages with this tag.")
@click.option("--limit", type=click.IntRange(min=1), default=None)
@json_option
@click.pass_obj
def messages(state: State, config_path: Optional[str], status: Optional[str], message_type: Optional[str],
             owner: Optional[str], tag: Optional[str], limit: Optional[int], as_json: bool) -> None:
    """Queued messages with status and progress, newest first (alias: jobs)."""
    from ..reports.views import message_rows, render_table

    with state.queue(config_path) as queue:
        found = queue.jobs(owner=owner, status=status, type=message_type, limit=limit, details=as_json, tag=tag)
        if as_json:
            import json

            click.echo(json.dumps([view.to_json() for view in found], indent=2))
            return
        click.echo(render_table(message_rows(found, state.config(config_path, load_jobs=False).tz),
                                ["uuid", "type", "status", "progress", "attempts", "owner", "created"]))


@command()
@common_options
@click.argument("uuid")
@json_option
@click.pass_obj
def show(state: State, config_path: Optional[str], uuid: str, as_json: bool) -> None:
    """One message with its checkpoint, attempts, errors, warnings and attachments."""
    from ..reports.views import describe_message

    with state.queue(config_path) as queue:
        view = queue.get(uuid)
        if as_json:
            import json

            click.echo(json.dumps(view.to_json(), indent=2))
        else:
            click.echo(describe_message(view, state.config(config_path, load_jobs=False).tz))


@command()
@common_options
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


@command()
@common_options
@click.argument("uuid")
@click.pass_obj
def cancel(state: State, config_path: Optional[str], uuid: str) -> None:
    """Cancel a new or running message (a running handler stops at its next checkpoint)."""
    with state.queue(config_path) as queue:
        queue.cancel(uuid)


@command()
@common_options
@click.argument("uuid")
@click.argument("name")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE.")  # no click.Path: it calls gettext at import
@click.pass_obj
def attachment(state: State, config_path: Optional[str], uuid: str, name: str, output: Optional[str]) -> None:
    """Write one attachment of a message to stdout or FILE."""
    with state.queue(config_path) as queue:
        chunks = queue.attachment(uuid, name)
        if output:
            import os

            from ..host.files import open_private

            try:  # 0600 like every file run-cron writes: an attachment holds the job's data
                handle = open(open_private(output, os.O_WRONLY | os.O_TRUNC), "wb")  # noqa: SIM115 (closed below)
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


@command()
@common_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port).")
@click.pass_obj
def serve(state: State, config_path: Optional[str], host: str, port: int) -> None:
    """Serve the HTTP trigger (/run), /health and the status page, for trying them locally."""
    from ..web import make_app, make_server

    config = state.config(config_path)
    server = make_server(make_app(config), host, port)
    click.echo(f"run-cron: serving on http://{host}:{server.server_port}{config.http.prefix}/ "
               "(Ctrl-C to stop)", err=True)
    if not config.http.token:
        click.echo("run-cron: no [http] token configured: /run and the status page answer 404", err=True)
    from ..runtime.interrupt import exit_code, handling, name, received, wait_for_ticks

    # SIGTERM, SIGINT or SIGHUP: stop serving, stop the tick a /run request may be running (its worker
    # killed, what it ran settled), then exit 128 + the signal number.
    with handling():
        server.timeout = 0.5  # how often the loop looks for a stop signal
        try:
            while received() is None:
                server.handle_request()
        finally:
            server.server_close()
        signum = received()
        assert signum is not None
        wait_for_ticks(timeout=60)
    _finish_answers(seconds=2.0)
    click.echo(f"run-cron: stopped by {name(signum)}", err=True)
    sys.exit(exit_code(signum))


def _finish_answers(seconds: float) -> None:
    """Let request threads send the answers they are writing (an interrupted /run's 503), briefly."""
    import threading
    import time

    deadline = time.monotonic() + seconds
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))


@command()
@common_options
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
    from ..host.config import find_config_path
    from ..host.crontab_install import build_entry
    from ..host.crontab_install import install as add_line
    from ..host.crontab_install import remove as remove_line

    if print_only and remove:
        raise CliError("give either --print or --remove")
    if not remove:  # removing works even with a configuration that no longer loads
        state.config(config_path, load_jobs=False)
    if state.from_source(config_path):
        entry = state.source.crontab_entry(every)  # e.g. the line that calls `manage.py run_cron`
    else:
        entry = build_entry(find_config_path(config_path or state.config_path), every)
    if print_only:
        click.echo(entry.line)
        return
    change = (remove_line if remove else add_line)(entry, tab_file)
    if not state.quiet:
        done = {"installed": "installed in", "updated": "updated in", "unchanged": "already in",
                "removed": "removed from", "absent": "not in"}[change.action]
        click.echo(f"run-cron: {done} {change.target}: {entry.line}")


@command()
@common_options
@json_option
@click.pass_obj
def status(state: State, config_path: Optional[str], as_json: bool) -> None:
    """Health for monitoring; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the Nagios convention).

    WARNING: failed messages, or periodic jobs that failed or are overdue. CRITICAL: no tick finished
    within [run-cron] stale_after seconds, or none ever, or a database that is corrupt, read-only or on
    a full disk. UNKNOWN: the files belong to another user and cannot be read.
    """
    from ..errors import StoreError
    from ..registry import registry
    from ..reports.status import cannot_check, check, render
    from ..runtime.lock import LockError

    config = state.config(config_path)
    try:
        result = check(config, registry)
    except (StoreError, LockError) as exc:
        code, summary = cannot_check(exc)
        click.echo(f"run-cron: error: {exc}", err=True)
        if as_json:
            import json

            click.echo(json.dumps({"status": summary.split(" ", 1)[0], "code": code, "summary": summary,
                                   "problems": [str(exc)]}, indent=2))
        else:
            click.echo(summary)
        sys.exit(code)
    if as_json:
        import json

        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render(result, config.tz))
    sys.exit(result.code)


@command()
@common_options
@click.option("--time-limit", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Hard limit of each tick (default: the configuration's time_limit; 0: none).")
@click.option("--sleep", type=click.FloatRange(min=0.05), default=5.0, show_default=True, metavar="SECONDS",
              help="Pause between ticks while there is nothing to do.")
@click.pass_obj
def worker(state: State, config_path: Optional[str], time_limit: Optional[float], sleep: float) -> None:
    """Tick in a loop, as a service (systemd); stops after the current run on SIGTERM, SIGINT or SIGHUP.

    Shares the lock with crontab ticks: both may be installed, no work runs twice.
    """
    from ..registry import registry
    from ..runtime.eventlog import TickLog
    from ..runtime.service import run_worker, stop_on_signals

    config = state.config(config_path)
    events = TickLog("worker", Reporter(state.verbose))

    def finished(result: Any) -> None:
        events.finished(result)
        print_failures(result, state.quiet)

    with stop_on_signals() as stop:
        run_worker(config, registry, stop, time_limit=time_limit, sleep=sleep, on_event=events, on_result=finished)
    from ..runtime.interrupt import exit_code, received

    signum = received()  # a second signal cut a tick short: say so in the exit code, as a crontab tick does
    if signum is not None:
        sys.exit(exit_code(signum))


@command()
@common_options
@click.option("--job", "name", metavar="NAME", help="Only runs of this job, or attempts of this message type.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@json_option
@click.pass_obj
def history(state: State, config_path: Optional[str], name: Optional[str], limit: int, as_json: bool) -> None:
    """Every run of a periodic job and every message attempt, newest first."""
    from ..reports.history import history as read_history
    from ..reports.history import table_rows
    from ..reports.views import render_table

    config = state.config(config_path, load_jobs=False)
    entries = read_history(config, name, limit)
    if as_json:
        import json

        click.echo(json.dumps([entry.to_json() for entry in entries], indent=2))
        return
    click.echo(render_table(table_rows(entries, config.tz),
                            ["started", "kind", "name", "uuid", "attempt", "outcome", "duration", "error", "warnings"]))


@command()
@common_options
@click.option("--failed", "failed", is_flag=True,
              help="Also delete every failed message, with its history and attachments.")
@click.pass_obj
def purge(state: State, config_path: Optional[str], failed: bool) -> None:
    """Delete now what the daily run-cron.prune job deletes: finished runs older than retention_days."""
    from ..runtime.retention import run_now

    config = state.config(config_path, load_jobs=False)
    pruned, failed_count = run_now(config, failed)
    if not state.quiet:
        click.echo(f"run-cron: deleted {pruned.messages} finished message(s) and {pruned.job_runs} job run(s) "
                   f"older than {config.retention_days:g} days"
                   + (f"; {pruned.records} record(s) of families, batches, chains and missed slots"
                      if pruned.records else "")
                   + (f", and {failed_count} failed message(s)" if failed else ""))


@command()
@common_options
@click.pass_obj
def migrate(state: State, config_path: Optional[str]) -> None:
    """Create the store's tables, or upgrade them to this version of run-cron, and say what was done.

    Ticks never upgrade an existing store themselves: on an older schema they stop and ask for this.
    """
    from ..store import SCHEMA_VERSION, upgrade
    from ..store.url import redact

    config = state.config(config_path, load_jobs=False)
    before, after = upgrade(config.database, config.busy_timeout, config.synchronous)
    name = redact(config.database)
    if before == after:
        click.echo(f"run-cron: {name}: schema version {after} is current; nothing to do")
    elif before == 0:
        click.echo(f"run-cron: {name}: created the schema at version {after}")
    else:
        click.echo(f"run-cron: {name}: upgraded the schema from version {before} to {after}")
    if after != SCHEMA_VERSION:  # pragma: no cover - migrate raises before
        raise CliError(f"{name}: schema version {after}, expected {SCHEMA_VERSION}")


@command()
@common_options
@json_option
@click.pass_obj
def doctor(state: State, config_path: Optional[str], as_json: bool) -> None:
    """Check the store and this host, and say what is wrong and what to do. Exit codes as for status.

    Engine and version, FOR UPDATE SKIP LOCKED, clock skew against the database server, SQLite on a
    network filesystem, the lock directory, file modes, the schema version.
    """
    from ..reports.doctor import diagnose, worst
    from ..reports.status import LABELS

    config = state.config(config_path, load_jobs=False)
    findings = diagnose(config)
    code = worst(findings)
    if as_json:
        import json

        click.echo(json.dumps({"status": LABELS[code], "code": code,
                               "checks": [finding.to_json() for finding in findings]}, indent=2))
    else:
        for finding in findings:
            click.echo(f"{LABELS[finding.level]:<8} {finding.check}: {finding.text}")
            if finding.fix:
                click.echo(f"         fix: {finding.fix}")
    sys.exit(code)
