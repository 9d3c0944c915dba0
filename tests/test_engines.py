"""Server engines through the real CLI: URLs, drivers, `migrate`, ticks on PostgreSQL and MariaDB, and
several hosts (separate lock files) on one database, with kills."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import SERVERS as SERVERS_URL
from conftest import Project, cli_env, server_store

import cronjobs
from cronjobs.errors import MissingDriver
from cronjobs.store import connect_store
from cronjobs.store.dialect import scalar_min_max
from cronjobs.store.url import parse, redact

SERVER_ENGINES = ("postgresql", "mysql")


@pytest.fixture(params=SERVER_ENGINES)
def server_url(request):
    yield from server_store(request.param)


def test_a_project_keeps_its_store_on_the_engine_the_run_names(tmp_path):
    """--store=ENGINE (conftest): every Project's config names a store on that engine, one per SQLite
    file that configs name, so two configs naming one file share it there too."""
    import conftest

    first = Project(tmp_path / "a")
    second = Project(tmp_path / "b", database="../a/run-cron.sqlite3")
    third = Project(tmp_path / "c")
    assert first.store == second.store != third.store
    assert (parse(first.store).engine if "://" in first.store else "sqlite") == conftest.STORE
    first.write_jobs("@cronjobs.daily\ndef d(ctx): record('d')\n")
    assert first.run().returncode == 0
    with second.connect() as db:
        assert db.execute("SELECT status FROM message WHERE type = 'd'").fetchall() == [("completed",)]


def test_sessions_opening_a_new_postgresql_schema_at_once_all_connect():
    """Many first connections to a `?schema=` not created yet (a flood of HTTP triggers on a fresh
    store) once lost the race on pg_namespace's unique index: "cannot connect: duplicate key"."""
    import threading

    from cronjobs.errors import StoreError
    from cronjobs.store.server import open_fast

    for _round in range(4):
        for url in server_store("postgresql"):
            barrier, errors = threading.Barrier(16), []

            def connect(url=url, barrier=barrier, errors=errors):
                barrier.wait()
                try:
                    open_fast(url).close()
                except StoreError as exc:
                    errors.append(str(exc))

            threads = [threading.Thread(target=connect) for _ in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []


def test_a_postgresql_role_without_create_on_the_database_uses_the_schema_it_owns(tmp_path):
    """A host may give a role its schema and no CREATE on the database: run-cron must not need it."""
    import uuid as uuidlib

    from cronjobs.store.server import open_fast

    for url in server_store("postgresql"):
        schema = url.rsplit("=", 1)[1]
        role = f"rc_t_role_{uuidlib.uuid4().hex[:8]}"
        admin = open_fast(SERVERS_URL["postgresql"])
        admin.execute_raw(f"CREATE ROLE {role} LOGIN")
        try:
            admin.execute_raw(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
            project = Project(tmp_path, database=url.replace("postgres@", f"{role}@"))
            project.write_jobs("@cronjobs.daily\ndef d(ctx): record('d')\n")
            result = project.run()
            assert result.returncode == 0, result.stderr
            assert project.ran() == ["d"]
        finally:
            admin.execute_raw(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.execute_raw(f"DROP ROLE IF EXISTS {role}")
            admin.close()


def test_url_forms_and_the_password_never_shown():
    target = parse("postgresql://app:s%40cret@db.example:6543/jobs?schema=cron")
    assert (target.engine, target.host, target.port, target.user, target.password, target.name, target.schema) == (
        "postgresql", "db.example", 6543, "app", "s@cret", "jobs", "cron")
    assert parse("mariadb://root@127.0.0.1/test").engine == parse("mysql://root@h/test").engine == "mysql"
    assert parse("mysql://root@h/test").port == 3306
    assert redact("mysql://app:hunter2@h/test") == "mysql://app:***@h/test"
    for bad, expected in (("oracle://h/x", "unknown database URL scheme"), ("mysql://h", "no database name"),
                          ("mysql://h/x?schema=y", "the only option"), ("postgresql://:5/x", "no host")):
        with pytest.raises(ValueError, match=expected):
            parse(bad)


def test_a_bad_url_is_one_line_naming_the_key(tmp_path):
    project = Project(tmp_path, database="postgresql://app:hunter2@h:5432/")
    result = project.run()
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "[run-cron] database" in result.stderr
    assert "no database name" in result.stderr and "hunter2" not in result.stderr


def test_sqlite_min_max_rewrites_keep_their_null_semantics():
    assert scalar_min_max("MAX(id)") == "MAX(id)"
    assert scalar_min_max("SELECT MAX(MIN(a, b), c)") == "SELECT GREATEST(LEAST(a, b), c)"
    assert scalar_min_max("MIN(a, :now)", null_strict=True) == (
        "(CASE WHEN (a) IS NULL OR (:now) IS NULL THEN NULL ELSE LEAST(a, :now) END)")
    with pytest.raises(ValueError, match="no bound parameter"):  # it would count twice, and have no type
        scalar_min_max("UPDATE t SET a = MIN(a, ?)", null_strict=True)


@pytest.mark.parametrize("engine, module, extra",
                         [("postgresql", "pg8000", "postgresql"), ("mysql", "pymysql", "mysql")])
def test_a_missing_driver_names_the_extra_to_install(engine, module, extra, tmp_path):
    url = {"postgresql": "postgresql://postgres@127.0.0.1/test", "mysql": "mysql://root@127.0.0.1/test"}[engine]
    project = Project(tmp_path, database=url)
    project.write_jobs("")
    # The driver as absent as an import can make it: None in sys.modules makes `import` raise ImportError.
    code = (f"import sys; sys.modules[{module!r}] = None; "
            f"sys.argv = ['run-cron', '--config', {str(project.config)!r}]; from cronjobs.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"pip install 'run-cron[{extra}]'" in result.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, module, None)
        with pytest.raises(MissingDriver, match=rf"run-cron\[{extra}\]"):
            connect_store(url)


@pytest.mark.sqlite_only("an SQLite file of schema version 1, as run-cron 0.1 left it")
def test_a_tick_on_an_older_sqlite_schema_asks_for_migrate_which_says_what_it_did(project):
    project.write_jobs("@cronjobs.handler('t')\ndef t(ctx, payload):\n    record('t')\n")
    assert project.run("migrate").stdout.strip().endswith("created the schema at version 2")
    uuid = project.run("enqueue", "t").stdout.strip()
    with sqlite3.connect(project.database) as connection:  # what run-cron 0.1 left: version 1, no runner
        connection.execute("ALTER TABLE message DROP COLUMN runner")
        connection.execute("PRAGMA user_version = 1")
    tick = project.run()
    assert tick.returncode == 2 and project.ran() == []
    assert "schema version 1 is older than this run-cron's (2): run `run-cron migrate`" in tick.stderr
    assert project.run("migrate").stdout.strip().endswith("upgraded the schema from version 1 to 2")
    assert project.run("migrate").stdout.strip().endswith("schema version 2 is current; nothing to do")
    assert project.run().returncode == 0 and project.ran() == ["t"]
    assert json.loads(project.run("show", uuid, "--json").stdout)["status"] == "completed"


JOBS = """
@cronjobs.daily
def nightly(ctx):
    record("nightly", os.getpid())

@cronjobs.handler("count")
def count(ctx, payload):
    for i in range(ctx.offset or 0, payload["n"]):
        record("step", payload["id"], i)
        time.sleep(payload.get("sleep", 0))
        ctx.checkpoint(offset=i + 1, done=i + 1, total=payload["n"])
    record("done", payload["id"])
"""


def host(tmp_path, name: str, url: str) -> Project:
    """A host of its own: its own directory and lock file, the one shared database (and one log)."""
    project = Project(tmp_path / name, database=url, lock_file=f"{name}.lock", time_limit="30")
    project.log = tmp_path / "ran.log"
    project.write_jobs(JOBS)
    return project


def test_a_tick_on_a_server_runs_jobs_and_messages_and_the_commands_read_it(server_url, tmp_path):
    project = host(tmp_path, "a", server_url)
    uuid = project.run("enqueue", "count", '{"n": 3, "id": 1}').stdout.strip()
    first = project.run()
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in project.ran()] == ["nightly", "step", "step", "step", "done"]
    assert project.run("-v").stderr.strip().endswith("nothing due")  # the idle fast path, on the server
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert (shown["status"], shown["offset"], shown["progress"]) == ("completed", 3, 100)
    status = project.run("status")
    assert status.returncode == 0 and status.stdout.startswith("OK - last tick"), status.stdout
    history = json.loads(project.run("history", "--json").stdout)
    assert {entry["name"] for entry in history} == {"nightly", "count", "run-cron.prune"}
    assert project.run("migrate").stdout.strip().endswith("schema version 2 is current; nothing to do")


def test_several_hosts_run_each_periodic_job_once_and_share_the_queue(server_url, tmp_path):
    hosts = [host(tmp_path, name, server_url) for name in ("a", "b", "c")]
    with cronjobs.connect(database=server_url) as queue:  # a web app's enqueue, no handlers known
        for i in range(30):
            queue.enqueue("count", {"n": 2, "id": i, "sleep": 0.01})
    ticks = [h.start() for h in hosts]
    for tick in ticks:
        out, err = tick.communicate(timeout=120)
        assert tick.returncode == 0, err
    lines = hosts[0].ran()
    assert len([line for line in lines if line.startswith("nightly")]) == 1
    assert sorted(int(line.split()[1]) for line in lines if line.startswith("done")) == list(range(30))
    # Every tick of every host is seen from any host: the last one's facts are in the database.
    assert hosts[2].run("status").stdout.startswith("OK - last tick")


def test_a_killed_host_is_resumed_from_its_checkpoint_by_another_and_a_live_one_is_left_alone(server_url, tmp_path):
    a, b = host(tmp_path, "a", server_url), host(tmp_path, "b", server_url)
    assert a.run().returncode == 0  # the daily job is done; only the message is left
    a.run("enqueue", "count", '{"n": 40, "id": 7, "sleep": 0.05}')
    tick = a.start("--time-limit", "0")
    a.wait_for(lambda: len([line for line in a.ran() if line.startswith("step")]) >= 5, timeout=60)
    # Host a is alive and holds the message: host b must not take it (no lease to guess).
    assert b.run().returncode == 0
    assert not [line for line in a.ran() if line.startswith("done")]
    tick.send_signal(signal.SIGKILL)  # the supervisor; its worker dies with it, and so does its session
    tick.wait()
    cut = len([line for line in a.ran() if line.startswith("step")])
    deadline = time.monotonic() + 30
    while not [line for line in a.ran() if line.startswith("done")]:  # the session's end reaches the server
        assert time.monotonic() < deadline, a.ran()
        assert b.run().returncode == 0
    steps = [int(line.split()[2]) for line in a.ran() if line.startswith("step")]
    assert sorted(set(steps)) == list(range(40))  # none skipped
    assert len(steps) - 40 <= 1  # resumed at the last checkpoint: at most the step in flight ran twice
    assert cut < 40
    history = json.loads(b.run("history", "--json", "--job", "count").stdout)
    assert [entry["outcome"] for entry in reversed(history)] == ["continued", "completed"]


def test_health_and_the_http_trigger_interval_see_every_hosts_ticks(server_url, tmp_path):
    from cronjobs.host.config import HttpConfig, load_config
    from cronjobs.web.store import read_health, seconds_until_allowed

    a, b = host(tmp_path, "a", server_url), host(tmp_path, "b", server_url)
    assert a.run().returncode == 0
    config = load_config(str(b.config))  # host b never ticked: it reads host a's tick from the database
    healthy, report = read_health(config)
    assert healthy and report["last_tick"]["outcome"] == "ok" and report["queue"]["completed"] == 0
    config.http = HttpConfig(min_interval=3600)
    assert 3500 < seconds_until_allowed(config) <= 3600


def test_retention_deletes_old_runs_with_their_history_in_batches(server_url):
    from cronjobs.runtime.retention import connect, prune, purge_failed

    with cronjobs.connect(database=server_url) as queue:
        for i in range(5):
            queue.enqueue("t", {"i": i})
        queue.db.execute("UPDATE message SET status = 'completed', finished_at = 1")
        queue.db.execute("INSERT INTO attempt (message_id, number, started_at, finished_at, outcome, seq_start) "
                         "SELECT id, 1, 1, 1, 'completed', 0 FROM message")
        kept, failed = queue.enqueue("t"), queue.enqueue("t")
        queue.db.execute("UPDATE message SET status = 'failed', finished_at = ? WHERE uuid = ?", (time.time(), failed))
        connection = connect(server_url)
        try:
            pruned = prune(connection, time.time(), 1, batch=2)
            assert (pruned.messages, pruned.done) == (5, True)
            assert purge_failed(connection) == 1
        finally:
            connection.close()
        assert [view.uuid for view in queue.jobs()] == [kept]
        assert queue.db.execute("SELECT COUNT(*) FROM attempt").fetchone()[0] == 0  # cascaded

