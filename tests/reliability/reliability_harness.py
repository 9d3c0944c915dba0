"""Shared pieces of the reliability suite: real `run-cron` processes, their process trees, SIGKILL at
random moments, a clock moved with libfaketime, and hosts that refuse writes.

The suite runs a fast subset by default (seconds, in CI) and the full run with `pytest --reliability-full`
or `RUN_CRON_RELIABILITY=full`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def full_run(config: pytest.Config) -> bool:
    return bool(config.getoption("--reliability-full")) or os.environ.get("RUN_CRON_RELIABILITY") == "full"


def faketime_library() -> Optional[str]:
    return next((path for path in FAKETIME_LIBRARIES if os.path.exists(path)), None)


def shifted_env(env: dict[str, str], seconds: float) -> dict[str, str]:
    """`env` for a process whose clocks run `seconds` ahead (libfaketime; the clock keeps moving)."""
    library = faketime_library()
    if library is None:
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    shifted = dict(env)
    shifted["LD_PRELOAD"] = library
    shifted["FAKETIME"] = f"{seconds:+.0f}s"
    shifted["FAKETIME_NO_CACHE"] = "1"  # every clock read sees the offset of this process at once
    return shifted


def children(pid: int) -> list[int]:
    """Direct children of `pid` (scans /proc: /proc/PID/task/TID/children is not everywhere)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def kill_quietly(pid: int, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Wait until none of `pids` exists any more (PR_SET_PDEATHSIG takes the worker with its parent)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while os.path.exists(f"/proc/{pid}") and not _zombie(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"process {pid} outlived its supervisor")
            time.sleep(0.005)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1][0] == "Z"
    except (OSError, IndexError):
        return True


def integrity(database: Path) -> str:
    connection = sqlite3.connect(str(database))
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def unprivileged(command: list[str]) -> list[str]:
    """`command` without root's power to ignore file modes, so a read-only directory is read-only."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]


def one_clean_line(stderr: str) -> str:
    """The single line a refused command prints; fails on a traceback or several lines."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def run(command: list[str], env: dict[str, str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
