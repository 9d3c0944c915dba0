"""Configuration from Django's settings, job discovery in the apps, and the crontab line for Django.

Where the configuration comes from, first match wins: `RUN_CRON = {"config": "path.ini"}` names an
INI file (relative to the project directory); else the keys of `RUN_CRON` are the INI file's keys
(`[http]` and `[log]` as nested dicts), with defaults that need nothing at all: the database
`run-cron.sqlite3` and the lock `run-cron.lock` beside manage.py, the zone of `TIME_ZONE`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Optional

from ...errors import ConfigError, JobLoadError
from ...host.config import Config, config_from_mapping, load_config

if TYPE_CHECKING:  # imported when used: every tick through manage.py imports this module
    from ...host.crontab_install import Entry

ORIGIN = "settings.RUN_CRON"
DATABASE_NAME = "run-cron.sqlite3"
LOCK_NAME = "run-cron.lock"


def project_dir() -> str:
    """`settings.BASE_DIR`, else the directory above the settings package (where startproject puts manage.py)."""
    from django.conf import settings

    base = getattr(settings, "BASE_DIR", None)
    if base:
        return os.path.abspath(os.fspath(base))
    module = sys.modules.get(settings.SETTINGS_MODULE or "")
    where = getattr(module, "__file__", None)
    if where:
        return os.path.dirname(os.path.dirname(os.path.abspath(where)))
    return os.getcwd()


def django_config(ini: Optional[str] = None) -> Config:
    """The Config of this Django project: from the INI file `ini` if given, else from `RUN_CRON`."""
    from django.conf import settings

    base = project_dir()
    values = getattr(settings, "RUN_CRON", None) or {}
    if not isinstance(values, dict):
        raise ConfigError(ORIGIN, None, f"expected a dict, got {type(values).__name__}")
    values = dict(values)
    ini = ini or values.pop("config", None) or values.pop("CONFIG", None)
    if ini:
        return load_config(os.path.join(base, os.fspath(ini)))
    defaults: dict[str, Any] = {"database": DATABASE_NAME, "lock_file": LOCK_NAME}
    if getattr(settings, "TIME_ZONE", None):
        defaults["timezone"] = settings.TIME_ZONE
    return config_from_mapping(values, ORIGIN, base, defaults)


def discover() -> list[str]:
    """Import the `cronjobs` module of every installed app that has one; returns their names."""
    from importlib import import_module
    from importlib.util import find_spec

    from django.apps import apps

    from ...errors import JobDefinitionError

    found = []
    for app in apps.get_app_configs():
        name = f"{app.name}.cronjobs"
        if app.name == "cronjobs.contrib.django" or find_spec(name) is None:
            continue
        try:
            import_module(name)
        except JobDefinitionError:
            raise
        except Exception as exc:  # the app's module, reported in one line like a configured jobs module
            raise JobLoadError(f"INSTALLED_APPS {app.name}", name, exc) from exc
        found.append(name)
    return found


def close_connections() -> None:
    """Close this thread's Django database connections and task backends' stores: the worker, forked
    next, opens its own instead of sharing a socket or an SQLite handle with this process."""
    from django.db import connections
    from django.tasks import task_backends

    connections.close_all()
    for backend in task_backends.all(initialized_only=True):
        close = getattr(backend, "close", None)
        if close is not None:
            close()


class DjangoSource:
    """The configuration source `manage.py run_cron` hands to the run-cron CLI (see cli.options.State).

    `argv` is the command line that ran the command; its --settings and --pythonpath go into the
    crontab line, so cron runs the command as it was run here.
    """

    def __init__(self, argv: Optional[list[str]] = None, ini: Optional[str] = None) -> None:
        self.argv = list(sys.argv if argv is None else argv)
        self.ini = ini

    def load(self) -> Config:
        return django_config(self.ini)

    def load_jobs(self, config: Config) -> None:
        from ...registry import registry
        from .worker import register

        register(registry)
        registry.before_fork(close_connections)
        discover()

    def crontab_entry(self, every: int) -> Entry:
        from ...host.crontab_install import command_entry

        script = os.path.abspath(self.argv[0]) if self.argv else "manage.py"
        words = [sys.executable, script, "run_cron", *django_options(self.argv[2:])]
        return command_entry(words, script, every)


def django_options(args: list[str]) -> list[str]:
    """The --settings and --pythonpath options in `args` (either spelling), as `--name=value` words."""
    from django.conf import settings

    found: dict[str, str] = {}
    index = 0
    while index < len(args):
        word = args[index]
        for name in ("--settings", "--pythonpath"):
            if word == name and index + 1 < len(args):
                found[name] = args[index + 1]
                index += 1
            elif word.startswith(name + "="):
                found[name] = word[len(name) + 1:]
        index += 1
    found["--settings"] = settings.SETTINGS_MODULE  # the module in use, even when set by the environment
    if "--pythonpath" in found:
        found["--pythonpath"] = os.path.abspath(found["--pythonpath"])
    return [f"{name}={value}" for name, value in found.items()]


def strip_django_options(args: list[str]) -> list[str]:
    """`args` without --settings and --pythonpath: manage.py has applied them; run-cron knows neither."""
    kept: list[str] = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in ("--settings", "--pythonpath"):
            skip = True
        elif not word.startswith(("--settings=", "--pythonpath=")):
            kept.append(word)
    return kept
