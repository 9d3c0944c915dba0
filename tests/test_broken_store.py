"""`status`, `list`, `history` and `/health` on a database they cannot use: one line, a documented code.

Each case is made for real: garbage bytes, half of a real database file, a file owned by another user
(the CLI runs as `nobody` through setpriv), a read-only file and directory, a full disk (RLIMIT_FSIZE).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest
from conftest import Project, Serve, cli_env

pytestmark = pytest.mark.sqlite_only("a damaged, full, read-only or foreign-owned SQLite file")

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _runs_as_nobody() -> bool:
    """Root, setpriv, and an interpreter `nobody` may run (pyenv's under a private /root is not)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", ""], capture_output=True, timeout=60)
    return probe.returncode == 0


needs_root = pytest.mark.skipif(not _runs_as_nobody(),
                                reason="needs root, setpriv and a Python that user nobody can run, to run "
                                       "the CLI as another user")

JOBS = """
@cronjobs.daily
def nightly(ctx): record("nightly")

@cronjobs.handler("mail")
def mail(ctx, payload): record("mail", payload)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user may enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="run-cron-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for directory in [path, *path.rglob("*")]:
        if directory.is_dir():
            directory.chmod(0o755)
    shutil.rmtree(path)


def ticked_project(path: Path) -> Project:
    """A project after one real tick and one enqueued message: a real database file, checkpointed."""
    project = Project(path)
    project.write_jobs(JOBS)
    assert project.run().returncode == 0
    assert project.run("enqueue", "mail", '{"text": "hi"}').returncode == 0
    return project


def run_cli(project: Project, command: str, as_user: bool = False,
            limit_file_size: Optional[int] = None) -> subprocess.CompletedProcess:
    args = project.command(command)
    if as_user:
        args = [*AS_NOBODY, *args]

    def preexec() -> None:
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=cli_env(), preexec_fn=preexec)


def garbage(project: Project) -> None:
    project.database.write_bytes(random.Random(8).randbytes(20000))


def truncated(project: Project) -> None:
    data = project.database.read_bytes()
    project.database.write_bytes(data[: len(data) // 2])


COMMANDS = ["status", "list", "history"]


def assert_one_line(result: subprocess.CompletedProcess, database: Path, problem: str) -> None:
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"run-cron: error: database {database}: {problem}"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage, problem", [(garbage, "file is not a database"),
                                             (truncated, "database disk image is malformed")])
def test_corrupt_or_truncated_database_is_one_line_and_critical(tmp_path, command, damage, problem):
    project = ticked_project(tmp_path)
    damage(project)
    result = run_cli(project, command)
    assert_one_line(result, project.database, problem)
    assert result.returncode == 2  # status: CRITICAL, the others: a database error
    if command == "status":
        assert result.stdout == f"CRITICAL - database {project.database}: {problem}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_full_disk_is_one_line_and_critical(tmp_path, command):
    project = ticked_project(tmp_path)  # closed cleanly: opening must create the -shm file, which fails
    result = run_cli(project, command, limit_file_size=1024)
    assert_one_line(result, project.database, "disk I/O error")
    assert result.returncode == 2


@needs_root
@pytest.mark.parametrize("command", COMMANDS)
def test_database_of_another_user_is_unknown_for_status(shared_dir, command):
    project = ticked_project(shared_dir)
    result = run_cli(project, command, as_user=True)  # root's files, 0600 as run-cron creates them
    assert "Traceback" not in result.stderr
    if command == "status":  # it probes the lock first
        problem = f"lock file {project.path / 'run-cron.lock'}: Permission denied"
        assert result.stderr.splitlines() == [f"run-cron: error: {problem}"]
        assert result.returncode == 3
        assert result.stdout == f"UNKNOWN - cannot check as uid {NOBODY}: {problem}\n"
        for shared in ("run-cron.lock", "run-cron.sqlite3-tick"):  # readable now; the database is not
            (project.path / shared).chmod(0o644)
        result = run_cli(project, command, as_user=True)
        assert_one_line(result, project.database, "unable to open database file")
        assert result.returncode == 3
        assert result.stdout == (f"UNKNOWN - cannot check as uid {NOBODY}: database {project.database}: "
                                 "unable to open database file\n")
    else:
        assert_one_line(result, project.database, "unable to open database file")
        assert result.returncode == 2


@needs_root
@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_database_and_directory_of_its_owner_is_critical(shared_dir, command):
    project = ticked_project(shared_dir)
    for path in shared_dir.iterdir():
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o444)
    os.chown(shared_dir, NOBODY, NOBODY)
    shared_dir.chmod(0o555)
    result = run_cli(project, command, as_user=True)
    assert_one_line(result, project.database, "attempt to write a readonly database")
    assert result.returncode == 2


def test_status_json_on_a_corrupt_database(tmp_path):
    project = ticked_project(tmp_path)
    garbage(project)
    result = subprocess.run(project.command("status", "--json"), capture_output=True, text=True, timeout=60,
                            env=cli_env())
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "status": "CRITICAL", "code": 2,
        "summary": f"CRITICAL - database {project.database}: file is not a database",
        "problems": [f"database {project.database}: file is not a database"]}


def test_unreadable_tick_file_garbage_reads_as_no_tick(tmp_path):
    project = ticked_project(tmp_path)
    (tmp_path / "run-cron.sqlite3-tick").write_bytes(b"\xff\xfe\x00garbage=\x80\n")
    result = run_cli(project, "status")
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert result.stdout.startswith("CRITICAL - no tick has ever finished")


def get(server: Serve, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.base + path, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@pytest.mark.parametrize("damage, problem", [(garbage, "file is not a database"),
                                             (truncated, "database disk image is malformed")])
def test_health_on_a_corrupt_database_is_503_with_a_json_reason(tmp_path, serving, damage, problem):
    project = ticked_project(tmp_path)
    damage(project)
    server = serving(project)
    status, body = get(server, "/health")
    assert status == 503
    assert json.loads(body) == {"status": "error", "error": f"database unavailable: {problem}"}
    log = server.log.read_text()
    assert "Traceback" not in log
    assert f"cannot answer GET /health: database {project.database}: {problem}" in log
