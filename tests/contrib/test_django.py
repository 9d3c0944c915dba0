"""cronjobs.contrib.django against a real Django 6 project in tmp_path: tasks through django.tasks,
`manage.py run_cron` as a subprocess, periodic jobs using the ORM, the status page behind staff login.

Django 6 needs Python >= 3.12; .ci/extra/django.sh runs these tests in such a virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django", minversion="6.0",
                    reason="Django 6 (Python >= 3.12) is not installed here: .ci/extra/django.sh runs these tests")

from .django_project import write_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = str(ROOT)
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    environ.pop("RUN_CRON_CONFIG", None)
    return environ


def manage(project: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(project / "manage.py"), *args], cwd=cwd or project, env=env(),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("site"))
    migrated = manage(root, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    sys.path.insert(0, str(root))
    os.environ["DJANGO_SETTINGS_MODULE"] = "proj.settings"
    import django

    django.setup()
    yield root
    sys.path.remove(str(root))


def tick(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return manage(project, "run_cron", *args)


def test_a_task_enqueued_through_django_runs_in_the_next_tick(project: Path) -> None:
    from django.tasks import TaskResultStatus
    from shop import tasks

    summed = tasks.add.enqueue(2, 3)
    mapped = tasks.attempt.enqueue({"k": (1, 2)})
    assert summed.status == TaskResultStatus.READY
    assert tasks.add.get_result(summed.id).status == TaskResultStatus.READY
    done = tick(project)
    assert done.returncode == 0, done.stderr
    result = tasks.add.get_result(summed.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.args == [2, 3] and result.attempts == 1 and result.errors == []
    assert result.enqueued_at <= result.started_at <= result.finished_at
    summed.refresh()
    assert summed.status == TaskResultStatus.SUCCESSFUL and summed.return_value == 5
    assert tasks.attempt.get_result(mapped.id).return_value == {"attempt": 1, "id": mapped.id,
                                                                  "mapping": {"k": [1, 2]}}
    # the database beside the project, as settings.RUN_CRON names none
    assert (project / "run-cron.sqlite3").exists()


def test_a_failing_task_is_failed_with_its_exception_class_and_traceback(project: Path) -> None:
    from django.tasks import TaskResultStatus
    from shop import tasks

    failing = tasks.boom.enqueue("broken on purpose")
    bad_return = tasks.unserialisable.enqueue()
    done = tick(project)
    assert done.returncode == 1  # run-cron's exit code: a message failed
    assert "broken on purpose" in done.stderr
    result = tasks.boom.get_result(failing.id)
    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class for error in result.errors] == [ValueError]
    assert "broken on purpose" in result.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    returned = tasks.unserialisable.get_result(bad_return.id)
    assert returned.status == TaskResultStatus.FAILED
    assert returned.errors[0].exception_class_path == "cronjobs.errors.PermanentError"
    assert "not JSON" in returned.errors[0].traceback


def test_task_finished_is_sent_once_each_result_is_final(project: Path) -> None:
    from shop import tasks

    def signals(*results: Any) -> list[str]:
        ids = {result.id: result.task.name for result in results}
        lines = (project / "signals.log").read_text().splitlines() if (project / "signals.log").exists() else []
        return [" ".join(part for part in line.split() if part not in ids) for line in lines
                if line.split()[1] in ids]

    done, failed, flaky = tasks.add.enqueue(1, 1), tasks.boom.enqueue("no"), tasks.flaky.enqueue()
    ticked = tick(project)  # retry_backoff = 0: flaky's second attempt runs in the same tick
    assert ticked.returncode == 1, ticked.stderr  # boom failed for good
    assert signals(done) == ["started add RUNNING -", "finished add SUCCESSFUL -"]
    assert signals(failed) == ["started boom RUNNING -", "finished boom FAILED builtins.ValueError"]
    # its first attempt failed with one more to go: not final, no task_finished
    assert signals(flaky) == ["started flaky RUNNING -", "started flaky RUNNING builtins.ConnectionError",
                              "finished flaky SUCCESSFUL builtins.ConnectionError"]
    assert tasks.flaky.get_result(flaky.id).return_value == 2


def test_tasks_use_the_orm_and_run_by_priority_and_not_before_run_after(project: Path) -> None:
    from django.tasks import TaskResultStatus
    from django.utils import timezone
    from shop import tasks
    from shop.models import Note

    later = tasks.note.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("later")
    low = tasks.note.using(priority=-5).enqueue("low")
    high = tasks.note.using(priority=50).enqueue("high")
    done = tick(project)
    assert done.returncode == 0, done.stderr
    assert tasks.note.get_result(high.id).return_value == 1
    assert tasks.note.get_result(low.id).status == TaskResultStatus.SUCCESSFUL
    order = list(Note.objects.filter(text__in=["high", "low"]).order_by("id").values_list("text", flat=True))
    assert order == ["high", "low"]
    assert tasks.note.get_result(later.id).status == TaskResultStatus.READY
    assert not Note.objects.filter(text="later").exists()


def test_arguments_django_cannot_serialise_are_refused_before_anything_is_queued(project: Path) -> None:
    from django.tasks import default_task_backend
    from shop import tasks

    from cronjobs.contrib.django.worker import MESSAGE_TYPE

    queue = default_task_backend.queue()
    before = len(queue.jobs(type=MESSAGE_TYPE))
    with pytest.raises(TypeError, match="Unsupported type"):
        tasks.add.enqueue(object(), 1)
    assert len(queue.jobs(type=MESSAGE_TYPE)) == before


def test_unknown_result_ids_raise_djangos_exception(project: Path) -> None:
    from django.tasks.exceptions import TaskResultDoesNotExist
    from shop import tasks

    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result("no-such-id")


def test_a_periodic_job_in_an_apps_cronjobs_py_uses_the_orm_on_a_connection_of_its_own(project: Path) -> None:
    from shop.models import Note

    listed = tick(project, "periodic", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "count_notes" in [row["name"] for row in json.loads(listed.stdout)]
    done = tick(project, "--force", "count_notes", "-v")
    assert done.returncode == 0, done.stderr
    assert "notes:" in done.stderr
    # cronjobs.py queried the database at import, in the supervisor: the worker still began without
    # that connection, because it was closed before the fork
    # (earlier ticks in this module ran it too, as it is due every minute)
    assert set(Note.objects.filter(text__startswith="cron ").values_list("text", flat=True)) == {"cron fresh=True"}


def test_install_writes_a_crontab_line_that_runs_the_command_from_anywhere(project: Path, tmp_path: Path) -> None:
    tab = tmp_path / "crontab"
    installed = tick(project, "install", "--tab-file", str(tab))
    assert installed.returncode == 0, installed.stderr
    line = tab.read_text().strip()
    assert f"{sys.executable} {project / 'manage.py'} run_cron --settings=proj.settings >/dev/null" in line
    schedule, command = line[:10], line[10:].split(" #")[0]
    assert schedule == "* * * * * "
    # as cron runs it: from another directory, with a bare environment (PYTHONPATH only for this checkout)
    ran = subprocess.run(["/bin/sh", "-c", command.replace(" >/dev/null", " --force all -v")], cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "end job count_notes: completed" in ran.stderr
    assert tick(project, "install", "--tab-file", str(tab)).stdout.startswith("run-cron: already in")


def test_bad_settings_are_one_line_and_exit_2(project: Path) -> None:
    done = tick(project, "--settings", "proj.bad_settings")
    assert done.returncode == 2
    assert done.stderr == ("run-cron: error: settings.RUN_CRON: [run-cron] time_limit: "
                           "expected a number >= 0, got 'soon'\n")
    checked = manage(project, "check", "--settings", "proj.bad_settings")
    assert checked.returncode == 1
    assert "run_cron.E001" in checked.stderr and "time_limit" in checked.stderr


def test_a_broken_cronjobs_py_is_one_line_naming_the_app_file_and_line(project: Path) -> None:
    done = tick(project, "--settings=proj.broken_settings")
    assert done.returncode == 2
    assert done.stderr == ("run-cron: error: INSTALLED_APPS broken: jobs: cannot import 'broken.cronjobs': "
                           f"NameError: name 'undefined_name' is not defined ({project / 'broken' / 'cronjobs.py'}, "
                           "line 3)\n")


def test_the_status_page_is_for_staff_only(project: Path) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from shop import tasks

    result = tasks.add.enqueue(20, 22)
    assert tick(project).returncode == 0
    client = Client()
    anonymous = client.get("/cron/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    user = User.objects.create_user("clerk", password="pw")
    client.force_login(user)
    assert client.get("/cron/").status_code == 302
    User.objects.create_user("boss", password="pw", is_staff=True)
    assert client.login(username="boss", password="pw")
    page = client.get("/cron/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "count_notes" in body and "django.task" in body and result.id in body
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    download = client.get(f"/cron/attachment/{result.id}/return_value.json")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"42"
    assert client.get(f"/cron/attachment/{result.id}/nothing.json").status_code == 404
    assert client.post("/cron/").status_code == 405
    assert "Set-Cookie" not in page  # no token cookie: the session is the only way in
    assert "state" in client.get("/cron/live").json()
    assert Client().get("/cron/live").status_code == 302
    assert Client().get(f"/cron/attachment/{result.id}/return_value.json").status_code == 302


def post(client: Any, form: dict[str, str]) -> Any:
    """A POST of the page's forms, urlencoded as a browser sends them."""
    from urllib.parse import urlencode

    return client.post("/cron/action", urlencode(form), content_type="application/x-www-form-urlencoded")


def test_the_pages_buttons_work_for_staff_with_the_pages_own_csrf_token(project: Path) -> None:
    import re

    from django.contrib.auth.models import User
    from django.tasks import TaskResultStatus
    from django.test import Client
    from shop import tasks
    from shop.models import Note

    failed = tasks.boom.enqueue("retry me")
    assert tick(project).returncode == 1
    client = Client(enforce_csrf_checks=True)  # as a browser meets Django's CSRF middleware
    client.force_login(User.objects.create_user("chief", password="pw", is_staff=True))
    body = client.get("/cron/").content.decode()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', body).group(1)  # type: ignore[union-attr]
    refused = post(client, {"action": "retry", "uuid": failed.id, "csrf": "0" * 64})
    assert refused.status_code == 403
    retried = post(client, {"action": "retry", "uuid": failed.id, "csrf": csrf})
    assert retried.status_code == 303 and retried["Location"].startswith("/cron/")
    assert tasks.boom.get_result(failed.id).status == TaskResultStatus.READY
    # Run now: a tick forked from this (web) process runs the app's job with the ORM
    before = Note.objects.filter(text__startswith="cron ").count()
    ran = post(client, {"action": "run", "job": "count_notes", "csrf": csrf})
    assert ran.status_code == 303
    assert Note.objects.filter(text__startswith="cron ").count() == before + 1
    assert post(Client(), {"action": "run", "job": "count_notes", "csrf": csrf}).status_code == 302
