"""What the worker is doing right now, in memory it shares with the supervisor and the next tick.

A kill must not cost the runs that were not running: recovery needs to know which run was in flight,
which were only claimed, and which successes were not committed yet (group commit). The worker keeps
that here, in a shared mapping of a small file beside the lock file: plain memory writes on the hot
path, no system call, and still readable after the worker died. When the host kill -9s the
supervisor too, the next tick reads the same file: the kernel's page cache keeps what a killed
process wrote, so the file is trusted as long as the machine has not rebooted since (its boot id).
Without a file (tests, the queue API) the mapping is anonymous and lives only as long as the tick.
It also holds when the tick began: the lock says only that a tick runs, and the tick facts are written
when one ends, so this is where `why` learns since when the lock is held.
"""

from __future__ import annotations

import mmap
import os
import struct
import uuid
from typing import Iterable, NamedTuple, Optional

_SLOT = struct.Struct("q")
_TIME = struct.Struct("d")  # same size as a slot
#: Runs the board holds of each kind (successes, claims); the tick's board has the default.
CAPACITY = 256
_MAGIC = 0x316472616F426A43  # "CjBoard1", little-endian
_HEADER = 6  # magic, boot id (2 slots), run in flight, uncommitted successes, claimed runs
_CURRENT, _DONE, _CLAIMED = 3, 4, 5


class BoardState(NamedTuple):
    """A snapshot: the run in flight (or None), successes not committed yet, runs claimed last."""

    current: Optional[int]
    done: list[int]
    claimed: list[int]


def boot_id() -> Optional[bytes]:
    """16 bytes that change at every boot (Linux); None where the system does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return uuid.UUID(handle.read().strip()).bytes
    except (OSError, ValueError):
        return None


class Board:
    """The shared board: a header, `capacity` slots of successes, `capacity` of claims, a stop flag and
    when the tick began, and the worker's database session (server engines: when the server last answered
    it, see store.session)."""

    def __init__(self, capacity: int = CAPACITY, path: Optional[str] = None) -> None:
        self.capacity = capacity
        # after the rest, so a board file of an older layout reads the same
        self._stop = _HEADER + 2 * capacity
        self._started = self._stop + 1
        self._session = self._started + 1
        size = _SLOT.size * (self._session + 1)
        if path is None:
            self._memory = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)
                self._memory = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        self._boot = boot_id()

    def _get(self, slot: int) -> int:
        return _SLOT.unpack_from(self._memory, _SLOT.size * slot)[0]

    def _set(self, slot: int, value: int) -> None:
        _SLOT.pack_into(self._memory, _SLOT.size * slot, value)

    def set_current(self, run_id: int) -> None:
        self._set(_CURRENT, run_id)

    def set_claimed(self, run_ids: Iterable[int]) -> None:
        """Record the runs just claimed (call before their claim commits); too many: unknown."""
        ids = list(run_ids)
        self._set(_CLAIMED, -1)  # while rewriting: unknown, never a half-written list
        if len(ids) > self.capacity:
            return
        base = _HEADER + self.capacity
        for index, run_id in enumerate(ids):
            self._set(base + index, run_id)
        self._set(_CLAIMED, len(ids))

    def add_done(self, run_id: int) -> bool:
        """Record an uncommitted success; False when full (the caller must commit first)."""
        count = self._get(_DONE)
        if count >= self.capacity:
            return False
        self._set(_HEADER + count, run_id)
        self._set(_DONE, count + 1)
        return True

    def request_stop(self) -> None:
        """Ask the worker to stop at its next checkpoint, as at the soft deadline (a stop signal)."""
        self._set(self._stop, 1)

    def stop_requested(self) -> bool:
        return self._get(self._stop) != 0

    def set_started(self, at: float) -> None:
        """When the tick holding the lock began (epoch seconds), for `why`; 0 once it has ended."""
        _TIME.pack_into(self._memory, _SLOT.size * self._started, at)

    def set_session(self, value: int) -> None:
        """The worker's session: 0 none kept, -1 or -2 lost, else the monotonic microsecond the server
        last answered it."""
        self._set(self._session, value)

    def session(self) -> int:
        return self._get(self._session)

    def clear_done(self) -> None:
        self._set(_DONE, 0)

    def read(self) -> BoardState:
        """What the board says now. Claims not known (too many, or being rewritten): none listed."""
        current = self._get(_CURRENT)
        done = [self._get(_HEADER + i) for i in range(max(self._get(_DONE), 0))]
        claimed_count = self._get(_CLAIMED)
        base = _HEADER + self.capacity
        claimed = [self._get(base + i) for i in range(claimed_count)] if claimed_count > 0 else []
        return BoardState(current or None, done, claimed)

    def leftover(self) -> Optional[BoardState]:
        """What the last worker using this file left, if it can be trusted: written since this boot."""
        if self._boot is None or self._get(0) != _MAGIC or self._memory[8:24] != self._boot:
            return None
        return self.read()

    def reset(self) -> None:
        """Start a fresh board for this tick's worker."""
        self._set(_CURRENT, 0)
        self._set(_DONE, 0)
        self._set(_CLAIMED, 0)
        self._set(self._stop, 0)
        self._set(self._session, 0)
        if self._boot is not None:
            self._memory[8:24] = self._boot
            self._set(0, _MAGIC)
        else:
            self._set(0, 0)

    def close(self) -> None:
        self._memory.close()


def peek_current(path: str) -> Optional[int]:
    """The run in flight on the board file at `path`, read without writing (for the status page)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(_SLOT.size * _HEADER)
    except OSError:
        return None
    if len(header) < _SLOT.size * _HEADER or _SLOT.unpack_from(header, 0)[0] != _MAGIC:
        return None
    current = _SLOT.unpack_from(header, _SLOT.size * _CURRENT)[0]
    return current if current > 0 else None


def path_beside(lock_file: str) -> str:
    """The board of the ticks that take `lock_file`: beside it, per host, like the lock."""
    return lock_file + ".board"


def held_since(lock_file: str) -> Optional[float]:
    """When the tick now holding `lock_file` began (its board says so; the tick facts are written only
    when a tick ends), or None."""
    return peek_started(path_beside(lock_file))


def peek_started(path: str, capacity: int = CAPACITY) -> Optional[float]:
    """When the tick working with the board file at `path` began, read without writing; None when no
    tick has said so since this boot (an idle tick, which never touches the board, holds the lock for
    milliseconds only)."""
    offset = _SLOT.size * (_HEADER + 2 * capacity + 1)
    try:
        with open(path, "rb") as handle:
            header = handle.read(_SLOT.size * 3)
            handle.seek(offset)
            slot = handle.read(_TIME.size)
    except OSError:
        return None
    if len(header) < _SLOT.size * 3 or len(slot) < _TIME.size:
        return None
    boot = boot_id()  # a time a tick killed before it could clear it is not trusted after a reboot
    if boot is not None and (_SLOT.unpack_from(header, 0)[0] != _MAGIC or header[8:24] != boot):
        return None
    started = _TIME.unpack(slot)[0]
    return started if started > 0 else None
