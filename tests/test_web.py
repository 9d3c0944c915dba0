"""The HTTP trigger, /health and the status page, against real `run-cron serve` processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from typing import Optional

import pytest
from conftest import TOKEN, Answer, Server, cli_env, enqueue, fetch, mine, web_project

from cronjobs.runtime.lock import SupervisorLock


def ran(server: Server) -> list[str]:
    log = server.path / "ran.log"
    return log.read_text().splitlines() if log.exists() else []


def test_run_needs_the_right_token(serve):
    server = serve()
    for url, headers in [(server.url("/run"), {}), (server.url("/run?token=wrong"), {}),
                         (server.url("/run?token=" + TOKEN[:-1]), {}),
                         (server.url("/run"), {"Authorization": "Bearer wrong"})]:
        answer = fetch(url, headers=headers)
        assert answer.status == 403
        assert answer.json == {"error": "forbidden: wrong or missing token"}
        assert TOKEN not in answer.text
    assert ran(server) == []


def test_run_ticks_with_query_token_or_bearer_and_summarises(serve):
    server = serve()
    enqueue(server.config, "web.echo", "hi")
    answer = fetch(server.url("/run?token=" + TOKEN))
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    summary = answer.json
    assert summary["status"] == "ran" and summary["trigger"] == "http" and summary["timed_out"] is False
    assert [(item["kind"], item["name"], item["outcome"]) for item in mine(summary["ran"])] == [
        ("job", "every_minute", "completed"), ("message", "web.echo", "completed")]
    assert summary["duration"] < 10 and summary["time_limit"] == 10
    assert TOKEN not in answer.text
    answer = fetch(server.url("/run"), method="POST", data=b"", headers={"Authorization": "Bearer " + TOKEN})
    again = ran(server)[2:] == ["every_minute"]  # only if a new minute began between the two requests
    assert answer.status == 200
    assert [item["name"] for item in mine(answer.json["ran"])] == ["every_minute"] * again
    assert answer.json["status"] == ("ran" if again else "idle")  # the due cli_only job forks no worker
    assert ran(server) == ["every_minute", "echo hi"] + ["every_minute"] * again


def test_without_a_token_the_trigger_and_page_are_off(serve):
    server = serve(http={"token": None})
    for path in ("/run", "/run?token=", "/", "/?token=x"):
        assert fetch(server.url(path)).status == 404
    assert fetch(server.url("/run"), method="POST", data=b"x").status == 404
    assert fetch(server.url("/health")).status == 503  # no tick yet, but it answers
    assert ran(server) == []


def test_cli_only_jobs_and_handlers_wait_for_the_cli(serve):
    server = serve()
    enqueue(server.config, "web.cli")
    summary = fetch(server.url("/run?token=" + TOKEN)).json
    assert [item["name"] for item in mine(summary["ran"])] == ["every_minute"]
    skipped = {(item["kind"], item["name"]): item for item in summary["skipped"]}
    assert skipped[("job", "nightly")]["reason"].startswith("cli_only")
    assert skipped[("message", "web.cli")]["reason"].startswith("cli_only")
    assert ran(server) == ["every_minute"]
    second = fetch(server.url("/run?token=" + TOKEN)).json  # what waits for the cli forks no worker
    assert second["status"] == ("ran" if ran(server).count("every_minute") == 2 else "idle")
    subprocess.run([sys.executable, "-m", "cronjobs", "--config", str(server.config)], env=cli_env(),
                   check=True, timeout=60)
    assert "nightly" in ran(server) and "cli-handler" in ran(server)


def test_too_soon_after_any_tick_is_429_with_retry_after(serve):
    server = serve(http={"min_interval": 30})
    subprocess.run([sys.executable, "-m", "cronjobs", "--config", str(server.config)], env=cli_env(),
                   check=True, timeout=60)  # a CLI tick counts too
    before = ran(server)
    answer = fetch(server.url("/run?token=" + TOKEN))
    assert answer.status == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 30
    assert answer.json["retry_after"] == int(answer.headers["Retry-After"])
    assert ran(server) == before
    assert fetch(server.url("/run?token=wrong")).status == 403  # the token is still checked first


def test_another_tick_holding_the_lock_is_409_at_once(serve):
    server = serve()
    lock = SupervisorLock(str(server.path / "tick.lock"))
    assert lock.acquire()
    try:
        began = time.monotonic()
        answer = fetch(server.url("/run?token=" + TOKEN))
        assert answer.status == 409 and answer.json["status"] == "locked"
        assert time.monotonic() - began < 2
    finally:
        lock.release()
    assert ran(server) == []


def test_health_and_a_second_run_answer_while_a_tick_runs(serve):
    server = serve(env={"WEB_TEST_JOB_SLEEP": "2"})
    results: list[Answer] = []
    worker = threading.Thread(target=lambda: results.append(fetch(server.url("/run?token=" + TOKEN))))
    worker.start()
    deadline = time.monotonic() + 10
    while "every_minute" not in ran(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.monotonic()
    health = fetch(server.url("/health"))  # answered at once during a tick; none has finished yet
    assert (health.status, health.json["last_tick"]["finished_ago"]) == (503, None)
    assert fetch(server.url("/run?token=" + TOKEN)).status == 409
    assert time.monotonic() - began < 1.5
    worker.join(15)
    assert results[0].status == 200 and mine(results[0].json["ran"])[0]["outcome"] == "completed"


def test_health_reports_age_counts_and_failing_jobs_without_payloads(serve):
    server = serve(main={"stale_after": 2})
    answer = fetch(server.url("/health"))
    assert answer.status == 503 and answer.json["status"] == "stale"
    assert answer.json["last_tick"]["finished_ago"] is None
    enqueue(server.config, "web.echo", {"secret": "payload-text"}, delay=3600)
    enqueue(server.config, "web.evil", {"secret": "payload-text"}, max_attempts=1)
    assert fetch(server.url("/run?token=" + TOKEN)).status == 200
    answer = fetch(server.url("/health"))
    assert answer.status == 200
    report = answer.json
    assert report["status"] == "ok" and report["last_tick"]["finished_ago"] < 2
    assert report["queue"] == {"new": 1, "pending": 0, "completed": 0, "failed": 1, "cancelled": 0}
    assert report["failing_jobs"] == []
    assert "payload-text" not in answer.text and "script" not in answer.text
    with server.project.connect() as connection:
        connection.execute("UPDATE job_state SET last_outcome = 'failed' WHERE name = 'every_minute'")
    assert fetch(server.url("/health")).json["failing_jobs"] == ["every_minute"]
    time.sleep(2.2)
    answer = fetch(server.url("/health"))
    assert answer.status == 503 and answer.json["status"] == "stale"


def test_unknown_path_404_wrong_method_405_big_body_413(serve):
    server = serve(http={"max_body": 100})
    assert fetch(server.url("/nope")).status == 404
    assert fetch(server.url("/run/extra?token=" + TOKEN)).status == 404
    answer = fetch(server.url("/run?token=" + TOKEN), method="DELETE")
    assert answer.status == 405 and set(answer.headers["Allow"].split(", ")) == {"GET", "POST"}
    assert fetch(server.url("/health"), method="POST", data=b"").status == 405
    assert fetch(server.url("/?token=" + TOKEN), method="PUT", data=b"").status == 405
    answer = fetch(server.url("/run?token=" + TOKEN), method="POST", data=b"x" * 5000)
    assert answer.status == 413
    assert fetch(server.url("/run?token=" + TOKEN), method="POST", data=b"x" * 100).status == 200
    assert ran(server) == ["every_minute"]


def test_prefix_moves_every_route(serve):
    server = serve(http={"prefix": "/cron"})
    assert server.base.endswith("/cron")  # serve prints the base URL with the prefix
    root = server.base[: -len("/cron")]
    assert fetch(root + "/run?token=" + TOKEN).status == 404
    assert fetch(root + "/health").status == 404
    assert fetch(root + "/cronx/health").status == 404
    assert fetch(root + "/cron/health").status == 503
    assert fetch(root + "/cron/run?token=" + TOKEN).status == 200
    assert fetch(root + "/cron/health").status == 200
    answer = fetch(root + "/cron?token=" + TOKEN)
    assert answer.status == 200 and "Path=/cron/;" in answer.headers["Set-Cookie"]


def test_a_flood_runs_at_most_one_tick_per_min_interval(serve):
    server = serve(http={"min_interval": 60}, env={"WEB_TEST_JOB_SLEEP": "0.3"})
    answers: list[Answer] = []
    with ThreadPoolExecutor(max_workers=32) as pool:
        for _wave in range(2):  # the first wave meets the running tick (409), the second its aftermath (429)
            answers += pool.map(lambda _: fetch(server.url("/run?token=" + TOKEN)), range(100))
    statuses = [answer.status for answer in answers]
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 429}
    assert statuses[100:] == [429] * 100
    assert all(1 <= int(answer.headers["Retry-After"]) <= 60 for answer in answers if answer.status == 429)
    assert ran(server) == ["every_minute"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_a_handler_that_never_returns_is_cut_at_the_http_time_limit(serve):
    server = serve(http={"time_limit": 2})
    # A first tick creates the store and runs the periodic jobs, so the limit below is the handler's alone.
    assert fetch(server.url("/run?token=" + TOKEN)).status == 200
    uuid = enqueue(server.config, "web.forever")
    began = time.monotonic()
    answer = fetch(server.url("/run?token=" + TOKEN))
    elapsed = time.monotonic() - began
    assert answer.status == 200
    assert 1.5 < elapsed < 4
    summary = answer.json
    assert summary["timed_out"] is True
    item = next(item for item in summary["ran"] if item.get("uuid") == uuid)
    assert item["outcome"] != "completed" and "time limit" in item["error"]
    pid = int((server.path / "forever.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped before the response was sent
    assert _children(server.proc.pid) == []


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []
        self.scripts: list[Optional[str]] = []  # src of each script element
        self.inline: list[str] = []  # text inside script elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        self.tags += [f"{tag}[{name}]" for name, _ in attrs if name.startswith("on")]
        self.links += [value or "" for name, value in attrs if tag == "a" and name == "href"]

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline.append(data)
        self.text.append(data)


def test_status_page_escapes_payload_and_error_and_serves_attachments(serve):
    server = serve()
    uuid = enqueue(server.config, "web.evil", {"note": "<script>alert('payload')</script>"}, max_attempts=1)
    assert fetch(server.url("/run?token=" + TOKEN)).status == 200
    assert fetch(server.url("/")).status == 403
    assert fetch(server.url("/?token=wrong")).status == 403
    answer = fetch(server.url("/?token=" + TOKEN))
    assert answer.status == 200 and answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    page = _Tags()
    page.feed(answer.text)
    # one script, from this server (never inline), and no event handler attributes
    assert page.scripts == ["/page.js"] and page.inline == [] and not any("[" in tag for tag in page.tags)
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("script-src", 1)[1].split(";")[0]
    text = "".join(page.text)
    for shown in ("<script>alert('payload')</script>", "<script>alert('error')</script>",
                  "<script>alert('warning')</script>", "report <1>.txt", "every_minute", "failed", uuid):
        assert shown in text
    assert "<script>" not in answer.text

    session = {"Cookie": cookie.split(";", 1)[0]}
    assert fetch(server.url("/"), headers=session).status == 200
    assert fetch(server.url("/"), headers={"Cookie": "run_cron_page=forged"}).status == 403
    assert fetch(server.url("/run"), headers=session).status == 403  # the cookie never starts a tick
    (link,) = [link for link in page.links if "/attachment/" in link]
    origin = "/".join(server.base.split("/", 3)[:3])
    download = fetch(origin + link, headers=session)
    assert download.status == 200 and download.body == b"hello \x00 bytes"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert fetch(server.url(f"/attachment/{uuid}/missing.txt"), headers=session).status == 404
    assert fetch(server.url(f"/attachment/{uuid}/report%20%3C1%3E.txt")).status == 403



def test_module_level_application_reads_run_cron_config_and_hides_config_errors(tmp_path):
    config = web_project(tmp_path / "site").config
    script = ("import sys; from cronjobs.web import application, make_server; s = make_server(application, "
              "'127.0.0.1', 0); print('serving on http://127.0.0.1:%d/' % s.server_port, file=sys.stderr, "
              "flush=True); s.serve_forever()")
    good = Server([sys.executable, "-c", script], config.parent,
                  {**cli_env(), "RUN_CRON_CONFIG": str(config)})
    try:
        assert fetch(good.url("/run?token=" + TOKEN)).status == 200
    finally:
        good.stop()
    (tmp_path / "bad").mkdir()
    bad_config = tmp_path / "bad" / "run-cron.ini"
    bad_config.write_text("[run-cron]\ndatabase = db.sqlite3\nlock_file = tick.lock\ntime_limit = soon\n")
    bad = Server([sys.executable, "-c", script], bad_config.parent,
                 {**cli_env(), "RUN_CRON_CONFIG": str(bad_config)})
    try:
        for path in ("/run?token=" + TOKEN, "/health", "/"):
            answer = fetch(bad.url(path))
            assert answer.status == 500
            assert answer.text == "run-cron: internal error (see the server's log)\n"
    finally:
        bad.stop()
    log = bad.log.read_text()
    assert "time_limit: expected a number" in log and "Traceback" not in log


@pytest.mark.skipif(shutil.which("wget") is None, reason="wget is not installed")
def test_wget_line_for_an_external_cron_service(serve):
    server = serve()
    done = subprocess.run(["wget", "-q", "-O-", server.url("/run?token=" + TOKEN)], capture_output=True, timeout=30)
    assert done.returncode == 0 and mine(json.loads(done.stdout)["ran"])[0]["name"] == "every_minute"
    done = subprocess.run(["wget", "-q", "-O-", server.url("/run?token=wrong")], capture_output=True, timeout=30)
    assert done.returncode == 8  # wget: "server issued an error response"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_bearer_header(serve):
    server = serve(http={"min_interval": 60})

    def curl(*args: str) -> str:
        return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout

    assert curl(server.url("/run")) == "403"
    assert curl("-H", "Authorization: Bearer " + TOKEN, "-X", "POST", server.url("/run")) == "200"
    assert curl("-H", "Authorization: Bearer " + TOKEN, server.url("/run")) == "429"
    assert curl(server.url("/health")) == "200"
    assert curl(server.url("/missing")) == "404"


def test_serve_log_file_never_holds_the_token(serve):
    server = serve(extra=textwrap.dedent("""\
        [log]
        file = run-cron.log
        level = DEBUG
        """))
    fetch(server.url("/run?token=" + TOKEN))
    fetch(server.url("/?token=" + TOKEN))
    fetch(server.url("/run?token=" + TOKEN + "x"))
    fetch(server.url("/run"), headers={"Authorization": "Bearer " + TOKEN})
    fetch(server.url("/missing?token=" + TOKEN))
    assert "GET /run 200" in server.log.read_text()
    log = (server.path / "run-cron.log").read_text()
    assert "http tick" in log and TOKEN not in log


def test_run_while_a_cli_tick_runs_is_409_even_within_min_interval(serve):
    server = serve(http={"min_interval": 60})
    first = subprocess.run([sys.executable, "-m", "cronjobs", "--config", str(server.config)], cwd=server.path,
                           env=cli_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr  # the last tick started a moment ago
    tick = subprocess.Popen([sys.executable, "-m", "cronjobs", "--config", str(server.config), "--force", "all"],
                            cwd=server.path, env={**cli_env(), "WEB_TEST_JOB_SLEEP": "3"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while ran(server).count("every_minute") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        answer = fetch(server.url("/run?token=" + TOKEN))
        assert answer.status == 409 and answer.json["status"] == "locked", answer.body
    finally:
        assert tick.wait(20) == 0, tick.stderr.read() if tick.stderr else ""
    answer = fetch(server.url("/run?token=" + TOKEN))
    assert answer.status == 429 and answer.json["status"] == "too_soon"  # finished, but too recent
