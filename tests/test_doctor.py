"""`run-cron doctor`: the store's engine and schema, the host's filesystem, lock directory and modes."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest
from conftest import server_store

from cronjobs.host.config import Config
from cronjobs.reports.doctor import check_server, check_sqlite, filesystem_type
from cronjobs.reports.status import CRITICAL, OK, WARNING


def levels(findings):
    return {finding.check: finding.level for finding in findings}


@pytest.mark.sqlite_only("doctor's checks of an SQLite project (WAL, file modes)")
def test_a_healthy_sqlite_project_is_ok(project):
    project.write_jobs("")
    assert project.run().returncode == 0
    result = project.run("doctor")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("OK       engine: SQLite ")
    report = json.loads(project.run("doctor", "--json").stdout)
    assert report["status"] == "OK" and {c["check"] for c in report["checks"]} >= {
        "engine", "filesystem", "skip locked", "schema", "lock directory", "file modes"}


def test_sqlite_on_nfs_is_critical_with_what_to_do(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nfiler:/home {tmp_path} nfs4 rw 0 0\n")
    assert filesystem_type(str(tmp_path / "sub" / "db.sqlite3"), str(mounts)) == "nfs4"
    assert filesystem_type("/usr", str(mounts)) == "ext4"
    findings = check_sqlite(Config(str(tmp_path / "db.sqlite3"), str(tmp_path / "lock")), str(mounts))
    [nfs] = [finding for finding in findings if finding.check == "filesystem"]
    assert nfs.level == CRITICAL and "network filesystem (nfs4)" in nfs.text
    assert "move the file to a local disk" in nfs.fix and "server engine" in nfs.fix


@pytest.mark.sqlite_only("an SQLite file's schema version and modes")
def test_an_old_schema_and_loose_modes_are_reported_with_exit_codes(project):
    project.write_jobs("")
    assert project.run().returncode == 0
    os.chmod(project.database, 0o644)
    result = project.run("doctor")
    assert result.returncode == 1 and f"WARNING  file modes: {project.database} is mode 0644" in result.stdout
    assert f"fix: chmod 600 {project.database}" in result.stdout
    with sqlite3.connect(project.database) as connection:
        connection.execute("PRAGMA user_version = 1")
    result = project.run("doctor")
    assert result.returncode == 2
    assert "CRITICAL schema: schema version 1 is older than this run-cron's (2)" in result.stdout
    assert "fix: run `run-cron migrate`" in result.stdout


def test_a_missing_lock_directory_is_critical(project):
    project.write_config(lock_file="no/such/dir/run-cron.lock")
    result = project.run("doctor")
    assert result.returncode == 2 and "CRITICAL lock directory:" in result.stdout


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_a_server_reports_its_version_skip_locked_and_clock_skew(engine, tmp_path):
    for url in server_store(engine):
        config = Config(url, str(tmp_path / "lock"))
        found = levels(check_server(config))
        assert found == {"engine": OK, "skip locked": OK, "clock": OK, "schema": OK}
        skewed = check_server(config, clock=lambda: time.time() - 60)
        [clock] = [finding for finding in skewed if finding.check == "clock"]
        assert clock.level == WARNING and "behind the database's" in clock.text and "NTP" in clock.fix


def test_an_unreachable_server_is_critical_in_one_line(project):
    project.write_config(database="postgresql://postgres@127.0.0.1:1/test")
    result = project.run("doctor")
    assert result.returncode == 2
    assert result.stdout.startswith("CRITICAL engine: database postgresql://postgres@127.0.0.1:1/test: cannot connect")
