"""The status page in a real browser (Debian's headless chromium through chromedriver) against a real
`run-cron serve`: what a user sees and clicks. Screenshots at phone and desktop width go to artifacts/."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest
from browser import Browser, missing
from conftest import ROOT, TOKEN, Answer, Project, enqueue, fetch

import cronjobs
from cronjobs.web.store import HORIZON, OVERDUE, POLL_RUNNING, refresh_after

ARTIFACTS = ROOT / "artifacts"

JOBS = """
HERE = os.path.dirname(LOG)


@cronjobs.daily
def report(ctx):
    record("report")
    ctx.warn("disk 91% full")
    ctx.attach("report.csv", "a,b\\n1,2\\n")


@cronjobs.daily(cli_only=True)
def backup(ctx):
    record("backup")


@cronjobs.handler("mail.send")
def send(ctx, payload):
    if payload.get("fail"):
        raise cronjobs.PermanentError("mailbox full")
    record("mail", payload["to"])


@cronjobs.handler("slow.import")
def slow(ctx, payload):
    ctx.checkpoint(offset=1, done=25, total=100)
    while not os.path.exists(os.path.join(HERE, "go-on")):
        time.sleep(0.02)
    ctx.checkpoint(offset=2, done=75, total=100)
    while not os.path.exists(os.path.join(HERE, "finish")):
        time.sleep(0.02)


@cronjobs.handler("tree")
def tree(ctx, payload):
    ctx.enqueue_child("tree.branch", {})
    ctx.enqueue_child("tree.leaf", {"fail": True}, on_child_failure="ignore")


@cronjobs.handler("tree.branch")
def branch(ctx, payload):
    ctx.enqueue_child("tree.leaf", {"slow": True})


@cronjobs.handler("tree.leaf")
def leaf(ctx, payload):
    if payload.get("fail"):
        raise cronjobs.PermanentError("bad row")
    ctx.checkpoint(offset=1, done=40, total=100)
    while not os.path.exists(os.path.join(HERE, "leaf-go")):
        time.sleep(0.02)
    ctx.checkpoint(offset=2, done=80, total=100)
    while not os.path.exists(os.path.join(HERE, "leaf-finish")):
        time.sleep(0.02)
"""


@pytest.fixture(scope="module")
def browser():
    why = missing()
    if why:
        pytest.skip(f"no browser test: {why}")
    browser = Browser(timezone="America/New_York")
    yield browser
    browser.close()


@pytest.fixture
def site(tmp_path, serving):
    project = Project(tmp_path, http={"time_limit": 20})
    project.write_jobs(JOBS)
    return project, serving(project)


def rows(browser: Browser, table: str) -> dict[str, str]:
    """The rows of a table as the user reads them, keyed by their data-uuid or data-job."""
    found = {}
    for row in browser.find_all(f"table.{table} tbody tr"):
        found[row.attribute("data-uuid") or row.attribute("data-job") or ""] = row.text
    return found


def click_in_row(browser: Browser, css: str, label: str) -> None:
    """Click the row's button and wait for the page its form leads to: until then the old page, with
    the last action's notice, is still there to be read."""
    (button,) = [b for b in browser.find(css).find_all("button") if b.text == label]
    browser.script("window.beforeTheClick = true")
    button.click()
    browser.wait_for(lambda: browser.script("return document.readyState === 'complete' && !window.beforeTheClick"),
                     what="the page after the click")


def notice(browser: Browser) -> str:
    return browser.wait_for(lambda: browser.find(".notice").text, what="the notice")


def test_retry_cancel_run_now_and_filters(browser, site):
    project, server = site
    failed = enqueue(project.config, "mail.send", {"to": "a@example.org", "fail": True}, max_attempts=1,
                     owner="alice")
    assert project.run().returncode == 1  # mail.send failed; report ran once (its first day)
    assert project.ran().count("report") == 1
    later = enqueue(project.config, "mail.send", {"to": "b@example.org"}, delay=3600, owner="bob")

    browser.width(1400)
    browser.get(f"{server.base}/?token={TOKEN}")
    messages = rows(browser, "messages")
    assert "failed" in messages[failed] and "mailbox full" in messages[failed] and "alice" in messages[failed]
    assert "new" in messages[later] and "bob" in messages[later]
    jobs = rows(browser, "jobs")
    assert "disk 91% full" in jobs["report"] and "report.csv" in jobs["report"]
    assert "CLI only" in jobs["backup"] and "Run now" not in jobs["backup"]
    assert "No tick is running" in browser.text()
    # times in the browser's zone (New York), not the server's (Berlin, +01:00)
    created = browser.find(f'tr[data-uuid="{failed}"] time')
    assert created.text.endswith("EST") and "+01:00" in created.attribute("title")
    assert browser.script("return document.documentElement.getAttribute('data-local-times')") == "1"
    # nothing due within minutes (the only waiting message is an hour away): the page stays put
    assert browser.find("body").attribute("data-poll") == "0.0"
    browser.screenshot(ARTIFACTS / "status-page-desktop-1400.png")
    assert browser.script("return document.querySelector('table.messages').getBoundingClientRect().width") > 1000

    click_in_row(browser, f'tr[data-uuid="{failed}"]', "Retry")
    assert f"Message {failed} will run again at the next tick." == notice(browser)
    assert "new" in rows(browser, "messages")[failed]
    assert browser.script("return location.search").startswith("?notice=retried")  # redirected: reload is safe

    click_in_row(browser, f'tr[data-uuid="{later}"]', "Cancel")
    assert notice(browser) == f"Message {later} is cancelled."
    assert "cancelled" in rows(browser, "messages")[later]

    click_in_row(browser, 'tr[data-job="report"]', "Run now")
    assert notice(browser) == "Ran report now: completed."
    assert project.ran().count("report") == 2
    assert "via http" in browser.text()

    # filter by owner, then by status, as a user picks them from the lists
    browser.find('select[name="owner"] option[value="bob"]').click()
    browser.find("form.filters button").click()
    browser.wait_for(lambda: "owner=bob" in browser.script("return location.search"), what="the owner filter")
    assert list(rows(browser, "messages")) == [later]
    browser.find('select[name="owner"] option[value=""]').click()
    browser.find('select[name="status"] option[value="new"]').click()
    browser.find("form.filters button").click()
    browser.wait_for(lambda: "status=new" in browser.script("return location.search"), what="the status filter")
    assert list(rows(browser, "messages")) == [failed]
    # an action keeps the filters
    click_in_row(browser, f'tr[data-uuid="{failed}"]', "Cancel")
    assert notice(browser) == f"Message {failed} is cancelled."
    assert "status=new" in browser.script("return location.search")
    assert "No messages match these filters." in browser.text()


def test_a_running_tick_its_run_and_live_progress(browser, site):
    project, server = site
    project.run()  # the daily job's first run, so the tick below only imports
    enqueue(project.config, "mail.send", {"to": "c@example.org"}, owner="carol")
    slow = enqueue(project.config, "slow.import", {"rows": 100}, owner="carol")
    for index in range(6):
        enqueue(project.config, "mail.send", {"to": f"x{index}@example.org"}, delay=7200, owner="dave")
    tick = project.start("--time-limit", "60")
    try:
        project.wait_for(lambda: "mail c@example.org" in project.ran(), timeout=30)
        browser.width(1400)
        browser.get(f"{server.base}/?token={TOKEN}")
        banner = browser.wait_for(lambda: "running now" in browser.text(".ticking") and browser.text(".ticking"),
                                  what="the running tick")
        assert "slow.import" in banner and slow in banner
        browser.wait_for(lambda: "25%" in rows(browser, "messages")[slow], what="25% progress")
        assert "1/3" in rows(browser, "messages")[slow]  # its first attempt, as history numbers it
        browser.script("window.stillTheSamePage = true")
        (project.path / "go-on").touch()
        browser.wait_for(lambda: "75%" in rows(browser, "messages")[slow], what="75% without a reload")
        assert browser.script("return window.stillTheSamePage === true")  # updated in place, not reloaded
        assert "75%" in browser.text(".ticking")
        browser.screenshot(ARTIFACTS / "status-page-running-desktop-1400.png")
        browser.width(390, mobile=True)
        browser.get(f"{server.base}/")
        browser.wait_for(lambda: "running now" in browser.text(".ticking"), what="the banner on a phone")
        _phone_layout(browser)
        browser.screenshot(ARTIFACTS / "status-page-phone-390.png")
        browser.screenshot(ARTIFACTS / "status-page-phone-390-screen.png", whole=False)
        (project.path / "finish").touch()
        browser.wait_for(lambda: "No tick is running" in browser.text(), what="the page noticing the tick's end")
        assert "completed" in rows(browser, "messages")[slow]
    finally:
        (project.path / "go-on").touch()
        (project.path / "finish").touch()
        tick.wait(60)
    assert tick.returncode == 0, tick.stderr


def _phone_layout(browser: Browser) -> None:
    """Cards: no table header, rows one above another, nothing wider than the screen."""
    assert browser.script("return document.documentElement.clientWidth") == 390
    assert browser.script("return getComputedStyle(document.querySelector('table.messages thead')).display") \
        == "none"
    widths = browser.script(
        "return Array.from(document.querySelectorAll('table.messages tbody tr'))"
        ".map(r => Math.round(r.getBoundingClientRect().width))")
    assert widths and all(width <= 390 for width in widths)
    assert browser.script("return document.documentElement.scrollWidth") <= 390
    labels = browser.script("return Array.from(document.querySelectorAll('table.messages tbody tr:first-child td'))"
                            ".filter(td => getComputedStyle(td).display !== 'none')"
                            ".map(td => getComputedStyle(td, '::before').content)")
    assert '"Progress"' in labels and '"Created"' in labels


def test_a_family_nests_under_its_parent_on_desktop_and_phone(browser, site):
    project, server = site
    project.run()  # the daily job's first run, so the tick below runs the family only
    parent = enqueue(project.config, "tree", {})
    tick = project.start("--time-limit", "60")
    try:
        with cronjobs.connect(str(project.config)) as queue:
            project.wait_for(lambda: len(queue.get(parent).children) == 2
                             and queue.get(parent).children[0]["children"], timeout=30)
            (branch, failed), grandchild = queue.get(parent).children, queue.get(parent).children[0]["children"][0]
        browser.width(1400)
        browser.get(f"{server.base}/?token={TOKEN}")
        leaf = (f'tr.family[data-parent="{parent}"] li[data-uuid="{branch["uuid"]}"] '
                f'li[data-uuid="{grandchild["uuid"]}"]')
        browser.wait_for(lambda: "40%" in browser.text(leaf), what="the grandchild at 40%, nested twice")
        # one row per family: the children are items of the parent's family, not rows of their own
        assert [row.attribute("data-uuid") for row in browser.find_all("table.messages tr.message")] == [parent]
        assert browser.find_all(f'tr.family[data-parent="{parent}"] li[data-uuid="{failed["uuid"]}"]')
        top = browser.text(f'tr[data-uuid="{parent}"]')
        assert "waiting for children" in top and "90%" in top  # (100 + (100 + 40) / 2 + 100) / 3
        assert "when its children have finished" in top
        family = browser.text(f'tr.family[data-parent="{parent}"] details')
        assert family.startswith("2 children: 1 new, 1 failed")
        assert "tree.branch waiting for children" in family and "70%" in family
        assert "PermanentError: bad row" in family and "(its failure is ignored)" in family
        depths = browser.script(
            "return Array.from(document.querySelectorAll('li.child')).map(li => [li.dataset.uuid, "
            "Math.round(li.querySelector('.name').getBoundingClientRect().left)])")
        left = dict(depths)
        assert left[grandchild["uuid"]] > left[branch["uuid"]] == left[failed["uuid"]] > browser.script(
            f"return document.querySelector('tr[data-uuid=\"{parent}\"] td span').getBoundingClientRect().left")
        browser.screenshot(ARTIFACTS / "status-page-tree-desktop-1400.png")

        browser.script("window.stillTheSamePage = true")
        (project.path / "leaf-go").touch()  # the grandchild moves on to 80%: every bar above it follows
        browser.wait_for(lambda: "80%" in browser.text(leaf), what="the grandchild at 80% without a reload")
        browser.wait_for(lambda: "97%" in browser.text(f'tr[data-uuid="{parent}"]'), what="the parent at 97%")
        assert "90%" in browser.text(f'li[data-uuid="{branch["uuid"]}"] .line')  # (100 + 80) / 2
        assert browser.script("return window.stillTheSamePage === true")

        browser.width(390, mobile=True)
        browser.get(f"{server.base}/")
        browser.wait_for(lambda: "80%" in browser.text(leaf), what="the tree on a phone")
        _phone_layout(browser)
        cards = browser.script(
            f"return ['tr[data-uuid=\"{parent}\"]', 'tr.family[data-parent=\"{parent}\"]']"
            ".map(css => document.querySelector(css).getBoundingClientRect()).map(r => [r.top, r.bottom])")
        assert abs(cards[0][1] - cards[1][0]) < 2  # the family hangs from its parent's card
        browser.screenshot(ARTIFACTS / "status-page-tree-phone-390.png")
        browser.width(1400)
        browser.get(f"{server.base}/")
        browser.wait_for(lambda: browser.find_all(leaf), what="the page again")
        (project.path / "leaf-finish").touch()
        browser.wait_for(lambda: "completed" in browser.text(f'tr[data-uuid="{parent}"]'),
                         what="the page reloading itself when the family has finished")
        assert "2 children: 1 completed, 1 failed" in browser.text(f'tr.family[data-parent="{parent}"]')
    finally:
        for name in ("leaf-go", "leaf-finish"):
            (project.path / name).touch()
        tick.wait(60)
    errors = tick.stderr.read()
    assert tick.returncode == 1 and "Traceback" not in errors, errors  # 1: the ignored child failed

    # a large family is closed until clicked, without any script
    many = enqueue(project.config, "tree", {}, delay=3600)
    for n in range(8):
        enqueue(project.config, "tree.leaf", {"n": n}, parent=many, delay=3600)
    browser.get(f"{server.base}/?status=new")  # the children match too: listed once, in their family
    assert [row.attribute("data-uuid") for row in browser.find_all("table.messages tr.message")] == [many]
    details = browser.find(f'tr.family[data-parent="{many}"] details')
    assert details.attribute("open") is None and browser.find(f'tr.family[data-parent="{many}"] summary').text == (
        "8 children: 8 new")
    first = f'tr.family[data-parent="{many}"] li'
    assert browser.script("return document.querySelector(arguments[0]).checkVisibility()", first) is False
    browser.find(f'tr.family[data-parent="{many}"] summary').click()
    assert browser.script("return document.querySelector(arguments[0]).checkVisibility()", first) is True
    browser.screenshot(ARTIFACTS / "status-page-tree-opened-desktop-1400.png")


def test_chromium_missing_is_one_clear_skip_line(monkeypatch):
    import browser as module

    monkeypatch.setattr(module, "CHROMIUM", "/nonexistent/chromium")
    assert module.missing() == ("/nonexistent/chromium is not installed "
                                "(Debian packages chromium and chromium-driver)")


# -- the same page without a browser: its forms' protection, reloading the jobs, when it looks again -----

def _session(server) -> tuple[dict[str, str], str]:
    """The cookie a browser keeps after opening the page with the token, and the forms' CSRF token."""
    answer = fetch(f"{server.base}/?token={TOKEN}")
    assert answer.status == 200
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', answer.text)
    assert csrf is not None
    return {"Cookie": answer.headers["Set-Cookie"].split(";", 1)[0]}, csrf.group(1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 303 itself is the answer under test


def _post(server, fields: dict[str, str], headers: dict[str, str]) -> Answer:
    """A form POST as a browser sends it, without following the redirect."""
    request = urllib.request.Request(f"{server.base}/action", urlencode(fields).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers, error.read())


def test_actions_need_the_page_cookie_its_csrf_token_and_this_site(site):
    project, server = site
    failed = enqueue(project.config, "mail.send", {"to": "a@example.org", "fail": True}, max_attempts=1)
    assert project.run().returncode == 1
    cookie, csrf = _session(server)
    assert csrf != TOKEN and csrf not in cookie["Cookie"]
    retry = {"csrf": csrf, "action": "retry", "uuid": failed}
    refused = [
        _post(server, {**retry, "csrf": ""}, cookie),
        _post(server, {**retry, "csrf": "0" * 64}, cookie),
        _post(server, retry, {}),  # no cookie
        _post(server, retry, {**cookie, "Origin": "http://evil.example"}),
        _post(server, retry, {**cookie, "Sec-Fetch-Site": "cross-site"}),
    ]
    assert [answer.status for answer in refused] == [403, 403, 403, 403, 403]
    assert refused[0].json["error"] == "forbidden: the form is not from this status page (reload it)"
    assert fetch(f"{server.base}/action", headers=cookie).status == 405
    with cronjobs.connect(str(project.config)) as queue:
        assert queue.get(failed).status == "failed"  # nothing refused changed anything

    done = _post(server, retry, {**cookie, "Sec-Fetch-Site": "same-origin", "Origin": "null"})
    assert done.status == 303
    assert done.headers["Location"] == f"/?notice=retried&subject={failed}"
    with cronjobs.connect(str(project.config)) as queue:
        assert queue.get(failed).status == "new"
    again = _post(server, {**retry, "status": "failed", "owner": "x" * 300, "other": "dropped"}, cookie)
    assert again.headers["Location"] == f"/?status=failed&owner={'x' * 200}&notice=refused&subject={failed}&detail=new"
    page = fetch(server.base + again.headers["Location"], headers=cookie).text
    assert f"Message <b>{failed}</b> is <b>new</b> now: nothing changed." in page
    notices = {fields["job"] if "job" in fields else fields["action"]: _post(
        server, {"csrf": csrf, **fields}, cookie).headers["Location"] for fields in (
            {"action": "run", "job": "backup"}, {"action": "run", "job": "nope"}, {"action": "delete", "uuid": "x"})}
    assert notices == {"backup": "/?notice=cli_only&subject=backup", "nope": "/?notice=unknown_job&subject=nope",
                       "delete": "/?notice=bad_request"}
    assert "runs from the command line only" in fetch(server.base + notices["backup"], headers=cookie).text


def test_a_running_server_loads_the_jobs_module_again_when_it_changes(site):
    project, server = site
    cookie, _ = _session(server)
    assert "added_later" not in fetch(f"{server.base}/", headers=cookie).text
    project.write_jobs(JOBS + "\n@cronjobs.hourly\ndef added_later(ctx):\n    record('added later')\n")
    page = fetch(f"{server.base}/", headers=cookie).text
    assert 'data-job="added_later"' in page and 'data-job="report"' in page
    ran = fetch(f"{server.base}/run?token={TOKEN}").json
    assert "added_later" in [item["name"] for item in ran["ran"]]
    project.write_jobs("raise RuntimeError('half-saved file')\n")
    broken = fetch(f"{server.base}/", headers=cookie)
    assert broken.status == 500 and broken.text == "run-cron: internal error (see the server's log)\n"
    project.write_jobs(JOBS)
    page = fetch(f"{server.base}/", headers=cookie).text
    assert 'data-job="report"' in page and "added_later" not in page
    assert "jobs module changed: loading jobs again" in server.log.read_text()


def test_the_page_looks_again_only_while_something_will_change_soon(site):
    project, server = site
    cookie, _ = _session(server)
    enqueue(project.config, "mail.send", {"to": "a@example.org"}, delay=3600)
    live = fetch(f"{server.base}/live", headers=cookie).json
    assert live["running"] is False and live["current"] is None and live["poll"] is None
    page = fetch(f"{server.base}/", headers=cookie).text
    assert 'data-poll="0.0"' in page and 'http-equiv="refresh"' not in page
    enqueue(project.config, "mail.send", {"to": "b@example.org"}, delay=30)
    live_soon = fetch(f"{server.base}/live", headers=cookie).json
    assert 25 < live_soon["poll"] <= 33 and live_soon["state"] != live["state"]
    assert '<noscript><meta http-equiv="refresh" content="3' in fetch(f"{server.base}/", headers=cookie).text
    assert fetch(f"{server.base}/live").status == 403
    script = fetch(f"{server.base}/page.js")
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")


def test_refresh_after():
    assert refresh_after(1000.0, True, None) == POLL_RUNNING
    assert refresh_after(1000.0, False, None) is None
    assert refresh_after(1000.0, False, 1000.0 + 3600) is None  # an hour away: no refresh
    assert refresh_after(1000.0, False, 1000.0 + HORIZON) == HORIZON + 3
    assert refresh_after(1000.0, False, 1000.0 - 30) == 10.0  # overdue: the next cron tick is coming
    assert refresh_after(1000.0, False, 1000.0 - OVERDUE - 1) is None  # no tick comes: stop looking


def test_a_page_embedded_without_run_crons_routes_is_read_only(tmp_path):
    """As the Django view embeds it: no buttons, no script, a plain refresh only while something is due."""
    from cronjobs.host.config import load_config
    from cronjobs.registry import Registry
    from cronjobs.web.page import status_page
    from cronjobs.web.store import db_guard

    project = Project(tmp_path)  # no [http] token
    project.write_jobs(JOBS)
    failed = enqueue(project.config, "mail.send", {"to": "a@example.org", "fail": True}, max_attempts=1,
                     owner="alice")
    assert project.run().returncode == 1
    enqueue(project.config, "mail.send", {"to": "b@example.org"}, delay=20, owner="bob")
    config = load_config(str(project.config))
    page = status_page(config, Registry(), "/cron", db_guard, {"owner": ["alice"]})
    assert "<form" in page and 'method="post"' not in page and "<script" not in page
    assert failed in page and "bob" not in page.split("Queued messages", 1)[1].split("</form>", 1)[1]
    assert '<meta http-equiv="refresh" content="2' in page and "<noscript>" not in page
