"""Parent and child messages on the status page, read from its HTML: one row per family, children nested
under their parent as deep as MAX_DEPTH, large families closed, cut lists counted, filters honoured."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Optional

import pytest
from conftest import Project

import cronjobs
from cronjobs.host.config import load_config
from cronjobs.messages.family import MAX_DEPTH
from cronjobs.registry import Registry
from cronjobs.web import tree
from cronjobs.web.page import SHOWN, status_page
from cronjobs.web.store import db_guard

JOBS = """
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
        raise cronjobs.PermanentError("<b>bad</b> row")
"""
VOID = {"input", "meta", "br", "img", "link"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, Optional[str]], parent: Optional[Element]) -> None:
        self.tag, self.attrs, self.parent, self.text = tag, attrs, parent, ""

    def owner(self) -> Optional[str]:
        """The uuid of the nearest message around this element (a row, a family's row, an item)."""
        node = self.parent
        while node is not None:
            if node.attrs.get("data-uuid") or node.attrs.get("data-parent"):
                return node.attrs.get("data-uuid") or node.attrs.get("data-parent")
            node = node.parent
        return None


class Page(HTMLParser):
    """The page as elements: each message row and item by uuid, and the family rows by parent."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[Element] = []
        self.rows: list[str] = []  # uuids of the table's message rows, in order
        self.items: dict[str, Element] = {}  # nested children by uuid
        self.families: dict[str, Element] = {}  # family rows by their parent's uuid
        self.all: list[Element] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        element = Element(tag, dict(attrs), self.stack[-1] if self.stack else None)
        self.all.append(element)
        classes = (element.attrs.get("class") or "").split()
        if tag == "tr" and "message" in classes:
            self.rows.append(element.attrs["data-uuid"] or "")
        if tag == "tr" and "family" in classes:
            self.families[element.attrs["data-parent"] or ""] = element
        if tag == "li" and "child" in classes:
            self.items[element.attrs["data-uuid"] or ""] = element
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data

    def inside(self, element: Element, tag: str, css: str) -> list[Element]:
        found = []
        for other in self.all:
            node = other.parent
            while node is not None and node is not element:
                node = node.parent
            if node is element and other.tag == tag and css in (other.attrs.get("class") or "").split():
                found.append(other)
        return found


@pytest.fixture
def site(tmp_path):
    project = Project(tmp_path, http={})
    project.write_jobs(JOBS)
    return project


def page(project: Project, **query: str) -> tuple[str, Page]:
    config = load_config(str(project.config))
    text = status_page(config, Registry(), "", db_guard, {k: [v] for k, v in query.items()}, interactive=True)
    return text, Page(text)


def family_of(project: Project) -> tuple[str, str, str, str]:
    """A real tick's family: the parent and its first child wait, the second failed (ignored), the
    grandchild is delayed an hour."""
    parent = project.run("enqueue", "tree").stdout.strip()
    assert project.run().returncode == 1  # the ignored child failed
    view = json.loads(project.run("show", parent, "--json").stdout)
    branch, failed = view["children"]
    return parent, branch["uuid"], failed["uuid"], branch["children"][0]["uuid"]


def test_one_row_per_family_its_children_nested_under_it(site):
    parent, branch, failed, grandchild = family_of(site)
    text, html = page(site)
    assert html.rows == [parent]
    assert html.items[branch].owner() == parent and html.items[failed].owner() == parent
    assert html.items[grandchild].owner() == branch
    assert html.items[grandchild].attrs["data-depth"] == "2" and html.items[branch].attrs["data-depth"] == "1"
    row = next(e for e in html.all if e.attrs.get("data-uuid") == parent and e.tag == "tr")
    assert "waiting for children" in row.text and "83%" in row.text  # (100 + (100 + 0) / 2 + 100) / 3
    assert "when its children have finished" in row.text and "3000" not in row.text
    assert html.families[parent].text.startswith("2 children: 1 new, 1 failed")
    assert html.items[branch].text.startswith("tree.branch waiting for children 50%")
    assert "&lt;b&gt;bad&lt;/b&gt; row" in text and "<b>bad</b>" not in text  # job code's text is escaped
    assert "(its failure is ignored)" in html.items[failed].text
    opened = [d for d in html.inside(html.families[parent], "details", "children")]
    assert [("open" in d.attrs, "data-auto-open" in d.attrs) for d in opened] == [(True, True), (True, True)]
    # each uuid once on the page, as a row or an item
    assert sorted(html.rows + list(html.items)) == sorted([parent, branch, failed, grandchild])


def test_filters_list_matching_children_with_their_parent(site):
    parent, branch, failed, grandchild = family_of(site)
    _, failures = page(site, status="failed")
    assert failures.rows == [failed] and failures.items == {}
    row = next(e for e in failures.all if e.attrs.get("data-uuid") == failed)
    assert f"child of tree {parent}" in row.text
    _, branches = page(site, type="tree.branch")
    assert branches.rows == [branch] and list(branches.items) == [grandchild]
    assert branches.items[grandchild].owner() == branch
    _, leaves = page(site, type="tree.leaf")
    assert leaves.rows == [grandchild, failed] and leaves.items == {}  # their parents are not listed
    _, waiting = page(site, status="new")  # the parent and its branch match: the branch stays nested
    assert waiting.rows == [parent] and waiting.items[branch].owner() == parent
    assert waiting.items[grandchild].owner() == branch


def test_a_large_family_is_closed_and_cut_keeping_what_needs_a_look(site):
    with cronjobs.connect(database=site.store) as queue:
        parent = queue.enqueue("tree", {})
        kids = [queue.enqueue("tree.leaf", {"n": n}, parent=parent) for n in range(dict(SHOWN)["new"] + 5)]
        queue.cancel(kids[120])
        queue.cancel(kids[-1])
    text, html = page(site)
    # the children would fill the 200 newest new messages: the family is still one row, by its top
    assert html.rows == [parent]
    shown = [uuid for uuid in html.items]
    assert len(shown) == tree.CHILDREN_SHOWN
    assert kids[120] in shown and kids[-1] in shown  # the cancelled ones are kept, listed in their order
    assert shown == [uuid for uuid in kids if uuid in shown]
    family = html.families[parent]
    assert family.text.startswith(f"{len(kids)} children: {len(kids) - 2} new, 2 cancelled")
    (details,) = html.inside(family, "details", "children")
    assert "open" not in details.attrs
    (more,) = html.inside(family, "li", "more")
    assert more.text == f"{len(kids) - tree.CHILDREN_SHOWN} more not shown here: run-cron show {parent} lists them"


def test_a_deep_family_is_bounded(site, monkeypatch):
    with cronjobs.connect(database=site.store) as queue:
        chain = [queue.enqueue("tree", {})]
        for _ in range(MAX_DEPTH + 3):
            chain.append(queue.enqueue("tree.leaf", {}, parent=chain[-1]))
    _, html = page(site)
    assert html.rows == [chain[0]]
    assert [html.items[uuid].attrs["data-depth"] for uuid in chain[1:MAX_DEPTH + 1]] == [
        str(depth) for depth in range(1, MAX_DEPTH + 1)]
    assert chain[MAX_DEPTH + 1] not in html.items
    (more,) = html.inside(html.items[chain[MAX_DEPTH]], "li", "more")
    assert more.text == f"1 more not shown here: run-cron show {chain[MAX_DEPTH]} lists them"
    monkeypatch.setattr(tree, "NESTED_SHOWN", 2)  # a page shows so many nested items over all its families
    _, cut = page(site)
    assert list(cut.items) == chain[1:3]
    assert [m.text for m in cut.inside(cut.items[chain[2]], "li", "more")] == [
        f"1 more not shown here: run-cron show {chain[2]} lists them"]
