"""Parent and child messages through real ticks: the parent completes after its children, fails with
one (unless told to ignore it), aggregates their progress, and `show` prints the tree."""

from __future__ import annotations

import json

import pytest

import cronjobs
from cronjobs.errors import InvalidState, MessageNotFound

JOBS = """
@cronjobs.handler("import")
def importer(ctx, payload):
    record("parent", payload["mode"])
    for n in range(3):
        ctx.enqueue_child("import.part", {"n": n, "fail": payload["mode"] != "ok" and n == 1},
                          on_child_failure="ignore" if payload["mode"] == "ignore" else "fail")

@cronjobs.handler("import.part")
def part(ctx, payload):
    record("child", payload["n"])
    if payload["fail"]:
        raise cronjobs.PermanentError("bad row")
"""


def show(project, uuid):
    return json.loads(project.run("show", uuid, "--json").stdout)


@pytest.mark.parametrize("mode, final", [("ok", "completed"), ("fail", "failed"), ("ignore", "completed")])
def test_parent_waits_for_its_children(project, mode, final):
    project.write_jobs(JOBS)
    parent = project.run("enqueue", "import", json.dumps({"mode": mode})).stdout.strip()
    result = project.run()
    assert project.ran() == [f"parent {mode}", "child 0", "child 1", "child 2"]
    assert result.returncode == (0 if mode == "ok" else 1)
    view = show(project, parent)
    assert view["status"] == final and view["progress"] == 100
    assert [kid["status"] for kid in view["children"]] == (
        ["completed"] * 3 if mode == "ok" else ["completed", "failed", "completed"])
    assert show(project, view["children"][0]["uuid"])["parent"] == parent
    if mode == "fail":
        with cronjobs.connect(database=str(project.database)) as queue:
            error = queue.get(parent).error
        assert error == f"child {view['children'][1]['uuid']} (import.part) failed: PermanentError: bad row"
    text = project.run("show", parent).stdout
    assert "children:" in text and "import.part" in text
    assert "nothing due" in project.run("-v").stderr  # and the ticks are idle again


def test_parent_waiting_shows_aggregate_progress(project, db):
    project.write_jobs(JOBS)
    with cronjobs.connect(database=str(project.database)) as queue:
        parent = queue.enqueue("import", {"mode": "ok"})
        child = queue.enqueue("import.part", {"n": 9, "fail": False}, parent=parent)
        queue.db.execute("UPDATE message SET progress = 50 WHERE uuid = ?", (child,))
        assert queue.get(parent).progress == 25.0  # (0 own + 50) / 2
        with pytest.raises(MessageNotFound):
            queue.enqueue("import.part", {}, parent="no-such-uuid")
        queue.cancel(parent)
        with pytest.raises(InvalidState, match="children can be added while it is new or running"):
            queue.enqueue("import.part", {}, parent=parent)
        with pytest.raises(ValueError, match="on_child_failure"):
            queue.enqueue("import.part", {}, parent=child, on_child_failure="maybe")


def test_a_child_cut_at_the_time_limit_continues_and_the_parent_follows(project):
    project.write_jobs("""
    @cronjobs.handler("export")
    def export(ctx, payload):
        ctx.enqueue_child("export.rows", {"rows": 30})

    @cronjobs.handler("export.rows")
    def rows(ctx, payload):
        for n in range(ctx.offset or 0, payload["rows"]):
            time.sleep(0.1)
            ctx.checkpoint(offset=n + 1, done=n + 1, total=payload["rows"])
        record("rows done")
    """)
    parent = project.run("enqueue", "export").stdout.strip()
    for _ in range(20):
        assert project.run("--time-limit", "2").returncode == 0
        if show(project, parent)["status"] != "new":
            break
    view = show(project, parent)
    assert view["status"] == "completed" and project.ran() == ["rows done"]
    child = show(project, view["children"][0]["uuid"])
    assert child["status"] == "completed" and child["attempts_used"] == 0  # continuations use no attempt
