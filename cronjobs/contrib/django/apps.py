"""The app that makes `manage.py run_cron` available: add "cronjobs.contrib.django" to INSTALLED_APPS."""

from __future__ import annotations

from django.apps import AppConfig


class RunCronConfig(AppConfig):
    name = "cronjobs.contrib.django"
    label = "run_cron"  # the module's last part, "django", would read as Django's own app
    verbose_name = "run-cron"
