"""Configuration: one validated object, and one clear line naming file and key when it is wrong."""

from __future__ import annotations

import pytest

from cronjobs.config import find_config_path, load_config
from cronjobs.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "conf" / "run-cron.ini"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return str(path)


def test_defaults_and_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path, "[run-cron]\ndatabase = ../var/db.sqlite3\nlock_file = x.lock\n"
                                         "python_path = ., ../src\njobs = a, b\n"))
    assert config.database == str(tmp_path / "var" / "db.sqlite3")
    assert config.lock_file == str(tmp_path / "conf" / "x.lock")
    assert config.python_path == [str(tmp_path / "conf"), str(tmp_path / "src")]
    assert config.jobs == ["a", "b"]
    assert (config.time_limit, config.stale_after, config.retention_days) == (50, 300, 30)
    assert (config.http.token, config.http.time_limit, config.http.min_interval) == (None, 20, 60)


def test_http_and_log_sections(tmp_path):
    config = load_config(write(tmp_path, "[run-cron]\ndatabase = d\nlock_file = l\ntimezone = Europe/Berlin\n"
                                         "[http]\ntoken = s3cret\nprefix = cron/\n"
                                         "[log]\nfile = x.log\nlevel = debug\n"))
    assert config.http.token == "s3cret" and config.http.prefix == "/cron"
    assert config.log.level == "DEBUG" and config.log.file.endswith("conf/x.log")
    assert str(config.tz) == "Europe/Berlin"


@pytest.mark.parametrize(
    "body, message",
    [
        ("[run-cron]\ndatabase = d\nlock_file = l\ncolour = blue\n", "[run-cron] colour: unknown key"),
        ("[run-cron]\ndatabase = d\nlock_file = l\ntime_limit = soon\n",
         "[run-cron] time_limit: expected a number >= 0, got 'soon'"),
        ("[run-cron]\ndatabase = d\nlock_file = l\ntime_limit = -5\n",
         "[run-cron] time_limit: expected a number >= 0, got '-5'"),
        ("[run-cron]\ndatabase = d\nlock_file = l\ntimezone = Mars/Olympus\n",
         "[run-cron] timezone: expected an IANA time zone name such as Europe/Berlin, got 'Mars/Olympus'"),
        ("[run-cron]\ndatabase = d\nlock_file = l\nsynchronous = maybe\n",
         "[run-cron] synchronous: expected one of OFF, NORMAL, FULL, EXTRA, got 'maybe'"),
        ("[run-cron]\nlock_file = l\n", "[run-cron] database: missing (a file path is required)"),
        ("[run-cron]\ndatabase = d\nlock_file = l\n[extra]\na = 1\n", "[extra]: unknown section"),
        ("database = d\n", "not a valid INI file"),
        ("[run-cron]\ndatabase = d\nlock_file = l\nping_url = ftp://x\n",
         "[run-cron] ping_url: expected an http:// or https:// URL, got 'ftp://x'"),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "nope.ini"))


def test_lookup_order(monkeypatch):
    monkeypatch.setenv("RUN_CRON_CONFIG", "/from/env.ini")
    assert find_config_path("/explicit.ini") == "/explicit.ini"
    assert find_config_path(None) == "/from/env.ini"
    monkeypatch.delenv("RUN_CRON_CONFIG")
    assert find_config_path(None) == "config/run-cron.ini"


def test_cli_reports_a_bad_config_in_one_line_with_exit_2(project):
    project.write_config(time_limit="soon")
    result = project.run()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"run-cron: error: {project.config}: [run-cron] time_limit: expected a number >= 0, got 'soon'"
    ]


def test_cli_reports_a_job_module_that_fails_to_import(project):
    project.write_jobs("import does_not_exist\n")
    result = project.run()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"run-cron: error: {project.config}: jobs: cannot import 'jobs': "
        "ModuleNotFoundError: No module named 'does_not_exist'"
    ]
