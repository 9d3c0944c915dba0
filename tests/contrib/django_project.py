"""A Django project on disk for the tests: settings, an app with tasks, models and a cronjobs.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

FILES = {
    "manage.py": """
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
    """,
    "proj/__init__.py": "",
    "proj/settings.py": """
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "tests-only"
        DEBUG = False
        ALLOWED_HOSTS = ["testserver", "localhost"]
        INSTALLED_APPS = [
            "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
            "django.contrib.sessions", "django.contrib.messages", "cronjobs.contrib.django", "shop",
        ]
        MIDDLEWARE = [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ]
        ROOT_URLCONF = "proj.urls"
        TEMPLATES = [{
            "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
            "OPTIONS": {"context_processors": [
                "django.template.context_processors.request", "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages"]},
        }]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
        USE_TZ = True
        TIME_ZONE = "Europe/Berlin"
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
        TASKS = {"default": {"BACKEND": "cronjobs.contrib.django.RunCronBackend"},
                 "retrying": {"BACKEND": "cronjobs.contrib.django.RunCronBackend", "OPTIONS": {"max_attempts": 2}}}
        RUN_CRON = {"time_limit": 60, "retry_backoff": 0}
    """,
    "proj/bad_settings.py": """
        from .settings import *  # noqa: F403

        RUN_CRON = {"time_limit": "soon"}
    """,
    "proj/broken_settings.py": """
        from .settings import *  # noqa: F403

        INSTALLED_APPS = [*INSTALLED_APPS, "broken"]  # noqa: F405
    """,
    "broken/__init__.py": "",
    "broken/cronjobs.py": """
        import cronjobs

        SETTING = undefined_name
    """,
    "proj/urls.py": """
        from django.contrib import admin
        from django.urls import include, path

        urlpatterns = [
            path("admin/", admin.site.urls),
            path("cron/", include("cronjobs.contrib.django.urls")),
        ]
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models


        class Note(models.Model):
            text = models.TextField()
    """,
    "shop/migrations/__init__.py": "",
    "shop/migrations/0001_initial.py": """
        from django.db import migrations, models


        class Migration(migrations.Migration):
            initial = True
            dependencies = []
            operations = [
                migrations.CreateModel(
                    name="Note",
                    fields=[("id", models.AutoField(primary_key=True, serialize=False)), ("text", models.TextField())],
                ),
            ]
    """,
    "shop/tasks.py": """
        from pathlib import Path

        from django.tasks import task
        from django.tasks.signals import task_finished, task_started

        from .models import Note

        SIGNALS = Path(__file__).resolve().parent.parent / "signals.log"


        def record(signal, task_result, **kwargs):
            errors = task_result.errors
            with open(SIGNALS, "a") as log:
                print(signal, task_result.id, task_result.task.name, task_result.status,
                      errors[-1].exception_class_path if errors else "-", file=log)


        task_started.connect(lambda sender, task_result, **kw: record("started", task_result), weak=False)
        task_finished.connect(lambda sender, task_result, **kw: record("finished", task_result), weak=False)


        @task
        def add(a, b):
            return a + b


        @task(priority=10)
        def note(text):
            Note.objects.create(text=text)
            return Note.objects.filter(text=text).count()


        @task
        def boom(text):
            raise ValueError(text)


        @task(takes_context=True)
        def attempt(context, mapping):
            return {"attempt": context.attempt, "id": context.task_result.id, "mapping": mapping}


        @task
        def unserialisable():
            return object()


        @task(backend="retrying", takes_context=True)
        def flaky(context):
            if context.attempt == 1:
                raise ConnectionError("the first attempt fails")
            return context.attempt
    """,
    "shop/cronjobs.py": """
        import cronjobs
        from django.db import connection

        from .models import Note

        # An ORM query at import: the supervisor, which imports this module, holds an open connection
        # unless run-cron closes it before the fork.
        IMPORTED_WITH = Note.objects.count()


        @cronjobs.minutely
        def count_notes(ctx):
            fresh = connection.connection is None
            Note.objects.create(text=f"cron fresh={fresh}")
            ctx.log.info("notes: %s", Note.objects.count())
    """,
}


def write_project(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root
