"""Metrics per job and message type: the numbers, and where they show (status --json, /health, /metrics)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import TOKEN, address_of, cli_env, fetch

from cronjobs.reports.metrics import collect, percentile, read


@pytest.fixture
def db(any_db):
    return any_db


def test_percentile_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([1.0], 0.95) == 1.0
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)


def test_collect_over_the_hour_and_the_day(db, queue, runs):
    now = time.time()
    connection = db.connection()
    for n in range(4):
        queue.enqueue("mail.send", {"n": n})
    connection.execute("UPDATE message SET created_at = ?, run_at = ?", (now - 7200 - 30, now - 7200 - 30))
    # Two runs two hours ago (one failed, then retried and completed), two in the last hour.
    for started, fail in ((now - 7200, True), (now - 7100, False), (now - 600, False), (now - 60, False)):
        run = runs.claim_message(now)
        run.attempt_started_at = started
        if fail:
            runs.fail(run, started + 4, "boom", None)
        else:
            runs.complete(run, started + 2)
    metrics = collect(connection, now)
    day, hour = metrics["mail.send"]["day"], metrics["mail.send"]["hour"]
    assert metrics["mail.send"]["kind"] == "message"
    assert (day["runs"], day["completed"], day["failed"], day["retries"]) == (4, 3, 1, 1)
    assert day["success_rate"] == 0.75 and hour["success_rate"] == 1.0
    assert (hour["runs"], hour["throughput_per_hour"]) == (2, 2.0)
    assert day["run_p50"] == 2.0 and day["run_p95"] == 4.0
    assert (day["wait_p50"], day["wait_p95"]) == (6630.0, 7170.0)  # first attempts only: 30, 6630, 7170 s
    assert read(address_of(db), 10.0, now) == metrics  # as status and /health read them


def test_status_health_and_prometheus(serve):  # noqa: F811 (the fixture imported above)
    server = serve(http={"public_metrics": "false"})
    config = server.config
    run = [sys.executable, "-m", "cronjobs", "--config", str(config)]
    subprocess.run([*run, "enqueue", "web.echo", '{"n": 1}'], env=cli_env(), check=True, capture_output=True)
    subprocess.run(run, env=cli_env(), capture_output=True, timeout=60)
    status = json.loads(subprocess.run([*run, "status", "--json"], env=cli_env(), capture_output=True,
                                       text=True).stdout)
    assert status["metrics"]["web.echo"]["hour"]["completed"] == 1
    assert status["metrics"]["every_minute"]["kind"] == "job"
    health = fetch(server.url("/health")).json
    assert health["metrics"]["web.echo"]["day"]["success_rate"] == 1.0
    assert fetch(server.url("/metrics")).status == 403
    answer = fetch(server.url("/metrics"), headers={"Authorization": "Bearer " + TOKEN})
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'run_cron_completed{kind="message",name="web.echo",window="hour"} 1' in answer.text
    assert 'run_cron_queue_messages{status="completed"} 1' in answer.text
    assert "# TYPE run_cron_run_seconds gauge" in answer.text


def test_public_metrics(serve):  # noqa: F811 (the fixture imported above)
    server = serve(http={"public_metrics": "true"})
    answer = fetch(server.url("/metrics"))
    assert answer.status == 200 and "# TYPE run_cron_queue_messages gauge" in answer.text
    assert fetch(server.url("/run")).status == 403  # the rest still needs the token
