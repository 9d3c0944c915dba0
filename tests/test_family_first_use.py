"""The first child ever: a parent claimed before the table of children existed still waits for a child
that another process (a web request) gives it while its handler runs, on every engine."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from conftest import Interleaved, address_of, cli_env, make_runs, orphaned

from cronjobs.messages.queue import Queue
from cronjobs.registry import Handler
from cronjobs.runtime.board import BoardState
from cronjobs.runtime.idle import open_fast
from cronjobs.runtime.runs import Runs
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone
from cronjobs.store import connect_store

#: A web application's request: its own process and connection, `enqueue(..., parent=UUID)`.
WEB_REQUEST = ("import sys, cronjobs\n"
               "with cronjobs.connect(database=sys.argv[1]) as queue:\n"
               "    queue.enqueue('import.part', {'parent': sys.argv[2]}, parent=sys.argv[2])\n")


@pytest.fixture
def db(any_db):
    return any_db


def web_request(store: str, parent: str) -> None:
    subprocess.run([sys.executable, "-c", WEB_REQUEST, store, parent], check=True, env=cli_env(), timeout=60)


def test_a_child_queued_by_another_process_while_its_parent_runs_holds_the_parent(db, registry, queue):
    """No family existed when the worker claimed the parent; a web request gives it its first child."""
    seen: list[str] = []
    registry.add_handler(Handler("import", lambda ctx, payload: web_request(address_of(db), ctx.job.uuid)))
    registry.add_handler(Handler("import.part", lambda ctx, payload: seen.append(queue.get(payload["parent"]).status)))
    parent = queue.enqueue("import", {})
    runs = make_runs(db)
    Worker(runs, registry, get_timezone("Europe/Berlin"), retry_backoff=0, periodic=False).run()
    assert seen == ["new"]  # its handler had returned: it waited for the child, not completed before it
    view = queue.get(parent)
    assert (view.status, [kid["status"] for kid in view.children]) == ("completed", ["completed"])
    child = queue.get(view.children[0]["uuid"])
    assert view.finished_at >= child.finished_at


class AfterEvenAFailure(Interleaved):
    """Interleaved that also runs the work after a statement that failed (a look for a missing table)."""

    def execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return self.connection.execute(sql, params)
        finally:
            for text in [text for text in self.between if sql.startswith(text)]:
                self.between.pop(text)()


def runs_on(db: Any, connection: Any) -> Runs:
    if getattr(db, "is_server", False):
        from cronjobs.store.server_runs import ServerRuns

        return ServerRuns(connection, 0)
    return Runs(connection, 0)


def test_a_child_queued_right_after_the_worker_looked_for_families_holds_the_parent(db, queue):
    """The worker looks for the table of children, finds none, and a web request adds the parent's first
    child before the worker's claim (or right after it, while it runs): the parent waits all the same."""
    parent = queue.enqueue("import", {})
    web = Queue(*connect_store(address_of(db)))
    connection = AfterEvenAFailure(open_fast(address_of(db)), {
        "SELECT 1 FROM message_child": lambda: web.enqueue("import.part", {}, parent=parent)})
    runs = runs_on(db, connection)
    run = runs.claim_message(2e9)
    assert run is not None and run.uuid == parent and not connection.between  # the child came in between
    runs.complete(run, 2e9)  # a slow handler: committed at once, with no claim after it
    connection.close()
    web.close()
    view = queue.get(parent)
    assert (view.status, view.waiting_for_children, len(view.children)) == ("new", True, 1)


def test_recovery_that_commits_a_parents_success_holds_it_for_its_children(db, queue):
    """A worker killed after its parent's handler returned: the supervisor's recovery commits that success
    on a connection that never looked for families, and the parent still waits for its children."""
    parent = queue.enqueue("import", {})
    queue.enqueue("import.part", {}, parent=parent)
    dead = make_runs(db)
    run = dead.claim_message(2e9)
    dead.defer_complete(run, 2e9)  # on its board, not committed when it was killed
    survivor = orphaned(dead, db)
    if survivor is dead:  # SQLite: the supervisor's own Runs, not the dead worker's
        survivor = make_runs(db)
    settled = survivor.recover(2e9, "crashed", BoardState(None, [run.id], [run.id]))
    assert [(item.uuid, outcome) for item, outcome in settled] == [(parent, "completed")]
    view = queue.get(parent)
    assert (view.status, view.waiting_for_children) == ("new", True)


def test_a_tick_holds_a_parent_given_a_child_by_a_web_request_while_it_ran(project):
    """The user's path: a tick runs the parent while the site's web app gives it its first child."""
    project.write_jobs(f"""
    import subprocess

    @cronjobs.handler("import")
    def importer(ctx, payload):
        subprocess.run([sys.executable, "-c", {WEB_REQUEST!r}, {project.store!r}, ctx.job.uuid], check=True)

    @cronjobs.handler("import.part")
    def part(ctx, payload):
        with cronjobs.connect(database={project.store!r}) as queue:
            record("parent", queue.get(payload["parent"]).status)
    """)
    parent = project.run("enqueue", "import").stdout.strip()
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert project.ran() == ["parent new"]
    view = json.loads(project.run("show", parent, "--json").stdout)
    assert (view["status"], [kid["status"] for kid in view["children"]]) == ("completed", ["completed"])


def test_a_claimed_parent_given_back_unstarted_is_due_again_not_waiting(db, queue):
    """The mark a child leaves on a claimed parent does not outlive the claim: given back to the queue
    unstarted (the rest of a batch), the parent is due again, and waits for its child once it ran."""
    parent = queue.enqueue("import", {})
    runs = make_runs(db)
    [run] = runs.claim_messages(2e9, 8)
    queue.enqueue("import.part", {}, parent=parent)  # a web request, while the parent was claimed
    runs.release([run])
    view = queue.get(parent)
    assert (view.status, view.waiting_for_children) == ("new", False) and view.run_at <= 2e9  # due
    run = runs.claim_message(2e9 + 1)
    assert run is not None and run.uuid == parent
    runs.complete(run, 2e9 + 1)
    assert queue.get(parent).waiting_for_children is True
