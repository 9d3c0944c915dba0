"""Rate limits per message type: parsing, the sliding window, and real ticks under faketime."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import LIBFAKETIME, TOKEN, Interleaved, Server, address_of, cli_env, fetch, make_runs, web_project

from cronjobs.control.rates import budget, parse_rate
from cronjobs.registry import Handler
from cronjobs.runtime.idle import is_idle, open_fast
from cronjobs.runtime.tick import SCHEMA_VERSION
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone
from cronjobs.store.server_runs import ServerRuns

TZ = get_timezone("Europe/Berlin")


@pytest.fixture
def db(any_db):
    return any_db


@pytest.mark.parametrize("text, expected", [("200/h", (200, 3600.0)), ("5/min", (5, 60.0)),
                                            ("1000 / d", (1000, 86400.0)), ("3/hour", (3, 3600.0))])
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["200", "0/h", "5/week", "-1/h", "x/h"])
def test_bad_rate(text):
    with pytest.raises(ValueError, match=r"expected a count per minute, hour or day such as \"200/h\""):
        parse_rate(text)


def test_budget_is_a_sliding_window(db, queue, runs):
    base = time.time() + 10
    for _ in range(3):
        queue.enqueue("mail.send", {})
    for now in (base, base + 100):
        run = runs.claim_message(now)
        runs.complete(run, now + 1)
    assert budget(db.connection(), "mail.send", (2, 3600.0), base + 200) == (0, base + 3600)
    assert budget(db.connection(), "mail.send", (2, 3600.0), base + 3601) == (1, None)
    assert budget(db.connection(), "other", (2, 3600.0), base + 200) == (2, None)


def test_a_worker_starts_no_more_than_the_limit(db, runs, registry, queue):
    ran = []
    registry.add_handler(Handler("mail.send", lambda ctx, payload: ran.append(payload), rate=(3, 3600.0)))
    registry.add_handler(Handler("log.write", lambda ctx, payload: ran.append("log")))
    uuids = [queue.enqueue("mail.send", n) for n in range(5)]
    queue.enqueue("log.write")
    events = []
    start = time.time()
    Worker(runs, registry, TZ, retry_backoff=0, emit=lambda event, **fields: events.append((event, fields))).run()
    assert ran == [0, 1, 2, "log"]
    assert [(queue.get(uuid).status, queue.get(uuid).attempts_used) for uuid in uuids[3:]] == [("new", 0)] * 2
    assert [fields["reason"].split(":")[0] for event, fields in events if event == "skipped"] == [
        "rate limit 3/h reached"]
    limits = [("mail.send", (3, 3600.0))]
    assert is_idle(db.connection(), [], time.time() + 5, SCHEMA_VERSION, rates=limits)
    assert not is_idle(db.connection(), [], start + 3700, SCHEMA_VERSION, rates=limits)
    Worker(runs, registry, TZ, retry_backoff=0, clock=lambda: start + 3700).run()
    assert ran[4:] == [3, 4]


def test_two_hosts_share_one_limit(db, engine, registry, queue):
    if engine == "sqlite":
        pytest.skip("one worker per SQLite store: the tick's lock file")
    ran = []
    registry.add_handler(Handler("mail.send", lambda ctx, payload: ran.append(payload), rate=(3, 3600.0)))
    for n in range(6):
        queue.enqueue("mail.send", n)
    there = Worker(make_runs(db), registry, TZ, retry_backoff=0, periodic=False)
    draining = threading.Thread(target=there.run)

    def drain_there():  # the other host's worker drains while this one has read the budget
        draining.start()
        draining.join(0.5)

    here = ServerRuns(Interleaved(open_fast(address_of(db)), {"SELECT attempt_started_at FROM message": drain_there}))
    Worker(here, registry, TZ, retry_backoff=0, periodic=False).run()
    draining.join()
    for runs in (here, there.runs):
        runs.db.close()
    assert sorted(ran) == [0, 1, 2] and queue.counts()["new"] == 3


JOBS = """
@cronjobs.handler("mail.send", rate="3/h")
def send(ctx, payload): record("mail", payload["n"])

@cronjobs.handler("log.write")
def write(ctx, payload): record("log")
"""


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed")
def test_over_the_limit_waits_without_using_attempts(project):
    project.write_jobs(JOBS)
    uuids = [project.run_at("2026-06-01 08:00:00", "enqueue", "mail.send", json.dumps({"n": n})).stdout.strip()
             for n in range(5)]
    project.run_at("2026-06-01 08:00:00", "enqueue", "log.write")
    result = project.run_at("2026-06-01 08:00:10", "-v")
    assert result.returncode == 0, result.stderr
    assert project.ran() == ["mail 0", "mail 1", "mail 2", "log"]
    assert "rate limit 3/h reached" in result.stderr
    waiting = [json.loads(project.run_at("2026-06-01 08:00:20", "show", uuid, "--json").stdout)
               for uuid in uuids[3:]]
    assert [(view["status"], view["attempts_used"]) for view in waiting] == [("new", 0), ("new", 0)]
    idle = project.run_at("2026-06-01 08:30:10", "-v")  # nothing may start: an idle tick, no worker
    assert "nothing due" in idle.stderr
    assert project.run_at("2026-06-01 09:00:05").returncode == 0  # the window is still full until 09:00:10
    assert len(project.ran()) == 4
    assert project.run_at("2026-06-01 09:00:30").returncode == 0
    assert project.ran()[4:] == ["mail 3", "mail 4"]


def test_bad_rate_names_the_handler(project):
    project.write_jobs("""
    @cronjobs.handler("mail.send", rate="lots")
    def send(ctx, payload): pass
    """)
    result = project.run()
    assert result.returncode == 2
    assert "mail.send" in result.stderr and "rate='lots'" in result.stderr and "Traceback" not in result.stderr


def test_status_page_says_why_messages_wait(tmp_path):
    project = web_project(tmp_path / "site")
    jobs = project.path / "jobs.py"
    limited = '@cronjobs.handler("web.echo", rate="1/h")'
    jobs.write_text(jobs.read_text().replace('@cronjobs.handler("web.echo")', limited))
    for n in range(2):
        assert project.run("enqueue", "web.echo", json.dumps({"n": n})).returncode == 0
    assert project.run().returncode == 0
    server = Server([*project.command(), "serve", "--port", "0"], project.path, cli_env())
    try:
        page = fetch(server.url("/?token=" + TOKEN)).text
    finally:
        server.stop()
    assert "rate limit 1/h reached; the next may start at" in page
