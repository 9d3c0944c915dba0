"""The resumable-handler patterns README.md and examples/ show, run as written through the real CLI."""

from __future__ import annotations

import json
import re

from conftest import ROOT


def readme_handler() -> str:
    """The `library.sync` handler exactly as README.md shows it."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r'(@cronjobs\.handler\("library\.sync"\)\n.*?)\n```', readme, re.S)
    assert block, "README.md no longer shows the library.sync handler"
    return block.group(1)


def attempts(project, uuid):
    with project.connect() as db:
        return db.execute(
            "SELECT attempt.outcome, attempt.error FROM attempt JOIN message ON message.id = attempt.message_id "
            "WHERE message.uuid = ? ORDER BY attempt.id", (uuid,)).fetchall()


def drain_over_ticks(project, uuid, time_limit="2", max_ticks=80):
    """Tick until the message completes; returns the statuses seen after each tick."""
    seen = []
    for _ in range(max_ticks):
        result = project.run("--time-limit", time_limit)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # a run continued next tick is not a failure: cron mails nothing
        shown = json.loads(project.run("show", uuid, "--json").stdout)
        seen.append((shown["status"], shown["attempts_used"], shown.get("error")))
        if shown["status"] == "completed":
            break
    assert shown["status"] == "completed", seen
    return seen, shown


def test_readme_resume_pattern_processes_every_item_once_over_several_ticks(project):
    project.write_jobs(
        "ITEMS = list(range(300))\n"
        "def fetch_items(library): return ITEMS\n"
        "def import_item(item):\n"
        "    record(item)\n"
        "    time.sleep(0.01)\n" + readme_handler() + "\n"
    )
    uuid = project.run("enqueue", "library.sync", '{"library": "main"}').stdout.strip()
    seen, shown = drain_over_ticks(project, uuid)
    assert len(seen) >= 2, "the time limit should have cut the handler at least once"
    assert all(status in ("new", "pending") and tries == 0 and error is None for status, tries, error in seen[:-1])
    assert sorted(int(line) for line in project.ran()) == list(range(300))  # each item exactly once
    assert (shown["status"], shown["offset"], shown["progress"], shown["attempts_used"], shown.get("error")) == (
        "completed", 300, 100, 0, None)
    assert shown["attempts"] == 1  # as history numbers them: continued runs are one attempt
    outcomes = attempts(project, uuid)
    assert outcomes == [("continued", None)] * (len(seen) - 1) + [("completed", None)]


def test_example_counter_resumes_across_ticks_with_offset_and_state(project):
    project.write_config(python_path=str(ROOT / "examples"), jobs="example_jobs")
    uuid = project.run("enqueue", "example.count", '{"to": 300}').stdout.strip()
    seen, shown = drain_over_ticks(project, uuid)
    assert len(seen) >= 2
    assert all(tries == 0 and error is None for _, tries, error in seen)
    assert (shown["status"], shown["offset"], shown["state"], shown["attempts_used"]) == (
        "completed", 300, {"sum": sum(range(300))}, 0)


def test_return_resume_later_continues_next_tick_without_an_attempt(project):
    project.write_jobs("""
@cronjobs.handler("later")
def later(ctx, payload):
    record("run", ctx.offset)
    if ctx.offset is None:
        ctx.checkpoint(offset=1)
        return ctx.resume_later()
""")
    uuid = project.run("enqueue", "later").stdout.strip()
    first = project.run()
    assert first.returncode == 0, first.stderr
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert (shown["status"], shown["attempts_used"], shown.get("error")) == ("new", 0, None)
    assert project.run().returncode == 0
    shown = json.loads(project.run("show", uuid, "--json").stdout)
    assert (shown["status"], shown["attempts_used"], shown["attempts"]) == ("completed", 0, 1)
    assert project.ran() == ["run None", "run 1"]


def test_except_exception_around_the_checkpoint_does_not_swallow_the_stop(project):
    project.write_jobs("""
@cronjobs.handler("careful")
def careful(ctx, payload):
    for i in range(ctx.offset or 0, 300):
        try:
            record(i)
            time.sleep(0.01)
            ctx.checkpoint(offset=i + 1)
        except Exception:
            record("swallowed")
""")
    uuid = project.run("enqueue", "careful").stdout.strip()
    seen, shown = drain_over_ticks(project, uuid)
    assert len(seen) >= 2 and shown["status"] == "completed"
    assert sorted(int(line) for line in project.ran()) == list(range(300))


def test_periodic_job_checkpointing_past_the_deadline_resumes_and_completes_once(project):
    project.write_jobs("""
@cronjobs.daily
def export(ctx):
    for i in range(ctx.offset or 0, 200):
        record(i)
        time.sleep(0.01)
        ctx.checkpoint(offset=i + 1, done=i + 1, total=200)
""")
    for _ in range(80):
        result = project.run("--time-limit", "2")
        assert result.returncode == 0, result.stderr
        with project.connect() as db:
            state = db.execute("SELECT last_outcome, current FROM job_state WHERE name = 'export'").fetchone()
        if state[0] is not None:
            break
        assert state[1] is not None  # unfinished: the run stays the job's current one
    assert state == ("completed", None)
    assert sorted(int(line) for line in project.ran()) == list(range(200))
    with project.connect() as db:
        runs = db.execute("SELECT status, attempts FROM message WHERE type = 'export'").fetchall()
    assert runs == [("completed", 0)]
    assert project.run("--time-limit", "1.2").returncode == 0
    assert len(project.ran()) == 200  # done for today: not run again
