"""The supervisor lock: non-blocking, and it dies with its holder (kill -9 leaves nothing stale)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from cronjobs.runtime.lock import LockError, SupervisorLock

HOLD = "import sys, time; from cronjobs.runtime.lock import SupervisorLock; l = SupervisorLock(sys.argv[1]); " \
       "assert l.acquire(); print('held', flush=True); time.sleep(60)"


def test_second_holder_is_refused_at_once_and_kill_9_frees_the_lock(tmp_path):
    path = str(tmp_path / "run-cron.lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = SupervisorLock(path)
        began = time.monotonic()
        assert lock.acquire() is False
        assert time.monotonic() - began < 0.1
        assert lock.held_elsewhere()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert lock.acquire() is True
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_missing_directory_is_a_lock_error(tmp_path):
    lock = SupervisorLock(str(tmp_path / "nope" / "x.lock"))
    try:
        lock.acquire()
    except LockError as exc:
        assert str(exc) == f"lock file {tmp_path}/nope/x.lock: its directory does not exist"
    else:
        raise AssertionError("expected LockError")


def test_probes_leave_the_lock_free_never_see_each_other_and_never_turn_a_tick_away(tmp_path):
    path = str(tmp_path / "run-cron.lock")
    first = SupervisorLock(path)
    assert first.acquire()
    first.release()
    seen: list[bool] = []
    stop = threading.Event()

    def probe() -> None:  # as /run threads of a flood of requests do
        lock = SupervisorLock(path)
        while not stop.is_set():
            seen.append(lock.held_elsewhere())
            time.sleep(0.001)

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        assert seen and not any(seen)  # nobody holds it: no probe may see another probe as a tick
        for _ in range(5):  # a tick started among the probes takes the lock
            holder = subprocess.Popen([sys.executable, "-c", HOLD, path], stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout.readline().strip() == "held"
            finally:
                holder.kill()
                holder.wait()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert SupervisorLock(path).acquire()  # and the probes left it free
