"""run-cron for Django: a `django.tasks` backend, settings-based configuration, `manage.py run_cron`.

    INSTALLED_APPS = [..., "cronjobs.contrib.django"]
    TASKS = {"default": {"BACKEND": "cronjobs.contrib.django.RunCronBackend"}}
    RUN_CRON = {"time_limit": 50}          # optional: the INI file's keys; or {"config": "run-cron.ini"}

Periodic jobs and handlers go in an app's `cronjobs.py`, found as Django finds `admin.py`.
"""

from __future__ import annotations

from .backend import RunCronBackend
from .source import DjangoSource, django_config

__all__ = ["DjangoSource", "RunCronBackend", "django_config"]
