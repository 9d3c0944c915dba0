"""The one set of shared test helpers: a real SQLite file under tmp_path, a DST time zone, a project on
disk to run the real `run-cron` CLI (and its HTTP server) against in subprocesses, and an HTTP client."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

import cronjobs
from cronjobs.messages.queue import Queue
from cronjobs.registry import Registry
from cronjobs.runtime.runs import Runs
from cronjobs.scheduling.schedule import get_timezone
from cronjobs.store import connect_store

ROOT = Path(__file__).resolve().parent.parent

# A shell starts a background job (`.ci/run &`) with SIGINT ignored, nohup ignores SIGHUP, and an
# ignored signal stays ignored across exec: every run-cron the tests start would then ignore them too,
# as run-cron rightly does. The signal tests need the defaults: a Python handler here becomes SIG_DFL
# in each child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
# libfaketime itself: the `faketime` wrapper names its semaphores by pid and fails on a stale one.
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)
needs_faketime = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (Debian: faketime)")
CGI = ROOT / "bin" / "run-cron.cgi"
TOKEN = "s3cret-Token_for-tests"


def pytest_addoption(parser):
    parser.addoption(
        "--reliability-full", action="store_true", default=False,
        help="run the full reliability suite (tests/reliability/: hundreds of kills); "
             "also RUN_CRON_RELIABILITY=full",
    )
    parser.addoption(
        "--store", default=None, metavar="ENGINE",
        help="the store every Project's config names: sqlite (a file, the default), postgresql or mysql "
             "(a fresh schema or database on the server .ci/services starts, per test); tests marked "
             "sqlite_only skip. Also RUN_CRON_TEST_STORE=ENGINE",
    )


#: The engine of every `Project`'s store in this run (--store): sqlite, postgresql or mysql.
STORE = "sqlite"


def pytest_configure(config):
    global STORE
    STORE = config.getoption("--store") or os.environ.get("RUN_CRON_TEST_STORE") or "sqlite"
    if STORE not in ENGINES:
        raise pytest.UsageError(f"--store: {STORE!r} is none of {', '.join(ENGINES)}")
    if STORE != "sqlite":
        # Asked for by name, a server that does not answer fails the run instead of skipping every test.
        from cronjobs.errors import StoreError
        from cronjobs.store.server import open_fast

        try:
            open_fast(SERVERS[STORE], 5.0).close()
        except StoreError as exc:
            raise pytest.UsageError(f"--store={STORE}: the server does not answer ({exc.reason}); "
                                    ".ci/services starts it") from None


def pytest_report_header(config):
    return f"run-cron store: {STORE}"


def pytest_collection_modifyitems(config, items):
    if STORE == "sqlite":
        return
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        # Tests parametrized over `engine` already run on every engine in the plain run: keep this one's.
        if callspec is not None and callspec.params.get("engine", STORE) != STORE:
            dropped.append(item)
            continue
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def tz():
    return get_timezone("Europe/Berlin")


@pytest.fixture
def db(tmp_path):
    database, models = connect_store(str(tmp_path / "db.sqlite3"))
    yield database
    database.close()


#: The engines a store test runs on (`any_db`); the servers are the ones .ci/services starts.
ENGINES = ("sqlite", "postgresql", "mysql")
SERVERS = {"postgresql": "postgresql://postgres@127.0.0.1:5432/test", "mysql": "mysql://root@127.0.0.1:3306/test"}


def server_store(engine: str) -> Iterator[str]:
    """A URL to an empty store of its own on the real server: a PostgreSQL schema (creating a database
    costs a checkpoint there) or a MariaDB database; dropped afterwards. Skips with one line if the
    server does not answer."""
    import uuid as uuidlib

    from cronjobs.errors import StoreError
    from cronjobs.store.server import open_fast

    name = f"rc_t_{uuidlib.uuid4().hex[:12]}"
    try:
        admin = open_fast(SERVERS[engine], 5.0)
    except StoreError as exc:
        pytest.skip(f"{engine} server not available ({exc.reason}); .ci/services starts it")
    try:
        if engine == "postgresql":
            url = f"{SERVERS[engine]}?schema={name}"
        else:
            admin.execute_raw(f"CREATE DATABASE {name}")
            url = SERVERS[engine].rsplit("/", 1)[0] + "/" + name
        yield url
    finally:
        admin.execute_raw(f"DROP SCHEMA IF EXISTS {name} CASCADE" if engine == "postgresql"
                          else f"DROP DATABASE IF EXISTS {name}")
        admin.close()


#: This test's server stores under --store=SERVER: the SQLite file a Project's config named -> its URL.
_server_stores: dict[Path, str] = {}
_server_store_drops: list[Iterator[str]] = []


@pytest.fixture(autouse=True)
def _drop_server_stores() -> Iterator[None]:
    """Drops the server stores this test's Projects made, after its other fixtures stopped their servers."""
    yield
    while _server_store_drops:
        _server_store_drops.pop().close()
    _server_stores.clear()


def project_store(path: Path) -> str:
    """What a Project's config names for the SQLite file `path`: the path itself, or under --store=SERVER
    a fresh store on that server, the same one for the same path within a test (two configs naming one
    file share it, as on SQLite)."""
    key = Path(os.path.abspath(path))
    if STORE == "sqlite":
        return str(key)
    if key not in _server_stores:
        made = server_store(STORE)
        _server_stores[key] = next(made)
        _server_store_drops.append(made)
    return _server_stores[key]


def store_address(engine: str, tmp_path: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield str(tmp_path / "db.sqlite3")
    else:
        yield from server_store(engine)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def any_db(engine, tmp_path):
    """`db` on each engine in turn: a module overrides `db` with it to run its tests on all three."""
    for address in store_address(engine, tmp_path):
        database, models = connect_store(address)
        yield database
        database.close()


def address_of(database: Any) -> str:
    """The path or URL `connect_store` opened `database` from."""
    return getattr(database, "url", None) or database.database


def make_runs(database: Any, retry_backoff: float = 0, **options: Any) -> Runs:
    """Runs on the engine's own hot path (ServerRuns on a server: row locks, the runner's token)."""
    if getattr(database, "is_server", False):
        from cronjobs.store.server import open_fast
        from cronjobs.store.server_runs import ServerRuns

        return ServerRuns(open_fast(database.url), retry_backoff, **options)
    return Runs(database.connection(), retry_backoff, **options)


def orphaned(runs: Runs, database: Any) -> Runs:
    """Runs that see what `runs` left pending as a dead worker's: on SQLite the same (the supervisor
    lock proves no worker runs); on a server, `runs`'s session is closed first, as a kill closes it."""
    if getattr(database, "is_server", False):
        runs.db.close()
        return make_runs(database)
    return runs


class Interleaved:
    """A store connection that runs another host's work once right after its first statement that
    starts with a given text ({text: work}): between two statements of this one."""

    def __init__(self, connection: Any, between: dict[str, Callable[[], Any]]) -> None:
        self.connection, self.between = connection, dict(between)

    def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = self.connection.execute(sql, params)
        for text in [text for text in self.between if sql.startswith(text)]:
            self.between.pop(text)()
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


@pytest.fixture
def runs(db):
    return make_runs(db)


@pytest.fixture
def queue(db):
    return Queue(db)


@pytest.fixture
def registry():
    return Registry()


def cli_env() -> dict[str, str]:
    """The environment of a `run-cron` subprocess: this checkout importable, no config from outside."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("RUN_CRON_CONFIG", None)
    env.pop("WEB_TEST_JOB_SLEEP", None)
    return env


class Project:
    """A config file and a jobs module in a temporary directory, driven through the real CLI.

    Its store is an SQLite file (`database`), or under --store=SERVER a server store of its own: the
    config names that store's URL instead of a relative file name, and `store` is the address tests read
    it through (connect_store, open_fast, read_tick) on every engine."""

    def __init__(self, path: Path, http: Optional[dict[str, Any]] = None, **settings: Any) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.config = path / "run-cron.ini"
        self.database = path / "run-cron.sqlite3"
        self.log = path / "ran.log"
        self.settings = {
            "database": "run-cron.sqlite3",
            "lock_file": "run-cron.lock",
            "jobs": "jobs",
            "python_path": ".",
            "timezone": "Europe/Berlin",
            "time_limit": "20",
            "retry_backoff": "0",
        }
        self.http: Optional[dict[str, Any]] = None if http is None else {
            "token": TOKEN, "time_limit": 10, "min_interval": 0, **http}
        self.write_config(**settings)

    @property
    def store(self) -> str:
        """The store's address: the SQLite file's path, or the server store's URL (--store)."""
        database = str(self.settings["database"])
        return database if "://" in database else project_store(self.path / database)

    @property
    def engine(self) -> str:
        """sqlite, postgresql or mysql: the store's engine, for a test's own SQL in its dialect."""
        from cronjobs.store.url import parse

        return parse(self.store).engine if "://" in self.store else "sqlite"

    def write_config(self, extra: str = "", **settings: Any) -> None:
        self.settings.update(settings)
        # On SQLite the config keeps the name as the test gave it (relative to the config's folder).
        values = self.settings if STORE == "sqlite" else {**self.settings, "database": self.store}
        body = "[run-cron]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
        if self.http is not None:
            body += "[http]\n" + "".join(f"{k} = {'' if v is None else v}\n" for k, v in self.http.items())
        self.config.write_text(body + extra)

    def write_jobs(self, code: str) -> None:
        header = (
            "import os, sys, time, signal\nimport cronjobs\n"
            f"LOG = {str(self.log)!r}\n"
            "def record(*parts):\n"
            "    with open(LOG, 'a') as f:\n"
            "        f.write(' '.join(str(p) for p in parts) + '\\n')\n"
            "        f.flush()\n"
        )
        (self.path / "jobs.py").write_text(header + textwrap.dedent(code))
        for cached in (self.path / "__pycache__").glob("jobs*"):
            cached.unlink()

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A plain autocommit connection to the store, for reading (and upsetting) what the CLI wrote: sqlite3's,
        or a server's taking the same SQL (cronjobs.runtime.idle.open_fast)."""
        from cronjobs.runtime.idle import open_fast

        connection = open_fast(self.store)
        assert connection is not None, f"no store at {self.store}"
        try:
            yield connection
        finally:
            connection.close()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cronjobs", "--config", str(self.config), *args]

    def run(self, *args: str, timeout: float = 60, input: Optional[str] = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                              env=cli_env(), input=input)

    def run_at(self, utc: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """The real CLI with its clock starting at `utc` ('YYYY-MM-DD HH:MM:SS', then running) by libfaketime."""
        if LIBFAKETIME is None:
            pytest.skip("libfaketime is not installed (Debian package faketime)")
        env = {**cli_env(), "LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"@{utc}", "TZ": "UTC"}
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, env=env)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=cli_env())

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; log so far: {self.ran()}")
            time.sleep(0.02)


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return True


# -- the HTTP trigger's project and client --------------------------------------------------------------

WEB_JOBS = """
HERE = os.path.dirname(LOG)


@cronjobs.minutely
def every_minute(ctx):
    record("every_minute")
    time.sleep(float(os.environ.get("WEB_TEST_JOB_SLEEP", "0")))


@cronjobs.daily(cli_only=True)
def nightly(ctx):
    record("nightly")


@cronjobs.handler("web.echo")
def echo(ctx, payload):
    record("echo " + str(payload))


@cronjobs.handler("web.cli", cli_only=True)
def cli_handler(ctx, payload):
    record("cli-handler")


@cronjobs.handler("web.evil")
def evil(ctx, payload):
    ctx.warn("<script>alert('warning')</script>")
    ctx.attach("report <1>.txt", b"hello \\x00 bytes")
    raise cronjobs.PermanentError("<script>alert('error')</script>")


@cronjobs.handler("web.forever")
def forever(ctx, payload):
    with open(os.path.join(HERE, "forever.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    while True:
        time.sleep(0.05)
"""


def web_project(path: Path, http: Optional[dict[str, Any]] = None, main: Optional[dict[str, Any]] = None,
                extra: str = "") -> Project:
    """A project with the HTTP trigger on (the test token) and WEB_JOBS, for `serve` and CGI tests."""
    project = Project(path, http=http or {})
    project.write_config(extra, **{"database": "db.sqlite3", "lock_file": "tick.lock", **(main or {})})
    project.write_jobs(WEB_JOBS)
    return project


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def fetch(url: str, method: str = "GET", data: Optional[bytes] = None, headers: Optional[dict[str, str]] = None,
          timeout: float = 30) -> Answer:
    """One HTTP request; error statuses are answers too."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers, error.read())


def enqueue(config: Path, *args: Any, **options: Any) -> str:
    """Queue a message as a web process would that does not import the jobs modules (the test's
    registry is this process's, not the project's)."""
    options.setdefault("allow_unknown", True)
    with cronjobs.connect(str(config)) as queue:
        return queue.enqueue(*args, **options)


def mine(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary items of the test's jobs and handlers, not run-cron's own (such as pruning)."""
    return [item for item in items if not item["name"].startswith("run-cron.")]


class Server:
    """A real server process started by a test, its stderr (the request log) in a file."""

    def __init__(self, args: list[str], path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.log = path / "server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=path, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while "serving on http://" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not start: {self.log.read_text()}")
            time.sleep(0.05)
        self.base = self.log.read_text().split("serving on ", 1)[1].split()[0].rstrip("/")
        self.port = urllib.parse.urlsplit(self.base).port

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Serve(Server):
    """A real `run-cron -v serve --port 0` on a project."""

    def __init__(self, project: Project, env: Optional[dict[str, str]] = None) -> None:
        super().__init__(project.command("-v", "serve", "--port", "0"), project.path, {**cli_env(), **(env or {})})
        self.project = project
        self.config = project.config


@pytest.fixture
def serving() -> Iterator[Callable[[Project], Serve]]:
    """serving(project) starts `run-cron serve` on it; every server is stopped after the test."""
    servers: list[Serve] = []

    def start(project: Project) -> Serve:
        servers.append(Serve(project))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def serve(tmp_path):
    """Start `run-cron serve --port 0` on a web project: serve(http={...}, main={...}, env={...})."""
    servers: list[Serve] = []

    def start(name: str = "site", env: Optional[dict[str, str]] = None, **options: Any) -> Serve:
        servers.append(Serve(web_project(tmp_path / name, **options), env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
        assert TOKEN not in server.log.read_text()  # the token never reaches the log
