"""The `run-cron` command: parses arguments, calls the core, prints, and picks the exit code.

Exit codes: 0 success (also: nothing due, another tick holds the lock); 1 a job or message failed or
timed out; 2 usage, configuration or database error; 128 + N stopped by signal N (interrupt.py).
Heavy modules are imported inside the commands that need them, so an idle tick pays only for click,
filelock and sqlite3.
"""

from __future__ import annotations

import time

_STARTED = time.monotonic()  # the hard time limit counts from here, as close to exec as we can get

import sys  # noqa: E402
from typing import Any, Optional  # noqa: E402

import click  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import CronjobsError  # noqa: E402
from .options import CliError, State, config_option, tick  # noqa: E402


class Group(click.Group):
    """The `run-cron` group. Its subcommands live in cronjobs.cli.commands, imported only when one is
    named or listed (help, completion): a tick runs none of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .commands import COMMANDS

        return sorted(COMMANDS.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        from .commands import ALIASES, COMMANDS

        return COMMANDS.commands.get(ALIASES.get(cmd_name, cmd_name))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CronjobsError as exc:
            cause = getattr(exc, "cause", None)
            state = ctx.obj
            if cause is not None and isinstance(state, State) and state.verbose:
                import traceback

                click.echo("".join(traceback.format_exception(type(cause), cause, cause.__traceback__)).rstrip(),
                           err=True)
            raise CliError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("run-cron: interrupted", err=True)
            sys.exit(130)


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
    # `cli.main(args, obj=source)` hands in a configuration source (cronjobs.contrib.django does)
    source = ctx.obj if ctx.obj is not None and not isinstance(ctx.obj, State) else None
    state = ctx.obj = State(config_path, verbose, quiet, source, started=_STARTED)
    if ctx.invoked_subcommand is not None:
        return
    config = state.config()
    from ..registry import registry

    forced = registry.select(force) if force else None
    if dry_run:
        _print_dry_run(config, registry, forced)
        return
    tick(ctx, state, config, registry, forced, time_limit)


def _print_dry_run(config: Any, registry: Any, forced: Optional[list[Any]]) -> None:
    from ..reports.views import dry_run_plan

    for line in dry_run_plan(config, registry, forced):
        click.echo(line)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="run-cron")

