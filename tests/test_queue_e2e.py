"""Queued messages through real processes: kills, hard limits, concurrent enqueuers, and the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from conftest import cli_env

COUNTER = """
@cronjobs.handler("count")
def count(ctx, payload):
    for i in range(ctx.offset or 0, payload["n"]):
        record(i)
        time.sleep(payload.get("sleep", 0))
        ctx.checkpoint(offset=i + 1, done=i + 1, total=payload["n"])
"""


def processed(project):
    return [int(line) for line in project.ran()]


def test_sigkill_mid_run_resumes_at_the_last_checkpoint_and_skips_nothing(project):
    project.write_jobs(COUNTER)
    uuid = project.run("enqueue", "count", '{"n": 40, "sleep": 0.02}').stdout.strip()
    tick = project.start("--time-limit", "0")
    project.wait_for(lambda: len(project.ran()) >= 10)
    tick.send_signal(signal.SIGKILL)
    tick.wait()
    time.sleep(0.2)  # the worker dies with its supervisor
    cut = len(project.ran())
    assert cut < 40
    assert project.run("--time-limit", "0").returncode == 0
    items = processed(project)
    assert sorted(set(items)) == list(range(40))  # none skipped
    assert len(items) - 40 <= 1  # at most the item in flight at the kill ran twice
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert (shown["status"], shown["offset"], shown["progress"], shown["attempts_used"]) == ("completed", 40, 100, 0)


def test_handler_sleeping_past_the_limit_is_cut_and_finishes_over_later_ticks(project):
    project.write_jobs(COUNTER)
    uuid = project.run("enqueue", "count", '{"n": 16, "sleep": 0.25}').stdout.strip()  # 4 s of work
    ticks = 0
    while ticks < 10 and json.loads(project.run("show", uuid, "--json").stdout)["status"] != "completed":
        result = project.run("--time-limit", "2")
        assert result.returncode == 0, result.stderr  # cut with progress: a continuation, not a failure
        ticks += 1
    assert ticks >= 2, "a 2 s limit must have cut 4 s of work"
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert shown["status"] == "completed" and shown["attempts_used"] == 0
    assert sorted(set(processed(project))) == list(range(16))


def test_a_run_cut_without_progress_uses_up_attempts_and_fails(project):
    project.write_jobs("""
@cronjobs.handler("stuck")
def stuck(ctx, payload):
    record("stuck")
    time.sleep(60)

@cronjobs.handler("ok")
def ok(ctx, payload):
    record("ok")
""")
    stuck = project.run("enqueue", "stuck", "--max-attempts", "2", "--priority", "9").stdout.strip()
    project.run("enqueue", "ok")
    # 2 s: a tick's own start (a server's driver and connections) on a busy machine must leave time for a run
    ticks = [project.run("-v", "--time-limit", "2") for _ in range(2)]
    assert [tick.returncode for tick in ticks] == [1, 1], [tick.stderr for tick in ticks]
    ticks.append(project.run("-v"))  # the configuration's 20 s: time for `ok` however busy the machine
    shown = json.loads(project.run("show", stuck, "--json").stdout)
    assert (shown["status"], shown["attempts"]) == ("failed", 2)
    assert shown["errors"][0]["error"] == "stopped: the time limit was reached"
    assert project.ran().count("ok") == 1, [tick.stderr for tick in ticks]


ENQUEUER = """
import sys, cronjobs
queue = cronjobs.connect(sys.argv[1])
for i in range(500):
    queue.enqueue("work", {"producer": sys.argv[2], "i": i})
print("done")
"""


def test_four_enqueuers_while_ticks_run_complete_2000_exactly_once(project):
    project.write_config(busy_timeout="10")
    project.write_jobs("""
@cronjobs.handler("work")
def work(ctx, payload):
    record(payload["producer"], payload["i"])
""")
    env = cli_env()
    producers = [subprocess.Popen([sys.executable, "-c", ENQUEUER, str(project.config), str(n)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    ticks = []
    while any(p.poll() is None for p in producers):
        ticks.append(project.run("--time-limit", "10"))
    for producer in producers:
        out, err = producer.communicate()
        assert (producer.returncode, out.strip(), err) == (0, "done", "")
    for _ in range(5):
        ticks.append(project.run("--time-limit", "20"))
        if len(project.ran()) == 2000:
            break
    assert all(t.returncode == 0 and "locked" not in t.stderr for t in ticks), [t.stderr for t in ticks]
    lines = project.ran()
    assert len(lines) == 2000 and len(set(lines)) == 2000
    counts = json.loads(project.run("jobs", "--json", "--status", "completed").stdout)
    assert len(counts) == 2000


def test_queue_commands_end_to_end(project):
    project.write_jobs("""
@cronjobs.handler("report")
def report(ctx, payload):
    ctx.warn("3 rows skipped")
    ctx.attach("report.csv", "a,b\\n1,2\\n")
    ctx.checkpoint(state={"rows": 2}, done=2, total=2)

@cronjobs.handler("fail")
def fail(ctx, payload):
    raise cronjobs.PermanentError("no such library")
""")
    uuid = project.run("enqueue", "report", '{"x": 1}', "--priority", "2", "--key", "k1").stdout.strip()
    assert project.run("enqueue", "report", "--key", "k1").stdout.strip() == uuid
    failing = project.run("enqueue", "fail").stdout.strip()
    delayed = project.run("enqueue", "report", "--delay", "3600").stdout.strip()
    cancelled = project.run("enqueue", "report").stdout.strip()
    assert project.run("cancel", cancelled).returncode == 0
    assert project.run().returncode == 1  # the permanent failure
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert (shown["status"], shown["state"], shown["priority"], shown["key"]) == ("completed", {"rows": 2}, 2, "k1")
    assert [w["text"] for w in shown["warnings"]] == ["3 rows skipped"]
    assert shown["attachments"] == [{"name": "report.csv", "size": 8}]
    assert project.run("attachment", uuid, "report.csv").stdout == "a,b\n1,2\n"
    out = project.path / "out.csv"
    assert project.run("attachment", uuid, "report.csv", "-o", str(out)).returncode == 0
    assert out.read_text() == "a,b\n1,2\n"
    human = project.run("show", failing).stdout
    assert "status:      failed" in human and "PermanentError: no such library" in human
    statuses = {j["uuid"]: j["status"] for j in json.loads(project.run("jobs", "--json").stdout)}
    assert statuses == {uuid: "completed", failing: "failed", delayed: "new", cancelled: "cancelled"}
    table = project.run("jobs", "--status", "failed").stdout.splitlines()
    assert table[0].split()[:3] == ["UUID", "TYPE", "STATUS"] and failing in table[1]
    assert project.run("retry", failing).returncode == 0
    assert json.loads(project.run("show", failing, "--json").stdout)["status"] == "new"
    project.run()
    assert project.run("retry", "--failed").returncode == 0
    assert json.loads(project.run("show", failing, "--json").stdout)["attempts"] == 0


def test_queue_command_errors_are_one_line_with_exit_2(project):
    project.write_jobs("")
    cases = [
        (("enqueue", "t", "{not json"), "run-cron: error: PAYLOAD_JSON is not valid JSON: "),
        (("show", "nope"), "run-cron: error: no message with uuid 'nope'"),
        (("cancel", "nope"), "run-cron: error: no message with uuid 'nope'"),
        (("retry",), "run-cron: error: give either a UUID or --failed"),
    ]
    for args, message in cases:
        result = project.run(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), (args, result.stderr)
    uuid = project.run("enqueue", "t", "--allow-unknown-type").stdout.strip()
    result = project.run("attachment", uuid, "missing.txt")
    assert (result.returncode, result.stderr.strip()) == (
        2, f"run-cron: error: message '{uuid}' has no attachment named 'missing.txt'")


def test_a_kill_in_a_batch_charges_only_the_run_in_flight(project):
    project.write_jobs("""
@cronjobs.handler("fast")
def fast(ctx, payload):
    record("fast", payload)

@cronjobs.handler("hang")
def hang(ctx, payload):
    record("hang")
    time.sleep(60)
""")
    queue_script = (
        "import sys, cronjobs\n"
        "q = cronjobs.connect(sys.argv[1])\n"
        "for i in range(40): q.enqueue('fast', i, priority=5)\n"
        "print(q.enqueue('hang', max_attempts=1, priority=4))\n"
        "for i in range(40, 80): q.enqueue('fast', i, priority=3)\n"
    )
    hang = subprocess.run([sys.executable, "-c", queue_script, str(project.config)], capture_output=True,
                          text=True, env=cli_env(), check=True).stdout.strip()
    first = project.run("--time-limit", "1.5")
    assert first.returncode == 1
    with project.connect() as db:
        rows = db.execute("SELECT payload, status, attempts, "
                          "(SELECT COUNT(*) FROM attempt a WHERE a.message_id = m.id) "
                          "FROM message m WHERE type = 'fast' ORDER BY id").fetchall()
    assert [row[1:] for row in rows[:40]] == [("completed", 0, 1)] * 40  # all committed, none lost
    assert [row[1:] for row in rows[40:]] == [("new", 0, 0)] * 40  # never started: untouched
    shown = json.loads(project.run("show", hang, "--json").stdout)
    assert (shown["status"], shown["attempts"]) == ("failed", 1)
    assert project.run("--time-limit", "5").returncode == 0
    fast_runs = [line for line in project.ran() if line.startswith("fast")]
    assert sorted(fast_runs) == sorted(f"fast {i}" for i in range(80))  # each exactly once


def test_retry_never_resurrects_a_periodic_job_run(project):
    project.write_jobs("""
@cronjobs.daily
def bad(ctx):
    record("bad")
    raise RuntimeError("x")

@cronjobs.handler("m")
def m(ctx, payload):
    record("m")
    raise RuntimeError("y")
""")
    message = project.run("enqueue", "m", "--max-attempts", "1").stdout.strip()
    assert project.run().returncode == 1
    (run,) = [r["uuid"] for r in json.loads(project.run("history", "--json").stdout) if r["name"] == "bad"]
    result = project.run("retry", "--failed")
    assert result.returncode == 0
    assert json.loads(project.run("show", run, "--json").stdout)["status"] == "failed"
    assert json.loads(project.run("show", message, "--json").stdout)["status"] == "new"
    refused = project.run("retry", run)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"run-cron: error: {run} is a run of the periodic job 'bad', which retries on its schedule; "
        "to run it now: run-cron --force bad"]
    assert json.loads(project.run("show", run, "--json").stdout)["status"] == "failed"
