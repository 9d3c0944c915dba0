"""The log file: rotation shared by several processes, one line per tick event, and what cron mails."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, cli_env

WRITER = """
import logging, os, sys
sys.path.insert(0, {root!r})
from cronjobs.host.logs import SharedRotatingFileHandler
handler = SharedRotatingFileHandler(sys.argv[1], maxBytes=4096, backupCount=80)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("writer")
log.addHandler(handler)
log.setLevel(logging.INFO)
name = sys.argv[2]
log.info("%s %05d %s", name, 0, "x" * 40)
if os.fork() == 0:  # a forked child (as a tick's worker is) shares the handler and must not share its lock
    name += "-child"
for i in range(1, int(sys.argv[3])):
    log.info("%s %05d %s", name, i, "x" * 40)
"""

LINE = re.compile(r"^(w\d(?:-child)?) (\d{5}) x{40}$")


def test_several_processes_rotate_one_file_without_losing_or_mangling_lines(tmp_path):
    path = tmp_path / "run-cron.log"
    script = WRITER.format(root=str(ROOT))
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), f"w{n}", "300"]) for n in range(4)]
    for writer in writers:
        assert writer.wait(timeout=60) == 0
    files = sorted(tmp_path.glob("run-cron.log*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    files = [f for f in files if not f.name.endswith(".lock")]
    assert len(files) > 10  # it did rotate, many times
    seen: dict[str, list[int]] = {}
    for file in files:  # oldest backup first
        assert file.stat().st_size <= 4096
        for line in file.read_text().splitlines():
            match = LINE.match(line)
            assert match, f"mangled line in {file.name}: {line!r}"
            seen.setdefault(match.group(1), []).append(int(match.group(2)))
    assert sorted(seen) == sorted([f"w{n}" for n in range(4)] + [f"w{n}-child" for n in range(4)])
    for name, numbers in seen.items():
        expected = list(range(300)) if "child" not in name else list(range(1, 300))
        assert numbers == expected, name  # every line exactly once, in order across the files


def test_zero_backups_truncates_instead_of_growing(tmp_path):
    path = tmp_path / "run-cron.log"
    script = WRITER.format(root=str(ROOT)).replace("backupCount=80", "backupCount=0")
    subprocess.run([sys.executable, "-c", script, str(path), "w0", "500"], check=True, timeout=60)
    assert path.stat().st_size <= 4096
    assert not list(tmp_path.glob("run-cron.log.1"))


JOBS = """
@cronjobs.daily
def nightly(ctx):
    ctx.log.info("nightly says hello")

@cronjobs.hourly
def broken(ctx):
    raise LookupError("no such thing")

@cronjobs.handler("mail")
def mail(ctx, payload): pass
"""


def configure_log(project, level: str = "INFO") -> Path:
    project.write_config(extra=f"[log]\nfile = logs/run-cron.log\nlevel = {level}\n")
    (project.path / "logs").mkdir(exist_ok=True)
    return project.path / "logs" / "run-cron.log"


def test_one_line_per_event_with_uuid_outcome_and_duration_and_a_traceback_for_failures(project):
    log = configure_log(project)
    project.write_jobs(JOBS)
    uuid = project.run("enqueue", "mail", "{}").stdout.strip()
    project.run()
    text = log.read_text()
    assert re.search(r"INFO cronjobs\.events: tick start \(cli\)$", text, re.M)
    assert re.search(r"INFO cronjobs\.events: start job nightly [0-9a-f-]{36} attempt 1", text)
    assert re.search(r"INFO cronjobs\.events: end job nightly [0-9a-f-]{36}: completed in \d+\.\d{3} s$", text, re.M)
    assert re.search(r"WARNING cronjobs\.events: end job broken [0-9a-f-]{36}: failed in \d+\.\d{3} s: "
                     r"LookupError: no such thing$", text, re.M)
    assert re.search(rf"INFO cronjobs\.events: end message mail {uuid}: completed in \d+\.\d{{3}} s$", text, re.M)
    assert re.search(r"WARNING cronjobs\.events: tick end \(cli\): failed in \d+\.\d{3} s, 4 run\(s\), 1 failed$",
                     text, re.M)
    assert 'raise LookupError("no such thing")' in text  # the traceback
    assert "INFO cronjobs.run.nightly: nightly says hello" in text  # the job's own ctx.log
    # every line carries time, pid and level
    first_lines = [line for line in text.splitlines() if " cronjobs." in line]
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ [A-Z]+ cronjobs\.", line) for line in first_lines)


def test_idle_ticks_stay_out_of_an_info_log(project):
    log = configure_log(project)
    project.write_jobs(JOBS.replace('raise LookupError("no such thing")', "pass"))
    project.run()
    size = log.stat().st_size
    project.run()
    assert log.stat().st_size == size


def test_level_warning_keeps_only_failures(project):
    log = configure_log(project, "WARNING")
    project.write_jobs(JOBS)
    project.run()
    text = log.read_text()
    assert "end job broken" in text and "LookupError" in text
    assert "end job nightly" not in text and "tick start" not in text


def test_cron_mail_gets_only_failures_and_each_once(project):
    configure_log(project)
    project.write_jobs(JOBS.replace('raise LookupError("no such thing")', "pass"))
    ok = project.run()
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")  # nothing for cron to mail
    project.write_jobs(JOBS)
    failed = project.run("--force", "broken")
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert 'raise LookupError("no such thing")' in failed.stderr  # the traceback
    assert failed.stderr.endswith("failed: LookupError: no such thing\n")  # and the summary line
    assert "cronjobs.events" not in failed.stderr and "tick end" not in failed.stderr
    verbose = project.run("-v", "--force", "nightly")
    assert verbose.stderr.count("start job nightly") == 1  # the -v line, not also the log line


def test_force_on_a_terminal_shows_each_jobs_progress(project):
    project.write_jobs("""
@cronjobs.daily
def counting(ctx):
    for i in range(4):
        ctx.checkpoint(offset=i + 1, done=i + 1, total=4)
        time.sleep(0.15)
""")
    master, slave = pty.openpty()
    process = subprocess.Popen(project.command("--force", "counting"), stdin=subprocess.DEVNULL, stdout=slave,
                               stderr=slave, env=cli_env())
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert process.wait(timeout=30) == 0
    text = output.decode()
    assert "\rjob counting ..." in text
    assert "\rjob counting  25.0%" in text and "\rjob counting  75.0%" in text
    assert re.search(r"\rjob counting: completed in \d+\.\d\d s\x1b\[K\r?\n", text)
    piped = project.run("--force", "counting")
    assert (piped.returncode, piped.stderr) == (0, "")  # no progress when not on a terminal
