"""Every file run-cron writes is 0600 whatever the umask, through the real CLI; `status` warns about
files other users may read."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from conftest import Project, cli_env

from cronjobs.host.files import create_private, loose_files

JOBS = """
import json, logging, stat
HERE = os.path.dirname(LOG)

def modes():
    return {name: oct(stat.S_IMODE(os.stat(os.path.join(HERE, name)).st_mode))
            for name in sorted(os.listdir(HERE)) if os.path.isfile(os.path.join(HERE, name))}

@cronjobs.daily
def chatty(ctx):
    for number in range(40):  # enough to rotate the 1 KB log file every tick
        logging.getLogger("cronjobs.test").warning("line %d of a log that must rotate", number)

@cronjobs.handler("snapshot")
def snapshot(ctx, payload):
    record(json.dumps(modes()))  # while the worker holds the database open: -wal and -shm exist
    ctx.attach("report.txt", b"private payload")
"""
LOG = "[log]\nfile = run-cron.log\nmax_bytes = 1024\nbackups = 2\nlevel = INFO\n"
THE_TESTS_OWN = {"jobs.py", "run-cron.ini", "ran.log"}


def run_with_umask(project: Project, umask: int, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(project.command(*args), capture_output=True, text=True, timeout=60, env=cli_env(),
                            preexec_fn=lambda: os.umask(umask))
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.sqlite_only("the modes of the SQLite file and its companions")
@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_file_run_cron_writes_is_0600(project, umask):
    project.write_config(LOG)
    project.write_jobs(JOBS)
    for _ in range(3):
        run_with_umask(project, umask, "--force", "all")
    uuid = run_with_umask(project, umask, "enqueue", "snapshot").stdout.strip()
    run_with_umask(project, umask)
    run_with_umask(project, umask, "attachment", uuid, "report.txt", "-o", str(project.path / "report.txt"))
    run_with_umask(project, umask, "install", "--tab-file", str(project.path / "crontab.txt"))

    while_open = json.loads(project.ran()[0])
    assert {"run-cron.sqlite3-wal", "run-cron.sqlite3-shm"} <= set(while_open)
    written = {name: mode for name, mode in while_open.items() if name not in THE_TESTS_OWN}
    assert written == dict.fromkeys(written, "0o600")
    after = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in project.path.iterdir()
             if path.is_file() and path.name not in THE_TESTS_OWN}
    assert {"run-cron.sqlite3", "run-cron.sqlite3-tick", "run-cron.lock", "run-cron.log", "run-cron.log.1",
            "run-cron.log.2", "run-cron.log.lock", "report.txt", "crontab.txt"} <= set(after)
    assert after == dict.fromkeys(after, "0o600")
    assert (project.path / "report.txt").read_bytes() == b"private payload"


@pytest.mark.sqlite_only("the mode of an existing SQLite file")
def test_an_existing_file_keeps_its_mode_and_status_warns(project):
    project.write_jobs(JOBS.replace("@cronjobs.daily", "@cronjobs.yearly"))
    assert project.run().returncode == 0
    assert project.run("status").returncode == 0
    project.database.chmod(0o644)  # as cron's umask left it before this release
    assert project.run().returncode == 0
    assert stat.S_IMODE(project.database.stat().st_mode) == 0o644  # not changed behind the admin's back
    result = project.run("status")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(
        f"WARNING - other users may read {project.database} (0644): chmod 600 them; last tick ")


def test_create_private_and_loose_files(tmp_path):
    old = os.umask(0)
    try:
        create_private(str(tmp_path / "new"))
    finally:
        os.umask(old)
    (tmp_path / "shared").write_text("x")
    (tmp_path / "shared").chmod(0o640)
    create_private(str(tmp_path / "shared"))  # exists: left alone
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o600
    paths = [str(tmp_path / name) for name in ("new", "shared", "missing")]
    assert loose_files(paths) == [(str(tmp_path / "shared"), 0o640)]
