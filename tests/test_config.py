"""Configuration: one validated object, and one clear line naming file and key when it is wrong."""

from __future__ import annotations

import pytest

from cronjobs.errors import ConfigError
from cronjobs.host.config import find_config_path, load_config


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
        ("[run-cron]\ndatabase = d\nlock_file = l\ntime_limit = nan\n",
         "[run-cron] time_limit: expected a number >= 0, got 'nan'"),
        ("[run-cron]\ndatabase = d\nlock_file = l\ntime_limit = inf\n",
         "[run-cron] time_limit: expected a number >= 0, got 'inf'"),
        ("[run-cron]\ndatabase = d\nlock_file = l\nstale_after = 0\n",
         "[run-cron] stale_after: expected a number >= 1, got '0'"),
        ("[run-cron]\ndatabase = d\nlock_file = l\n[http]\ntoken = s3cret\ntime_limit = 0\n",
         "[http] time_limit: expected a number >= 1, got '0'"),
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
    jobs = project.path / "jobs.py"
    line = jobs.read_text().splitlines().index("import does_not_exist") + 1
    assert result.stderr.splitlines() == [
        f"run-cron: error: {project.config}: jobs: cannot import 'jobs': "
        f"ModuleNotFoundError: No module named 'does_not_exist' ({jobs}, line {line})"
    ]


@pytest.mark.parametrize("name", ["Europe", "Mars/Olympus", "../zoneinfo/Europe/Berlin", "Europe//Berlin", "zone.tab",
                                  "/usr/share/zoneinfo/Europe/Berlin"])
def test_timezone_names_that_are_not_zones(tmp_path, name):
    path = write(tmp_path, f"[run-cron]\ndatabase = d\nlock_file = l\ntimezone = {name}\n")
    with pytest.raises(ConfigError, match=r"\[run-cron\] timezone: expected an IANA time zone name"):
        load_config(path)


def test_a_zone_file_that_zoneinfo_cannot_load_is_a_config_error_when_used(tmp_path, monkeypatch):
    # load_config trusts a TZif file found in $PYTHONTZPATH without importing zoneinfo; zoneinfo has
    # the last word when the zone is first used, with the same one-line error.
    (tmp_path / "zones" / "Fake").mkdir(parents=True)
    (tmp_path / "zones" / "Fake" / "Zone").write_bytes(b"TZif but not really")
    monkeypatch.setenv("PYTHONTZPATH", str(tmp_path / "zones"))
    path = write(tmp_path, "[run-cron]\ndatabase = d\nlock_file = l\ntimezone = Fake/Zone\n")
    config = load_config(path)
    assert config.tz_key == "Fake/Zone"
    with pytest.raises(ConfigError) as info:
        config.tz  # noqa: B018
    assert str(info.value) == (f"{path}: [run-cron] timezone: expected an IANA time zone name such as "
                               "Europe/Berlin, got 'Fake/Zone'")


INI_SAMPLES = [
    "[run-cron]\ndatabase = d\nlock_file = l\n",
    "# comment\n; other\n[run-cron]\nDataBase: d\n  lock_file=l  \n\n[http]\ntoken = a=b:c\n",
    "[run-cron]\njobs =\n    one,\n\n    # a comment inside the value\n    two\n\n\nlock_file = l\n",
    "[run-cron]\npython_path = a\n\tb\n  c\n[log]\nfile = x.log\n",
    "[ spaced ]\nkey = [not a section]\n",
    "[run-cron]\nempty =\nnext = 1",
]


@pytest.mark.parametrize("text", INI_SAMPLES)
def test_the_plain_ini_reader_reads_what_configparser_reads(text):
    import configparser

    from cronjobs.host.config import _parse_ini

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert _parse_ini(text) == [(section, parser.items(section)) for section in parser.sections()]


@pytest.mark.parametrize("text", [
    "key = v\n",  # no section header
    "[DEFAULT]\na = 1\n[run-cron]\nb = 2\n",
    "[run-cron]\na = 1\n[run-cron]\nb = 2\n",
    "[run-cron]\na = 1\nA = 2\n",
    "[run-cron]\nno delimiter\n",
    "[run-cron\na = 1\n",
])
def test_anything_else_is_left_to_configparser(text):
    from cronjobs.host.config import _parse_ini

    assert _parse_ini(text) is None


def test_configparser_errors_are_reported_as_before(tmp_path):
    path = write(tmp_path, "[run-cron]\ndatabase = d\ndatabase = e\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: not a valid INI file: While reading from {path!r} [line  3]: "
                               "option 'database' in section 'run-cron' already exists")


def test_a_mapping_holds_what_the_ini_file_holds(tmp_path):
    from cronjobs.host.config import config_from_mapping

    config = config_from_mapping(
        {"TIME_LIMIT": 20, "jobs": ["a.jobs", "b.jobs"], "http": {"TOKEN": "t", "prefix": "cron/"},
         "log": {"level": "warning"}},
        "settings.RUN_CRON", str(tmp_path), defaults={"database": "run-cron.sqlite3", "lock_file": "x.lock"})
    assert config.time_limit == 20.0 and config.jobs == ["a.jobs", "b.jobs"]
    assert config.database == str(tmp_path / "run-cron.sqlite3") and config.lock_file == str(tmp_path / "x.lock")
    assert (config.http.token, config.http.prefix, config.log.level) == ("t", "/cron", "WARNING")
    assert config.path == "settings.RUN_CRON"


def test_a_mapping_is_validated_like_the_file(tmp_path):
    from cronjobs.host.config import config_from_mapping

    with pytest.raises(ConfigError) as bad:
        config_from_mapping({"database": "d", "lock_file": "l", "retry_backoff": -1}, "settings.RUN_CRON", "/")
    assert str(bad.value) == "settings.RUN_CRON: [run-cron] retry_backoff: expected a number >= 0, got '-1'"
    with pytest.raises(ConfigError, match=r"settings.RUN_CRON: \[run-cron\] database: missing"):
        config_from_mapping({"lock_file": "l"}, "settings.RUN_CRON", "/")
    with pytest.raises(ConfigError, match=r"\[http\] tokens: unknown key"):
        config_from_mapping({"database": "d", "lock_file": "l", "http": {"tokens": "x"}}, "settings.RUN_CRON", "/")
    with pytest.raises(ConfigError, match=r"settings.RUN_CRON: http: expected a dict"):
        config_from_mapping({"http": "x"}, "settings.RUN_CRON", "/")
