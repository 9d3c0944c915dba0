"""cronjobs.contrib.flask against a real Flask app in tmp_path: a view enqueues, a `run-cron` tick runs the
handler and a periodic job inside the app context, the trigger and status page answer under the prefix.

The app runs in subprocesses (its jobs must not land in this process's registry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("flask", reason="Flask is not installed (pip install -e '.[flask]')")

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "flask-test-token"

APP = '''
import os
from pathlib import Path

from flask import Flask, current_app, request

from cronjobs.contrib.flask import RunCron

HERE = Path(__file__).resolve().parent
app = Flask("siteapp")
app.config["RUN_CRON_CONFIG"] = str(HERE / "run-cron.ini")
app.config["GREETING"] = "hello from the app config"
cron = RunCron(app)


@cron.minutely
def stamp(ctx):
    (HERE / "stamp.txt").write_text(current_app.config["GREETING"])


@cron.handler("mail.send")
def send(ctx, payload):
    (HERE / f"mail-{payload['to']}.txt").write_text(f"{current_app.name}: {payload['to']}")


@app.post("/signup")
def signup():
    return {"uuid": cron.enqueue("mail.send", {"to": request.form["email"]})}


@app.get("/")
def home():
    return "the app itself"
'''

INI = f'''
[run-cron]
database = run-cron.sqlite3
lock_file = run-cron.lock
jobs = siteapp
python_path = .
time_limit = 60

[http]
token = {TOKEN}
min_interval = 0
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "siteapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "run-cron.ini").write_text(textwrap.dedent(INI))
    return tmp_path


def env(site: Path) -> dict[str, str]:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    environ.pop("RUN_CRON_CONFIG", None)
    return environ


def with_client(site: Path, script: str) -> object:
    """Run `script` with `client` (the app's Flask test client) in a subprocess; what it prints, as JSON."""
    code = "import json\nfrom siteapp import app\nclient = app.test_client()\n" + textwrap.dedent(script)
    done = subprocess.run([sys.executable, "-c", code], cwd=site, env=env(site), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_cron(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cronjobs", "--config", str(site / "run-cron.ini"), *args],
                          cwd=site, env=env(site), capture_output=True, text=True, timeout=120)


def test_a_view_enqueues_and_the_tick_runs_the_handler_in_the_app_context(site: Path) -> None:
    answer = with_client(site, '''
        response = client.post("/signup", data={"email": "ada"})
        print(json.dumps([response.status_code, response.get_json()]))
    ''')
    assert answer[0] == 200  # type: ignore[index]
    uuid = answer[1]["uuid"]  # type: ignore[index]
    ticked = run_cron(site)
    assert ticked.returncode == 0, ticked.stderr
    assert (site / "mail-ada.txt").read_text() == "siteapp: ada"
    assert (site / "stamp.txt").read_text() == "hello from the app config"
    shown = run_cron(site, "show", uuid, "--json")
    assert json.loads(shown.stdout)["status"] == "completed"


def test_trigger_health_and_status_page_answer_under_the_prefix(site: Path) -> None:
    answers = with_client(site, f'''
        out = {{}}
        out["home"] = client.get("/").get_data(as_text=True)
        out["health_before"] = client.get("/cron/health").status_code  # no tick yet
        out["run_no_token"] = client.post("/cron/run").status_code
        ran = client.post("/cron/run", headers={{"Authorization": "Bearer {TOKEN}"}})
        out["run"] = [ran.status_code, ran.get_json()["status"]]
        page = client.get("/cron/?token={TOKEN}")
        out["page"] = [page.status_code, "stamp" in page.get_data(as_text=True)]
        out["health"] = client.get("/cron/health").status_code
        out["page_no_token"] = app.test_client().get("/cron/").status_code  # no cookie either
        print(json.dumps(out))
    ''')
    assert answers == {"home": "the app itself", "health_before": 503, "health": 200, "run_no_token": 403,
                       "run": [200, "ran"], "page": [200, True], "page_no_token": 403}
    assert (site / "stamp.txt").read_text() == "hello from the app config"  # the HTTP tick ran the job


def test_a_job_without_an_app_says_so(site: Path) -> None:
    (site / "siteapp.py").write_text(textwrap.dedent('''
        from cronjobs.contrib.flask import RunCron

        cron = RunCron()


        @cron.minutely
        def orphan(ctx):
            pass
    '''))
    ticked = run_cron(site)
    assert ticked.returncode == 1
    assert "RuntimeError: RunCron has no Flask app" in ticked.stderr
