"""`run-cron install` against a crontab file (never the user's real crontab), end to end."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

from cronjobs.host.crontab_install import build_entry, launcher

USER_LINES = "MAILTO=me@example.com\n# nightly backup\n0 3 * * * /usr/bin/backup --all\n@reboot /usr/bin/true\n"


@pytest.fixture
def tab(tmp_path) -> Path:
    path = tmp_path / "crontab"
    path.write_text(USER_LINES)
    return path


def ours(tab: Path) -> list[str]:
    return [line for line in tab.read_text().splitlines() if "run-cron:" in line]


def test_install_adds_one_absolute_line_and_keeps_the_users_lines(project, tab):
    result = project.run("install", "--tab-file", str(tab))
    assert result.returncode == 0, result.stderr
    assert "installed in" in result.stdout
    (line,) = ours(tab)
    assert tab.read_text().startswith(USER_LINES)
    schedule, command = line[:9], line[10:]
    assert schedule == "* * * * *"
    words = shlex.split(command, comments=True)
    assert os.path.isabs(words[0]) and os.access(words[0], os.X_OK)
    assert words[0] == launcher(sys.executable)[0]  # this installation's launcher, not a shim on PATH
    assert words[1:4] == ["--config", str(project.config), ">/dev/null"]
    assert line.endswith(f"# run-cron: {project.config}")


def test_install_twice_leaves_one_line(project, tab):
    project.run("install", "--tab-file", str(tab))
    before = tab.read_text()
    again = project.run("install", "--tab-file", str(tab))
    assert again.returncode == 0 and "already in" in again.stdout
    assert tab.read_text() == before
    assert len(ours(tab)) == 1


def test_every_changes_the_line_in_place(project, tab):
    project.run("install", "--tab-file", str(tab))
    result = project.run("install", "--every", "15", "--tab-file", str(tab))
    assert result.returncode == 0 and "updated in" in result.stdout
    (line,) = ours(tab)
    assert line.startswith("*/15 * * * * ")
    assert tab.read_text().startswith(USER_LINES)


def test_every_must_divide_the_hour(project, tab):
    result = project.run("install", "--every", "7", "--tab-file", str(tab))
    assert result.returncode == 2
    assert result.stderr.startswith("run-cron: error: --every 7: expected one of 1, 2, 3, 4, 5, 6, 10, 12, 15")
    assert tab.read_text() == USER_LINES


def test_remove_takes_out_only_its_own_line(project, tab, tmp_path):
    other = tmp_path / "other.ini"
    other.write_text(project.config.read_text())
    project.run("install", "--tab-file", str(tab))
    subprocess.run([sys.executable, "-m", "cronjobs", "--config", str(other), "install", "--tab-file", str(tab)],
                   env=cli_env(), check=True, capture_output=True)
    assert len(ours(tab)) == 2  # two installations, two lines
    result = project.run("install", "--remove", "--tab-file", str(tab))
    assert result.returncode == 0 and "removed from" in result.stdout
    assert tab.read_text().startswith(USER_LINES)
    assert [line.split("# ")[-1] for line in ours(tab)] == [f"run-cron: {other}"]
    again = project.run("install", "--remove", "--tab-file", str(tab))
    assert again.returncode == 0 and "not in" in again.stdout


def test_print_shows_the_line_and_changes_nothing(project, tmp_path):
    tab = tmp_path / "never-written"
    result = project.run("install", "--print", "--every", "5", "--tab-file", str(tab))
    assert result.returncode == 0
    assert result.stdout.strip() == build_entry(str(project.config), 5).line
    assert not tab.exists()


def test_relative_config_becomes_absolute(project, tab):
    result = subprocess.run([sys.executable, "-m", "cronjobs", "--config", project.config.name, "install", "--print"],
                            cwd=project.path, env=cli_env(), capture_output=True, text=True)
    assert f"--config {project.config} >/dev/null" in result.stdout


def test_the_installed_line_runs_a_quiet_tick_from_anywhere(project, tab):
    project.write_jobs("""
@cronjobs.daily
def nightly(ctx): record("nightly")
""")
    project.run("install", "--tab-file", str(tab))
    command = ours(tab)[0][len("* * * * * "):]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project.path), "SHELL": "/bin/sh"}  # what cron gives
    result = subprocess.run(["/bin/sh", "-c", command], cwd="/", env=env, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # nothing for cron to mail
    assert project.ran() == ["nightly"]


def test_print_and_remove_exclude_each_other(project, tab):
    result = project.run("install", "--print", "--remove", "--tab-file", str(tab))
    assert result.returncode == 2
    assert result.stderr == "run-cron: error: give either --print or --remove\n"


def test_percent_signs_are_escaped_for_cron(tmp_path):
    entry = build_entry(str(tmp_path / "100%" / "run-cron.ini"), 1, command=["/opt/run-cron"])
    assert "%" not in entry.line.replace("\\%", "")
