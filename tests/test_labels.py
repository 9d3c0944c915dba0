"""Public messages and tags: the queue API, ctx.enqueue and the CLI's filters."""

from __future__ import annotations

import json

import pytest
from conftest import TOKEN, Server, cli_env, fetch, web_project

import cronjobs
from cronjobs.errors import InvalidPayload
from cronjobs.registry import Handler
from cronjobs.runtime.worker import Worker
from cronjobs.scheduling.schedule import get_timezone


@pytest.fixture
def db(any_db):
    return any_db


def test_owner_listing_includes_public_messages(queue):
    mine = queue.enqueue("export", {}, owner="user:7")
    shared = queue.enqueue("export", {}, owner="user:8", public=True)
    private = queue.enqueue("export", {}, owner="user:8")
    assert [view.uuid for view in queue.jobs(owner="user:7")] == [shared, mine]
    assert [view.uuid for view in queue.jobs(owner="user:8")] == [private, shared]
    assert queue.get(shared).public is True and queue.get(private).public is False


def test_tags_filter(queue):
    plain = queue.enqueue("export", {})
    tagged = queue.enqueue("export", {}, tags=["export", "user:7"], owner="user:7")
    odd = queue.enqueue("export", {}, tags=["50%_off"])
    assert [view.uuid for view in queue.jobs(tag="user:7")] == [tagged]
    assert [view.uuid for view in queue.jobs(tag="user")] == []  # whole tags only
    assert [view.uuid for view in queue.jobs(tag="50%_off")] == [odd]
    assert [view.uuid for view in queue.jobs(tag="50%%off")] == []  # LIKE wildcards are literal
    assert [view.uuid for view in queue.jobs(tag="export", owner="user:7")] == [tagged]
    assert queue.get(tagged).tags == ["export", "user:7"] and queue.get(plain).tags == []
    assert queue.get(tagged).to_json()["tags"] == ["export", "user:7"]


def test_no_labels_yet_filters_nothing_out_but_tags(queue):
    uuid = queue.enqueue("export", {}, owner="user:7")
    assert [view.uuid for view in queue.jobs(owner="user:7")] == [uuid]
    assert queue.jobs(tag="export") == []


@pytest.mark.parametrize("tags", ["export", ["a,b"], [""], [7]])
def test_bad_tags(tmp_path, tags):  # refused before any SQL: SQLite only, no server store each
    with cronjobs.connect(database=str(tmp_path / "db.sqlite3")) as queue:
        with pytest.raises(InvalidPayload):
            queue.enqueue("export", {}, tags=tags)
        assert queue.jobs() == []


def test_deleting_a_message_deletes_its_labels(queue, db):
    uuid = queue.enqueue("export", {}, tags=["x"], public=True)
    connection = db.connection()
    connection.execute("DELETE FROM message WHERE uuid = ?", (uuid,))  # foreign keys are on, as in retention
    assert connection.execute("SELECT COUNT(*) FROM message_label").fetchone()[0] == 0


def test_a_handler_labels_what_it_queues(runs, registry, queue):
    registry.add_handler(Handler("export", lambda ctx, payload: ctx.enqueue(
        "export.part", {}, tags=["part"], owner="user:7", public=True)))
    registry.add_handler(Handler("export.part", lambda ctx, payload: None))
    queue.enqueue("export")
    Worker(runs, registry, get_timezone("Europe/Berlin"), retry_backoff=0, periodic=False).run()
    (part,) = queue.jobs(tag="part")
    assert (part.type, part.status, part.public) == ("export.part", "completed", True)
    assert [view.type for view in queue.jobs(owner="user:9")] == ["export.part"]


def test_cli_enqueue_and_filters(project):
    project.write_jobs("""
    @cronjobs.handler("export")
    def export(ctx, payload):
        ctx.enqueue("export.part", {"n": 1}, tags=["export", "part"], owner="user:7")

    @cronjobs.handler("export.part")
    def part(ctx, payload): pass
    """)
    shared = project.run("enqueue", "export", "--owner", "user:8", "--public", "--tag", "export").stdout.strip()
    own = project.run("enqueue", "export", "--owner", "user:7").stdout.strip()
    assert project.run().returncode == 0

    def listed(*args):
        result = project.run("messages", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [view["uuid"] for view in json.loads(result.stdout)]

    parts = listed("--type", "export.part")
    assert len(parts) == 2
    assert listed("--owner", "user:7") == [*parts, own, shared]
    assert listed("--tag", "part") == parts
    assert listed("--tag", "export") == [*parts, shared]
    assert listed("--owner", "user:9") == [shared]
    shown = project.run("show", shared).stdout
    assert "public:      yes" in shown and "tags:        export\n" in shown
    assert "user:8" in project.run("messages", "--owner", "user:9").stdout


def test_status_page_filters_by_owner_and_tag(tmp_path):
    project = web_project(tmp_path / "site")
    shared = project.run("enqueue", "web.echo", "--owner", "user:8", "--public", "--tag", "export").stdout.strip()
    private = project.run("enqueue", "web.echo", "--owner", "user:8", "--tag", "export").stdout.strip()
    other = project.run("enqueue", "web.echo", "--owner", "user:7").stdout.strip()
    server = Server([*project.command(), "serve", "--port", "0"], project.path, cli_env())
    try:
        by_owner = fetch(server.url(f"/?token={TOKEN}&owner=user:7")).text
        by_tag = fetch(server.url(f"/?token={TOKEN}&tag=export")).text
    finally:
        server.stop()
    assert shared in by_owner and other in by_owner and private not in by_owner
    assert shared in by_tag and private in by_tag and other not in by_tag
    assert 'name="tag" value="export"' in by_tag
