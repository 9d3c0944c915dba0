"""Parent and child messages on the status page: each family under its top message, indented.

A message listed on the page shows its children below it (and theirs, MAX_DEPTH generations deep),
each with its status, progress and attempts, in a native <details> that is open when the family is
small and closed when it is large (no script needed). A child shown there is not listed again as a
row of its own. Without filters the rows are the messages that are nobody's child; with filters, the
messages that match, and one that matches while its parent does not (or is not listed) is a row with
a "child of" line. Everything is bounded: CHILDREN_SHOWN children per message (running and failed
ones first), NESTED_SHOWN nested items per page; what is left out is counted, with the command that
lists it all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Optional

from ..messages.family import WAITING, Family, Node, ancestors, families, progress_of
from ..messages.queue import MessageView, shown_attempts
from ..runtime.runs import STATUSES
from .markup import badge, escape, message_button, progress_bar, time_tag

#: Children listed under one message; the rest are counted.
CHILDREN_SHOWN = 50
#: Nested items on one page, over all its families.
NESTED_SHOWN = 500
#: A family this small is open at once; a larger one opens on a click.
OPEN_UP_TO = 5
_FIRST = ("pending", "failed", "cancelled")  # what a cut list keeps first: the children that need a look


@dataclass
class Layout:
    """What the messages table shows: its rows, and the families below them."""

    rows: list[MessageView] = field(default_factory=list)
    families: dict[str, Family] = field(default_factory=dict)  # of every shown message that has children
    shown: dict[str, list[Node]] = field(default_factory=dict)  # the children listed under each of them
    progress: dict[str, float] = field(default_factory=dict)  # a row's progress with its family's
    parents: dict[str, tuple[str, str]] = field(default_factory=dict)  # a row that is a child: (uuid, type)


def waiting(view: MessageView) -> bool:
    """Its handler returned and it waits for its children (`jobs` leaves `waiting_for_children` unset)."""
    return view.status == "new" and view.run_at == WAITING


def arrange(db: sqlite3.Connection, views: list[MessageView], filtered: bool) -> Layout:
    """The rows and families for `views` (newest first per status, as listed).

    `filtered`: the views may include children; each is nested under the nearest listed ancestor
    whose family shows it, else it is a row. Ancestors are placed before their descendants, so a
    message is never shown twice.
    """
    layout = Layout()
    chains = ancestors(db, [view.uuid for view in views]) if filtered else {view.uuid: [] for view in views}
    placed: set[str] = set()
    rows: set[str] = set()
    budget = NESTED_SHOWN
    for generation in sorted({len(chain) for chain in chains.values()}):
        batch = [view for view in views if len(chains[view.uuid]) == generation and view.uuid not in placed]
        read = families(db, [view.uuid for view in batch]) if batch else {}
        for view in batch:
            rows.add(view.uuid)
            family = read.get(view.uuid)
            if family is not None:
                layout.families[view.uuid] = family
                layout.progress[view.uuid] = progress_of(view.progress, waiting(view), family)
                budget = _place(layout, view.uuid, family, placed, budget)
    layout.rows = [view for view in views if view.uuid in rows]
    parents = {chains[view.uuid][0]: view.uuid for view in layout.rows if chains[view.uuid]}
    if parents:
        marks = ", ".join("?" * len(parents))
        types = dict(db.execute(f"SELECT uuid, type FROM message WHERE uuid IN ({marks})", list(parents)).fetchall())
        for view in layout.rows:
            if chains[view.uuid]:
                parent = chains[view.uuid][0]
                layout.parents[view.uuid] = (parent, types.get(parent, "?"))
    return layout


def _place(layout: Layout, parent: str, family: Family, placed: set[str], budget: int) -> int:
    """List the children of `parent` (a generation at a time, then each one's), within `budget`."""
    kids = family.children
    if len(kids) > CHILDREN_SHOWN:
        first = [kid for kid in kids if kid.status in _FIRST][:CHILDREN_SHOWN]
        rest = [kid for kid in kids if kid.status not in _FIRST][:CHILDREN_SHOWN - len(first)]
        chosen = {id(kid) for kid in first + rest}
        kids = [kid for kid in kids if id(kid) in chosen]
    kids = kids[:max(budget, 0)]
    layout.shown[parent] = kids
    placed.update(kid.uuid for kid in kids)
    budget -= len(kids)
    for kid in kids:
        if kid.family is not None:
            layout.families[kid.uuid] = kid.family
            budget = _place(layout, kid.uuid, kid.family, placed, budget)
    return budget


def summary(family: Family) -> str:
    """"3 children: 1 pending, 1 failed, 1 completed"."""
    counts = ", ".join(f"{family.counts[status]} {status}" for status in STATUSES if family.counts.get(status))
    return f"{family.total} {'child' if family.total == 1 else 'children'}: {counts}"


def family_row(layout: Layout, view: MessageView, columns: int, base: str, csrf: Optional[str], tz: Any,
               filters: dict[str, str]) -> str:
    """The row below a parent's that holds its family; "" for a message without children."""
    family = layout.families.get(view.uuid)
    if family is None:
        return ""
    tree = _branch(layout, view.uuid, family, 1, base, csrf, tz, filters)
    return (f'<tr class="family" data-parent="{escape(view.uuid)}">'
            f'<td class="tree" colspan="{columns}" data-label="Children">{tree}</td></tr>')


def _branch(layout: Layout, parent: str, family: Family, depth: int, base: str, csrf: Optional[str], tz: Any,
            filters: dict[str, str]) -> str:
    kids = layout.shown.get(parent, [])
    items = "".join(_item(layout, kid, depth, base, csrf, tz, filters) for kid in kids)
    left = family.total - len(kids)
    if left > 0:
        items += (f'<li class="more">{left} more not shown here: '
                  f'<code>run-cron show {escape(parent)}</code> lists them</li>')
    opened = " open data-auto-open" if family.total <= OPEN_UP_TO else ""
    return (f'<details class="children"{opened}><summary>{escape(summary(family))}</summary>'
            f'<ul class="tree">{items}</ul></details>')


def _item(layout: Layout, kid: Node, depth: int, base: str, csrf: Optional[str], tz: Any,
          filters: dict[str, str]) -> str:
    from ..reports.views import local_iso

    status = "waiting for children" if kid.waiting else kid.status
    attempts = shown_attempts(kid.attempts, kid.latest, kid.status == "pending")
    when = ("finished", kid.finished_at) if kid.finished_at and not kid.live else ("started", kid.started_at)
    line = [
        f'<span class="what"><span class="name">{escape(kid.type)}</span> {badge(status)}</span>',
        f'<span class="bar">{progress_bar(kid.uuid, kid.aggregate)}</span>',
        f'<span class="muted">attempt {attempts}/{kid.max_attempts}</span>' if attempts else "",
        f'<span class="muted">{when[0]} {time_tag(local_iso(when[1], tz))}</span>' if when[1] else "",
        f'<span class="muted uuid">{escape(kid.uuid)}</span>',
        '<span class="muted">(its failure is ignored)</span>' if kid.on_child_failure == "ignore" else "",
        f'<span class="act">{message_button(base, csrf, kid.uuid, kid.status, filters)}</span>'
        if csrf and kid.status != "completed" else "",
    ]
    error = f'<div class="error">{escape(kid.error)}</div>' if kid.error else ""
    family = layout.families.get(kid.uuid)
    nested = _branch(layout, kid.uuid, family, depth + 1, base, csrf, tz, filters) if family else ""
    return (f'<li class="child" data-uuid="{escape(kid.uuid)}" data-status="{escape(kid.status)}" '
            f'data-depth="{depth}"><div class="line">{"".join(line)}</div>{error}{nested}</li>')
