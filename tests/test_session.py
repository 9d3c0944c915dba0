"""A host's database session on PostgreSQL and MariaDB (store/session.py): a live worker keeps it however
long its handler stays away from the database, and a worker cut off from the server is dead before the
server lets go of it, so that no message runs twice.

Host A reaches the server through a TCP proxy in this process that can cut (a partition: nothing passes
either way, both sockets stay open, new connections are refused) and drop (close the server side of
every connection, as the server's keepalive or timeout does for a vanished client). Host B ticks on a
direct connection with a lock file of its own. The real CLI in subprocesses on both.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
from conftest import Project, pid_alive, server_store

from cronjobs.store.server import open_fast
from cronjobs.store.session import Keeper, Timing

SERVER_ENGINES = ("postgresql", "mysql")
PORTS = {"postgresql": 5432, "mysql": 3306}


class Proxy:
    """Forwards connections to 127.0.0.1:`port`, until cut."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.cut_off = False
        self.pairs: list[dict] = []  # client, server, and whether a request is unanswered
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        return url.replace(f"127.0.0.1:{self.target}/", f"127.0.0.1:{self.port}/")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.cut_off:  # the server cannot be reached
                    client.close()
                    continue
                pair = {"client": client, "server": socket.create_connection(("127.0.0.1", self.target)),
                        "asked": False}
                self.pairs.append(pair)
            threading.Thread(target=self._forward, args=(pair, "client", "server"), daemon=True).start()
            threading.Thread(target=self._forward, args=(pair, "server", "client"), daemon=True).start()

    def _forward(self, pair: dict, source: str, target: str) -> None:
        while True:
            try:
                data = pair[source].recv(65536)
            except OSError:
                data = b""
            with self.lock:
                if self.cut_off:  # lost in the partition; an end of connection too
                    if not data:
                        return
                    continue
                try:
                    if data:
                        pair[target].sendall(data)
                        pair["asked"] = source == "client"
                        continue
                except OSError:
                    pass
                for side in ("client", "server"):  # one side ended: so does the other
                    _close(pair[side])
                if pair in self.pairs:
                    self.pairs.remove(pair)
                return

    def cut(self, timeout: float = 5.0) -> float:
        """Partition between two round trips (no request unanswered: a cut reply would leave a commit
        unknown to its client); returns the monotonic time of the cut."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if not any(pair["asked"] for pair in self.pairs):
                    self.cut_off = True
                    return time.monotonic()
            assert time.monotonic() < deadline, "no quiet moment to cut"
            time.sleep(0.001)

    def drop(self) -> None:
        """The server's side of every connection ends; the clients still see theirs open."""
        with self.lock:
            for pair in self.pairs:
                _close(pair["server"])

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for pair in self.pairs:
                for side in ("client", "server"):
                    _close(pair[side])


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture(params=SERVER_ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def url(engine):
    yield from server_store(engine)


@pytest.fixture
def proxy(engine):
    proxy = Proxy(PORTS[engine])
    yield proxy
    proxy.close()


JOBS = """
@cronjobs.handler("long")
def long(ctx, payload):
    for i in range(ctx.offset or 0, len(payload["steps"])):
        began = time.monotonic()
        while time.monotonic() - began < payload["steps"][i] and not os.path.exists(LOG + ".hurry"):
            # work without the database
            record("beat", i, os.getpid(), time.monotonic())
            time.sleep(0.05)
        ctx.checkpoint(offset=i + 1, done=i + 1, total=len(payload["steps"]))
        record("step", i, os.getpid(), time.monotonic())
    record("done", os.getpid(), time.monotonic())
"""


def host(tmp_path, name: str, url: str, **settings) -> Project:
    """A host of its own: its own directory and lock file, the one shared database and log."""
    project = Project(tmp_path / name, database=url, lock_file=f"{name}.lock", time_limit="0", **settings)
    project.log = tmp_path / "ran.log"
    project.write_jobs(JOBS)
    return project


def _pid(line: str) -> int:
    """The worker that wrote a line of the log ("beat STEP PID TIME", "step STEP PID TIME", "done PID TIME")."""
    return int(line.split()[-2])


def lines(project: Project, kind: str) -> list[list[str]]:
    return [line.split()[1:] for line in project.ran() if line.startswith(kind + " ")]


def test_the_timing_rule_kills_a_cut_off_worker_well_before_the_server_lets_go():
    for release in (2, 4, 30, 600):
        timing = Timing(release)
        worst_healthy = timing.ping_after + 2 * timing.step  # a ping answered at once, looked at late
        assert worst_healthy < timing.give_up  # a healthy worker is never taken for a lost one
        assert timing.ping_after + timing.step + timing.ping_timeout < timing.give_up  # its own ping says first
        assert timing.give_up + 0.5 < release  # the supervisor's kill (it looks every 0.5 s) comes first


def test_a_keeper_keeps_an_idle_session_the_server_would_end_and_knows_at_once_when_it_is_cut(url, proxy):
    """In process: the server ends a session silent for 2 s; pings keep it; a cut is known within 2/3 s."""
    connection = open_fast(proxy.url(url))
    lost: list[tuple[float, str]] = []
    keeper = Keeper(connection, Timing(2), lambda why, unanswered: lost.append((time.monotonic(), why)))
    try:
        keeper.start()
        assert connection.try_lock("session-test")
        time.sleep(2.6)  # silent on our side for longer than the server allows
        assert connection.execute("SELECT 1").fetchone() == (1,) and not lost
        other = open_fast(url)
        assert not other.try_lock("session-test")  # still ours
        cut = proxy.cut()
        deadline = time.monotonic() + 5
        while not lost:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert lost[0][0] - cut <= Timing(2).ping_after + 2 * Timing(2).step + Timing(2).ping_timeout + 0.3
        assert lost[0][1].startswith("no answer to a ping within")
        assert not other.try_lock("session-test")  # the server has not let go yet: it waits for 2 s of silence
        proxy.drop()
        deadline = time.monotonic() + 5
        while not other.try_lock("session-test"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        other.close()
    finally:
        connection.close()


def test_a_statement_the_server_refuses_is_its_error_not_a_lost_session(url):
    """A wrong statement (PostgreSQL answers a wrong parameter count with 08P01, a protocol violation
    class) raises its error and leaves the session and the worker alone: only a gone connection kills."""
    connection = open_fast(url)
    lost: list[str] = []
    keeper = Keeper(connection, Timing(30), lambda why, unanswered: lost.append(why))
    try:
        keeper.start()
        with pytest.raises(sqlite3.Error):
            connection.execute("SELECT CAST(? AS INTEGER)", (1, 2))
        assert connection.execute("SELECT 1").fetchone() == (1,)
        assert lost == []
    finally:
        keeper.stop()
        connection.close()


def _tick_until(project: Project, done, timeout: float = 30.0) -> list[subprocess.CompletedProcess]:
    """Tick `project` again and again until `done()`; the ticks' results."""
    ticks = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, project.ran()
        ticks.append(project.run())
        assert ticks[-1].returncode == 0, ticks[-1].stderr
    return ticks


def test_a_handler_that_stays_away_from_the_database_longer_than_the_server_allows_runs_once(url, tmp_path):
    """The server ends a session silent for 3 s (session_timeout = 3 sets it on A's sessions); A's handler
    sleeps 4.2 s; B ticks all along and must not take the message over."""
    a, b = host(tmp_path, "a", url, session_timeout="3"), host(tmp_path, "b", url)
    a.run("enqueue", "long", json.dumps({"steps": [4.2]}))
    tick = a.start()
    try:
        a.wait_for(lambda: lines(a, "beat"), timeout=30)
        _tick_until(b, lambda: lines(a, "done"))
        out, err = tick.communicate(timeout=30)
        assert tick.returncode == 0, err
    finally:
        tick.kill()
    assert len({pid for _, pid, _ in lines(a, "beat")}) == 1  # one worker ran it, once
    assert [step[0] for step in lines(a, "step")] == ["0"] and len(lines(a, "done")) == 1
    history = json.loads(b.run("history", "--json", "--job", "long").stdout)
    assert [entry["outcome"] for entry in history] == ["completed"]


def test_a_host_cut_off_keeps_its_message_until_its_worker_is_dead_then_another_resumes_it(url, proxy, tmp_path):
    """A runs a checkpointed handler behind the proxy; cut: B's ticks leave the message alone while A's
    worker lives, and A's worker is killed within the promised time (its handler, 10 s of work without
    the database, stops writing); drop: B's next tick continues from the checkpoint (and is told to
    hurry through the step). Each step done exactly once."""
    release = 4.0
    timing = Timing(release)
    a = host(tmp_path, "a", proxy.url(url), session_timeout=str(release), busy_timeout="2")
    b = host(tmp_path, "b", url)
    b.run("enqueue", "long", json.dumps({"steps": [0.2, 10, 0.2]}))
    tick = a.start()
    try:
        a.wait_for(lambda: lines(a, "step"), timeout=30)  # step 0 checkpointed; step 1 is 10 s of work
        cut = proxy.cut()
        worker = int(lines(a, "step")[0][1])
        b_ticks = _tick_until(b, lambda: not pid_alive(worker), timeout=release)
        dead = time.monotonic()
        assert dead - cut < timing.give_up + 0.5 + 1.0  # the promise, and a loaded machine's second
        assert dead - cut < release  # before the server would let go of the session
        assert b_ticks and {_pid(line) for line in a.ran()} == {worker}  # B's ticks ran nothing
        last_beat = max(float(beat[2]) for beat in lines(a, "beat"))
        assert cut < last_beat < dead  # it worked on after the cut, until it was killed
        out, err = tick.communicate(timeout=30)
        assert err.count("worker killed: ") == 1, err
        assert tick.returncode == 2  # its supervisor cannot reach the server either (one line says so)
        (tmp_path / "ran.log.hurry").touch()
        proxy.drop()
        _tick_until(b, lambda: lines(a, "done"))
    finally:
        tick.kill()
    steps = lines(a, "step")
    assert [step[0] for step in steps] == ["0", "1", "2"]  # each exactly once, in order
    assert steps[0][1] == str(worker) and str(worker) not in {step[1] for step in steps[1:]}
    assert min(float(line.split()[-1]) for line in a.ran() if _pid(line) != worker) > last_beat  # one at a time
    history = json.loads(b.run("history", "--json", "--job", "long").stdout)
    assert [entry["outcome"] for entry in reversed(history)] == ["continued", "completed"]
