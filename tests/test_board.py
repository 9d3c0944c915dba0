"""The worker's board: shared with the supervisor, and in a file the next tick reads after a kill -9 of both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import cli_env

from cronjobs.messages.queue import Queue
from cronjobs.runtime.board import Board, boot_id, peek_started
from cronjobs.store import connect_store

needs_boot_id = pytest.mark.skipif(boot_id() is None, reason="no /proc/sys/kernel/random/boot_id on this system")


WRITE_AND_DIE = """
import os, signal, sys
from cronjobs.runtime.board import Board
writer = Board(path=sys.argv[1])
writer.set_claimed([3, 4, 5])
writer.add_done(3)
writer.set_current(4)
os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_boot_id
def test_board_file_keeps_what_a_dead_process_wrote(tmp_path):
    path = str(tmp_path / "lock.board")
    board = Board(path=path)
    assert board.leftover() is None  # a new file says nothing
    board.reset()
    board.close()
    died = subprocess.run([sys.executable, "-c", WRITE_AND_DIE, path], env=cli_env(), timeout=30)
    assert died.returncode == -signal.SIGKILL
    assert Board(path=path).leftover() == (4, [3], [3, 4, 5])
    assert os.stat(path).st_mode & 0o777 == 0o600


@needs_boot_id
def test_board_file_from_another_boot_is_not_trusted(tmp_path):
    path = str(tmp_path / "lock.board")
    board = Board(path=path)
    board.reset()
    board.set_current(9)
    board._memory[8:24] = bytes(16)  # as if written before the last reboot
    assert board.leftover() is None


@needs_boot_id
def test_when_the_tick_began_is_read_without_writing_and_only_from_this_boot(tmp_path):
    path = str(tmp_path / "lock.board")
    assert peek_started(path) is None  # no board yet
    older = Board(path=path)
    older.reset()
    older.close()
    os.truncate(path, os.path.getsize(path) - 8)  # a board of the layout before the start time
    assert peek_started(path) is None
    board = Board(path=path)  # grows it back
    board.reset()
    assert peek_started(path) is None  # a tick that has not said so: an idle one
    board.set_started(1780304460.25)
    assert peek_started(path) == 1780304460.25
    assert Board(path=path).read().current is None  # the other slots read the same
    board._memory[8:24] = bytes(16)  # as if written before the last reboot, by a tick killed mid-way
    assert peek_started(path) is None
    board.reset()
    board.set_started(0.0)  # the tick ended
    assert peek_started(path) is None


FAST = """
@cronjobs.handler("fast")
def fast(ctx, payload):
    record(ctx.job.uuid)
    time.sleep(0.004)
"""


@needs_boot_id
def test_kill_9_of_the_supervisor_mid_batch_charges_only_the_run_in_flight(project):
    """The host kill -9s the tick (the worker dies with it): messages only claimed in the batch
    go back untouched; at most the one in flight per kill uses an attempt."""
    project.write_jobs(FAST)
    database, models = connect_store(project.store)
    queue = Queue(database, models)
    uuids = {queue.enqueue("fast", i) for i in range(600)}
    database.close()
    kills = 0
    for _ in range(4):
        before = len(project.ran())
        tick = project.start("--time-limit", "0")
        project.wait_for(lambda before=before: len(project.ran()) >= before + 40, timeout=30)
        tick.send_signal(signal.SIGKILL)
        tick.wait()
        kills += 1
        time.sleep(0.3)  # its worker dies with it (PR_SET_PDEATHSIG)
        with project.connect() as db:
            pending = db.execute("SELECT COUNT(*) FROM message WHERE status = 'pending'").fetchone()[0]
        if len(project.ran()) >= len(uuids):
            break
        assert pending  # the kill did leave claimed messages behind: the case under test
    started_in_killed_ticks = set(project.ran())
    for _ in range(10):
        result = project.run("--time-limit", "0")
        assert result.returncode == 0, result.stderr
        with project.connect() as db:
            if not db.execute("SELECT 1 FROM message WHERE status != 'completed'").fetchone():
                break
    with project.connect() as db:
        rows = db.execute("SELECT uuid, status, attempts FROM message WHERE type = 'fast'").fetchall()
    assert {status for _, status, _ in rows} == {"completed"}
    charged = {uuid for uuid, _, attempts in rows if attempts}
    # A message that never started is never charged. The one in flight may be charged before its
    # handler wrote its first line (the kill can land between the worker's start and that write), so
    # besides the ones seen running, at most one per kill: the run in flight at that kill.
    assert len(charged - started_in_killed_ticks) <= kills
    assert sum(attempts for _, _, attempts in rows) <= kills  # at most the one in flight per kill
