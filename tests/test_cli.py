"""What a new user meets on the command line: command names, common options anywhere, quiet success,
events in order. Through the real `run-cron` in subprocesses."""

from __future__ import annotations

import json
import signal

JOBS = """
@cronjobs.daily
def nightly(ctx):
    ctx.log.info("nightly says hello")
    ctx.warn("disk 91% full")
    record("nightly")

@cronjobs.handler("mail.send")
def send(ctx, payload):
    ctx.log.info("sending to %s", payload["to"])
    record("sent", payload["to"])
"""


def test_periodic_and_messages_are_the_names_and_list_and_jobs_still_work(project):
    project.write_jobs(JOBS)
    assert project.run("--force", "all").returncode == 0
    project.run("enqueue", "mail.send", '{"to": "a@example.org"}')
    periodic = project.run("periodic")
    assert periodic.returncode == 0, periodic.stderr
    assert "nightly" in periodic.stdout and "mail.send" not in periodic.stdout
    assert project.run("list").stdout == periodic.stdout
    assert project.run("periodic", "--json").stdout == project.run("list", "--json").stdout
    messages = project.run("messages")
    assert messages.returncode == 0, messages.stderr
    assert "mail.send" in messages.stdout
    assert project.run("jobs").stdout == messages.stdout
    assert project.run("messages", "--json").stdout == project.run("jobs", "--json").stdout
    helped = project.run("--help").stdout
    assert "periodic" in helped and "messages" in helped


def test_list_says_completed_as_history_does(project):
    project.write_jobs(JOBS)
    project.run("--force", "all")
    rows = json.loads(project.run("periodic", "--json").stdout)
    assert [row["last_outcome"] for row in rows if row["name"] == "nightly"] == ["completed"]
    history = json.loads(project.run("history", "--json").stdout)
    assert [entry["outcome"] for entry in history if entry["name"] == "nightly"] == ["completed"]
    assert "success" not in project.run("periodic").stdout


def test_common_options_after_the_subcommand(project, tmp_path):
    project.write_jobs(JOBS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    import subprocess
    import sys

    from conftest import cli_env

    after = subprocess.run([sys.executable, "-m", "cronjobs", "periodic", "--config", str(project.config), "-v"],
                           capture_output=True, text=True, env=cli_env(), cwd=elsewhere)
    assert after.returncode == 0, after.stderr
    assert "nightly" in after.stdout
    quiet = project.run("purge", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_worker_accepts_v_after_the_subcommand(project):
    project.write_jobs(JOBS)
    project.run("--force", "all")
    project.run("enqueue", "mail.send", '{"to": "b@example.org"}')
    worker = project.start("worker", "-v", "--sleep", "0.1")
    try:
        project.wait_for(lambda: "sent b@example.org" in project.ran())
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert "start message mail.send" in err and "sending to b@example.org" in err


def test_warnings_of_a_successful_tick_go_to_history_not_stderr(project):
    project.write_jobs(JOBS)
    tick = project.run("--force", "all")
    assert tick.returncode == 0
    assert tick.stderr == "" and tick.stdout == ""
    history = json.loads(project.run("history", "--json").stdout)
    nightly = [entry for entry in history if entry["name"] == "nightly"][0]
    assert nightly["warnings"] == ["disk 91% full"]
    assert "disk 91% full" in project.run("history").stdout
    verbose = project.run("--force", "all", "-v")
    assert "disk 91% full" in verbose.stderr


def test_a_jobs_own_log_lines_come_after_its_start_line(project):
    project.write_jobs(JOBS)
    project.write_config("[log]\nfile = run-cron.log\nlevel = INFO\n")
    tick = project.run("--force", "all", "-v")
    assert tick.returncode == 0, tick.stderr
    project.run("enqueue", "mail.send", '{"to": "c@example.org"}')
    drain = project.run("-v")
    assert drain.returncode == 0, drain.stderr
    lines = tick.stderr.splitlines() + drain.stderr.splitlines()

    def index(text: str, within: list[str]) -> int:
        return next(i for i, line in enumerate(within) if text in line)

    assert index("start job nightly", lines) < index("nightly says hello", lines) < index("end job nightly", lines)
    assert (index("start message mail.send", lines) < index("sending to c@example.org", lines)
            < index("end message mail.send", lines))
    logged = (project.path / "run-cron.log").read_text().splitlines()
    assert (index("start job nightly", logged) < index("nightly says hello", logged)
            < index("end job nightly", logged))
    assert (index("start message mail.send", logged) < index("sending to c@example.org", logged)
            < index("end message mail.send", logged))


MODULE_LOGGER_JOBS = """
import logging
log = logging.getLogger("myapp.tasks")

@cronjobs.daily
def nightly(ctx):
    log.warning("nightly module warning")
    log.info("nightly module info")

@cronjobs.handler("mail.send")
def send(ctx, payload):
    log.warning("module warning for %s", payload["to"])
    log.info("module info for %s", payload["to"])
"""


def test_a_module_loggers_lines_are_in_order_filed_and_quiet_on_success(project):
    """Job code that logs through logging.getLogger(__name__), as Django and Flask code does."""
    project.write_jobs(MODULE_LOGGER_JOBS)
    project.write_config("[log]\nfile = run-cron.log\nlevel = INFO\n")
    for to in ("a@example.org", "b@example.org"):
        assert project.run("enqueue", "mail.send", json.dumps({"to": to})).returncode == 0
    quiet = project.run()
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""  # cron mails nothing
    for to in ("c@example.org", "d@example.org"):
        project.run("enqueue", "mail.send", json.dumps({"to": to}))
    verbose = project.run("--force", "nightly", "-v")
    drain = project.run("-v")
    lines = verbose.stderr.splitlines() + drain.stderr.splitlines()
    assert lines[:4] == ["run-cron: start job nightly " + lines[0].split()[-2] + " (forced)",
                         "run-cron: nightly module warning", "run-cron: nightly module info",
                         "run-cron: end job nightly: completed in " + lines[3].split()[-2] + " s"]
    messages = [line.split(": ", 1)[1].split(" ")[0:3] for line in lines[4:]]
    assert [" ".join(words) for words in messages] == [
        "start message mail.send", "module warning for", "module info for", "end message mail.send:"] * 2
    logged = [line.split(": ", 1)[1] for line in (project.path / "run-cron.log").read_text().splitlines()
              if " for " in line or "start message" in line or "end message" in line]
    first = [line.split(" ")[0:3] for line in logged[:4]]
    assert [" ".join(words) for words in first] == [
        "start message mail.send", "module warning for", "module info for", "end message mail.send"]
    assert "WARNING cronjobs.run.myapp.tasks: module warning for a@example.org" in (
        project.path / "run-cron.log").read_text()


def test_messages_and_show_print_times_in_the_configured_zone(project):
    project.write_jobs(JOBS)
    project.write_config(timezone="America/New_York")
    uuid = project.run("enqueue", "mail.send", '{"to": "d@example.org"}').stdout.strip()
    listed = project.run("messages").stdout
    created = json.loads(project.run("show", uuid, "--json").stdout)["created_at"]
    assert created.endswith("+00:00")  # JSON stays UTC
    from datetime import datetime

    from cronjobs.scheduling.schedule import get_timezone

    local = datetime.fromisoformat(created).astimezone(get_timezone("America/New_York")).isoformat(timespec="seconds")
    assert local in listed
    assert f"created_at:  {local}" in project.run("show", uuid).stdout


def test_show_counts_attempts_as_history_numbers_them(project):
    project.write_jobs(JOBS + """
@cronjobs.handler("always.fails")
def fails(ctx, payload):
    raise RuntimeError("nope")
""")
    good = project.run("enqueue", "mail.send", '{"to": "e@example.org"}').stdout.strip()
    bad = project.run("enqueue", "always.fails", "{}", "--max-attempts", "2").stdout.strip()
    assert project.run("enqueue", "mail.send", '{"to": "f@example.org"}').returncode == 0
    for _ in range(3):
        project.run()
    history = json.loads(project.run("history", "--json", "--limit", "100").stdout)
    for uuid in (good, bad):
        shown = json.loads(project.run("show", uuid, "--json").stdout)
        numbers = [entry["attempt"] for entry in history if entry["uuid"] == uuid]
        assert shown["attempts"] == max(numbers), (uuid, shown, numbers)
    assert "attempts:    1" in project.run("show", good).stdout
    assert json.loads(project.run("show", bad, "--json").stdout)["attempts"] == 2
    project.run("retry", bad)
    assert json.loads(project.run("show", bad, "--json").stdout)["attempts"] == 0  # fresh attempts


def test_an_import_error_in_the_jobs_module_names_file_and_line(project):
    project.write_jobs("""
settings = {}
DATABASE_URL = settings["DATABASE_URL"]
""")
    tick = project.run()
    assert tick.returncode == 2
    lines = tick.stderr.splitlines()
    assert len(lines) == 1, tick.stderr
    assert "KeyError: 'DATABASE_URL'" in lines[0] and f"({project.path / 'jobs.py'}, line 10)" in lines[0]
    verbose = project.run("-v")
    assert "Traceback (most recent call last)" in verbose.stderr and 'settings["DATABASE_URL"]' in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == lines[0]
    broken = project.run("periodic")
    assert broken.returncode == 2 and "line 10" in broken.stderr


def test_a_syntax_error_names_file_and_line(project):
    project.write_jobs("def broken(:\n    pass\n")
    tick = project.run()
    assert tick.returncode == 2
    assert f"({project.path / 'jobs.py'}, line 8)" in tick.stderr


def test_env_file_sets_what_cron_does_not(project):
    project.write_jobs("""
import os
URL = os.environ["APP_DATABASE_URL"]

@cronjobs.daily
def nightly(ctx):
    record("url", URL, os.environ["QUOTED"])
""")
    (project.path / ".env").write_text("# settings\nexport APP_DATABASE_URL=sqlite:///app.db\nQUOTED='a b'\n")
    assert project.run().returncode == 2  # without env_file: the KeyError, reported in one line
    project.write_config(env_file=".env")
    tick = project.run("--force", "all")
    assert tick.returncode == 0, tick.stderr
    assert project.ran() == ["url sqlite:///app.db a b"]
    project.write_config(env_file="missing.env")
    missing = project.run()
    assert missing.returncode == 2
    assert "[run-cron] env_file: cannot read" in missing.stderr and len(missing.stderr.splitlines()) == 1


def test_a_bare_handler_decorator_is_refused_at_import(project):
    project.write_jobs("""
@cronjobs.handler
def send(ctx, payload):
    pass
""")
    tick = project.run()
    assert tick.returncode == 2
    assert tick.stderr.count("\n") == 1 and "@cronjobs.handler needs the message type" in tick.stderr


def test_enqueue_refuses_unknown_types_and_non_object_payloads(project):
    project.write_jobs(JOBS)
    unknown = project.run("enqueue", "mail.sned", '{"to": "x@example.org"}')
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr == ("run-cron: error: no handler for message type 'mail.sned' in the jobs modules "
                              "(declare one with @cronjobs.handler('mail.sned'), or allow it with "
                              "--allow-unknown-type / allow_unknown=True)\n")
    for payload in ('["x@example.org"]', '"x@example.org"', "7", "null"):
        refused = project.run("enqueue", "mail.send", payload)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, payload
        assert "PAYLOAD_JSON must be a JSON object" in refused.stderr
    allowed = project.run("enqueue", "later.type", "{}", "--allow-unknown-type")
    assert allowed.returncode == 0 and len(allowed.stdout.strip()) == 36
    assert json.loads(project.run("messages", "--json").stdout)[0]["type"] == "later.type"


def test_python_enqueue_through_connect_checks_the_configured_handlers(project):
    import cronjobs

    project.write_jobs(JOBS)
    import subprocess
    import sys

    from conftest import cli_env

    script = (
        "import sys, cronjobs\n"
        "q = cronjobs.connect(sys.argv[1])\n"
        "print(q.enqueue('mail.send', {'to': 'p@example.org'}))\n"
        "print(q.enqueue('elsewhere.type', {}, allow_unknown=True))\n"
        "try:\n"
        "    q.enqueue('mail.sned', {})\n"
        "except cronjobs.UnknownMessageType as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(project.config)], capture_output=True, text=True,
                          env=cli_env(), cwd=project.path.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines[0]) == 36 and len(lines[1]) == 36
    assert lines[2].startswith("refused: no handler for message type 'mail.sned'")
    assert cronjobs.UnknownMessageType.__name__ in cronjobs.__all__
