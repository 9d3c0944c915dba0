"""Shared fixtures: a real SQLite file under tmp_path, a DST time zone, and a project on disk to run
the real `run-cron` CLI against in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest

from cronjobs.registry import Registry
from cronjobs.runs import Runs
from cronjobs.schedule import get_timezone
from cronjobs.store import connect_store

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption(
        "--reliability-full", action="store_true", default=False,
        help="run the full reliability suite (tests/reliability/: hundreds of kills); "
             "also RUN_CRON_RELIABILITY=full",
    )


@pytest.fixture
def tz():
    return get_timezone("Europe/Berlin")


@pytest.fixture
def db(tmp_path):
    database, models = connect_store(str(tmp_path / "db.sqlite3"))
    yield database
    database.close()


@pytest.fixture
def runs(db):
    return Runs(db.connection(), retry_backoff=0)


@pytest.fixture
def registry():
    return Registry()


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("RUN_CRON_CONFIG", None)
    return env


class Project:
    """A config file and a jobs module in a temporary directory, driven through the real CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config = path / "run-cron.ini"
        self.database = path / "run-cron.sqlite3"
        self.log = path / "ran.log"
        self.settings = {
            "database": "run-cron.sqlite3",
            "lock_file": "run-cron.lock",
            "jobs": "jobs",
            "python_path": ".",
            "timezone": "Europe/Berlin",
            "time_limit": "20",
            "retry_backoff": "0",
        }
        self.write_config()

    def write_config(self, extra: str = "", **settings: str) -> None:
        self.settings.update(settings)
        body = "[run-cron]\n" + "".join(f"{k} = {v}\n" for k, v in self.settings.items()) + extra
        self.config.write_text(body)

    def write_jobs(self, code: str) -> None:
        header = (
            "import os, sys, time, signal\nimport cronjobs\n"
            f"LOG = {str(self.log)!r}\n"
            "def record(*parts):\n"
            "    with open(LOG, 'a') as f:\n"
            "        f.write(' '.join(str(p) for p in parts) + '\\n')\n"
            "        f.flush()\n"
        )
        (self.path / "jobs.py").write_text(header + textwrap.dedent(code))
        for cached in (self.path / "__pycache__").glob("jobs*"):
            cached.unlink()

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cronjobs", "--config", str(self.config), *args]

    def run(self, *args: str, timeout: float = 60, input: Optional[str] = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                              env=cli_env(), input=input)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=cli_env())

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; log so far: {self.ran()}")
            time.sleep(0.02)


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return True
