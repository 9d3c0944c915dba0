"""Parent and child messages through real ticks: the parent completes after its children, fails with
one (unless told to ignore it), aggregates their progress, and `show` prints the tree."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import Interleaved, address_of, make_runs

import cronjobs
from cronjobs.errors import InvalidState, MessageNotFound
from cronjobs.messages import family
from cronjobs.messages.family import MAX_DEPTH
from cronjobs.messages.insert import insert_message
from cronjobs.registry import Handler
from cronjobs.reports.views import NESTED_SHOWN
from cronjobs.runtime.idle import open_fast, waiting_flows
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone

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


@pytest.fixture
def db(any_db):
    return any_db



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
        with cronjobs.connect(database=project.store) as queue:
            error = queue.get(parent).error
        assert error == f"child {view['children'][1]['uuid']} (import.part) failed: PermanentError: bad row"
    text = project.run("show", parent).stdout
    assert "children:" in text and "import.part" in text
    assert "nothing due" in project.run("-v").stderr  # and the ticks are idle again


def test_parent_waiting_shows_aggregate_progress(queue):
    parent = queue.enqueue("import", {"mode": "ok"})
    child = queue.enqueue("import.part", {"n": 9, "fail": False}, parent=parent)
    queue.db.execute("UPDATE message SET progress = 50 WHERE uuid = ?", (child,))
    assert queue.get(parent).progress == 25.0  # (0 own + 50) / 2
    assert queue.get(child).parent == parent
    with pytest.raises(MessageNotFound):
        queue.enqueue("import.part", {}, parent="no-such-uuid")
    queue.cancel(parent)
    with pytest.raises(InvalidState, match="children can be added while it is new or running"):
        queue.enqueue("import.part", {}, parent=parent)
    with pytest.raises(ValueError, match="on_child_failure"):
        queue.enqueue("import.part", {}, parent=child, on_child_failure="maybe")


def test_a_refused_child_leaves_no_message_behind(queue):
    parent = queue.enqueue("import", {"mode": "ok"})
    queue.cancel(parent)
    # Labels and the parent are written in the child's own transaction: refused, nothing is kept.
    with pytest.raises(MessageNotFound):
        queue.enqueue("import.part", {}, parent="no-such-uuid", tags=["import"], public=True)
    with pytest.raises(InvalidState):
        queue.enqueue("import.part", {}, parent=parent, tags=["import"])
    assert [view.uuid for view in queue.jobs()] == [parent]
    assert queue.jobs(tag="import") == []


def test_adding_a_child_waits_for_no_other_one_being_added(db, engine, queue):
    if engine == "sqlite":
        pytest.skip("SQLite has one writer at a time by design")
    parent = queue.enqueue("import", {"mode": "ok"})
    queue.enqueue("import.part", {}, parent=parent)  # the table exists now
    other = open_fast(address_of(db))
    other.execute("BEGIN IMMEDIATE")  # another session in the middle of adding a child
    other.execute("INSERT INTO message_child (child_uuid, parent_uuid) VALUES ('x', ?)", (parent,))
    added: list[str] = []
    adding = threading.Thread(target=lambda: added.append(queue.enqueue("import.part", {}, parent=parent)))
    adding.start()
    adding.join(5)
    waited = adding.is_alive()
    other.execute("ROLLBACK")
    adding.join()
    other.close()
    assert not waited
    assert len(added) == 1 and len(queue.get(parent).children) == 2


def test_a_parent_finishing_on_another_host_waits_for_a_child_being_added(db, engine, queue):
    if engine == "sqlite":
        pytest.skip("SQLite has one writer at a time: BEGIN IMMEDIATE serializes them")
    family.create(db.connection())
    parent = queue.enqueue("import", {"mode": "ok"})
    theirs = make_runs(db)  # the parent runs on another host
    run = theirs.claim_message(2e9)
    finishing = threading.Thread(target=theirs.complete, args=(run, 2e9))

    def finish_there():  # its handler returns while this child is being added
        finishing.start()
        finishing.join(0.5)

    connection = Interleaved(db.connection(), {"INSERT INTO message_child": finish_there})
    child = insert_message(connection, "import.part", {}, parent=parent)
    finishing.join()
    theirs.db.close()
    view = queue.get(parent)
    assert (view.status, view.waiting_for_children, [kid["uuid"] for kid in view.children]) == ("new", True, [child])


def test_parents_follow_their_children_in_a_worker(runs, registry, queue):
    def importer(ctx, payload):
        for n in range(2):
            ctx.enqueue_child("import.part", {"fail": payload["mode"] != "ok" and n == 1},
                              on_child_failure="ignore" if payload["mode"] == "ignore" else "fail")

    def part(ctx, payload):
        if payload["fail"]:
            raise cronjobs.PermanentError("bad row")

    registry.add_handler(Handler("import", importer))
    registry.add_handler(Handler("import.part", part))
    parents = {mode: queue.enqueue("import", {"mode": mode}) for mode in ("ok", "fail", "ignore")}
    Worker(runs, registry, get_timezone("Europe/Berlin"), retry_backoff=0, periodic=False).run()
    assert {mode: queue.get(uuid).status for mode, uuid in parents.items()} == {
        "ok": "completed", "fail": "failed", "ignore": "completed"}
    kids = queue.get(parents["fail"]).children
    assert [kid["status"] for kid in kids] == ["completed", "failed"]
    assert queue.get(parents["fail"]).error == f"child {kids[1]['uuid']} (import.part) failed: PermanentError: bad row"
    assert queue.counts()["new"] == 0 and not waiting_flows(runs.db)


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


TREE = """
@cronjobs.handler("tree")
def tree(ctx, payload):
    ctx.enqueue_child("tree.branch", {})
    ctx.enqueue_child("tree.leaf", {"fail": True}, on_child_failure="ignore")

@cronjobs.handler("tree.branch")
def branch(ctx, payload):
    ctx.enqueue_child("tree.leaf", {}, delay=3600)

@cronjobs.handler("tree.leaf")
def leaf(ctx, payload):
    if payload.get("fail"):
        raise cronjobs.PermanentError("bad row")
"""


def test_show_prints_grandchildren_and_progress_counts_them(project):
    project.write_jobs(TREE)
    parent = project.run("enqueue", "tree").stdout.strip()
    assert project.run().returncode == 1  # the ignored child failed
    view = show(project, parent)
    branch, failed = view["children"]
    (grandchild,) = branch["children"]
    with project.connect() as db:  # the grandchild's handler checkpointed 40 %
        db.execute("UPDATE message SET progress = 40 WHERE uuid = ?", (grandchild["uuid"],))
    view = show(project, parent)
    branch, failed = view["children"]
    assert view["status"] == "new" and view["waiting_for_children"] is True
    assert (branch["type"], branch["status"], branch["waiting_for_children"], branch["children_total"]) == (
        "tree.branch", "new", True, 1)
    assert branch["progress"] == 70.0  # (its own 100, returned, + 40) / 2
    assert view["progress"] == 90.0  # (100 + 70 + 100 for the failed child, which has finished) / 3
    assert failed["children"] == [] and failed["children_total"] == 0 and failed["status"] == "failed"
    assert show(project, grandchild["uuid"])["parent"] == branch["uuid"]
    assert show(project, branch["uuid"])["progress"] == 70.0
    text = project.run("show", parent).stdout
    assert text.split("children:\n", 1)[1].splitlines() == [
        f"  {branch['uuid']} tree.branch new, waiting for its children 70%",
        f"    {grandchild['uuid']} tree.leaf new 40%",
        f"  {failed['uuid']} tree.leaf failed 0% (PermanentError: bad row)",
    ]
    assert "progress:    90.0" in text


def test_show_bounds_a_deep_tree(project):
    project.write_jobs(TREE)
    with cronjobs.connect(database=project.store) as queue:
        top = queue.enqueue("tree", {})
        chain = [top]
        for _ in range(MAX_DEPTH + 3):
            chain.append(queue.enqueue("tree.leaf", {}, parent=chain[-1]))
        many = [queue.enqueue("tree.leaf", {}, parent=chain[2]) for _ in range(NESTED_SHOWN + 5)]
    lines = project.run("show", top).stdout.split("children:\n", 1)[1].splitlines()
    # each generation two spaces further in, as deep as MAX_DEPTH; a message's own children all listed,
    # deeper ones NESTED_SHOWN each
    assert [line.split()[0] for line in lines if not line.lstrip().startswith("...")] == (
        chain[1:MAX_DEPTH + 1] + many[:NESTED_SHOWN - 1])
    deepest = 2 * MAX_DEPTH
    assert lines[MAX_DEPTH - 1].startswith(" " * deepest + chain[MAX_DEPTH] + " tree.leaf new 0%")
    assert lines[MAX_DEPTH] == " " * (deepest + 2) + f"... 1 more below (run-cron show {chain[MAX_DEPTH]})"
    assert lines[-1] == f"      ... and {len(many) + 1 - NESTED_SHOWN} more (run-cron show {chain[2]})"
    assert json.loads(project.run("show", chain[MAX_DEPTH], "--json").stdout)["children"][0]["uuid"] == \
        chain[MAX_DEPTH + 1]


def test_a_three_generation_family_settles_in_one_tick(project):
    project.write_jobs(TREE.replace(", delay=3600", ""))
    parent = project.run("enqueue", "tree").stdout.strip()
    assert project.run().returncode == 1  # the ignored child failed
    view = show(project, parent)
    assert (view["status"], view["progress"]) == ("completed", 100)  # not a tick per generation
    assert view["children"][0]["status"] == "completed"
    assert view["children"][0]["children"][0]["status"] == "completed"


def test_a_settled_family_without_any_batch_or_chain_is_no_flow_to_move(queue):
    from cronjobs.messages import flows
    from cronjobs.messages.family import hold_parents

    parent = queue.enqueue("import", {})
    child = queue.enqueue("import.part", {}, parent=parent)
    queue.db.execute("UPDATE message SET status = 'completed' WHERE uuid IN (?, ?)", (parent, child))
    hold_parents(queue.db, [parent])  # its handler returned after its only child had finished
    assert flows.advance(queue.db) == []  # no flow table: nothing to move, not "no such table: flow"
    assert queue.get(parent).waiting_for_children is True


def test_a_family_reads_the_same_on_every_engine(any_db):
    from cronjobs.messages.family import ancestors, family_progress, hold_parents
    from cronjobs.messages.queue import Queue
    from cronjobs.web.tree import arrange

    queue = Queue(any_db)
    parent = queue.enqueue("tree", {})
    branch = queue.enqueue("tree.branch", {}, parent=parent)
    failed = queue.enqueue("tree.leaf", {}, parent=parent, on_child_failure="ignore")
    leaf = queue.enqueue("tree.leaf", {}, parent=branch)
    db = queue.db
    db.execute("UPDATE message SET status = 'completed' WHERE uuid IN (?, ?)", (parent, branch))
    hold_parents(db, [parent, branch])  # both handlers returned: they wait for their children
    db.execute("UPDATE message SET status = 'failed', error = 'bad row' WHERE uuid = ?", (failed,))
    db.execute("UPDATE message SET status = 'pending', progress = 40 WHERE uuid = ?", (leaf,))
    view = queue.get(parent)
    assert view.progress == 90.0 and [kid["uuid"] for kid in view.children] == [branch, failed]
    assert view.children[0]["children"][0]["uuid"] == leaf and view.children[0]["progress"] == 70.0
    assert ancestors(db, [leaf, parent]) == {leaf: [branch, parent], parent: []}
    assert family_progress(db, [leaf]) == {branch: 70.0, parent: 90.0}
    roots = queue.jobs(roots_only=True)
    assert [v.uuid for v in roots] == [parent]
    layout = arrange(db, queue.jobs(), filtered=True)
    assert [v.uuid for v in layout.rows] == [parent]
    assert [kid.uuid for kid in layout.shown[parent]] == [branch, failed] and layout.progress[parent] == 90.0
    assert [kid.uuid for kid in layout.shown[branch]] == [leaf]
