"""`python manage.py run_cron [run-cron's options and subcommands]`: run-cron configured by Django's settings.

`manage.py run_cron` runs a tick, `manage.py run_cron install` writes the crontab line that calls this
command, `manage.py run_cron status`, `enqueue`, `history` ... are run-cron's own. `--config PATH`
still names an INI file instead of `settings.RUN_CRON`.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run a run-cron tick, or one of run-cron's subcommands, with the configuration in Django's settings."
    requires_system_checks: list[str] = []  # every minute from cron: as cheap as a plain run-cron tick

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*", help="run-cron's options and subcommand (see run_cron --help).")

    def run_from_argv(self, argv: list[str]) -> None:
        """Hand everything after `run_cron` to run-cron's own command line (click), which exits."""
        from cronjobs.cli.main import cli

        from ...source import DjangoSource, strip_django_options

        cli.main(strip_django_options(argv[2:]), prog_name=f"{os.path.basename(argv[0])} {argv[1]}",
                 obj=DjangoSource(argv))

    def handle(self, *args: str, **options: Any) -> None:
        """For `call_command("run_cron", "periodic")`: positional words only; a non-zero exit is a CommandError."""
        from cronjobs.cli.main import cli

        from ...source import DjangoSource

        try:
            cli.main(list(args), prog_name="run_cron", obj=DjangoSource())
        except SystemExit as exc:
            if exc.code:
                raise CommandError(f"run-cron exited with {exc.code}", returncode=int(exc.code)) from None
