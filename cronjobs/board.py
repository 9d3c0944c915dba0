"""What the worker is doing right now, in memory it shares with the supervisor.

A kill at the hard limit must not cost the runs that were not running: the supervisor needs to know
which run was in flight and which successes were not committed yet (group commit). The worker keeps
that here, in an anonymous shared mapping created before the fork: plain memory writes on the hot
path, no system call, and still readable after the worker died.
"""

from __future__ import annotations

import mmap
import struct
from typing import Optional

_SLOT = struct.Struct("q")


class Board:
    """Slot 0: the run in flight (0: none); slot 1: how many uncommitted successes; then their ids."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._memory = mmap.mmap(-1, _SLOT.size * (2 + capacity))

    def set_current(self, run_id: int) -> None:
        _SLOT.pack_into(self._memory, 0, run_id)

    def add_done(self, run_id: int) -> bool:
        """Record an uncommitted success; False when full (the caller must commit first)."""
        count = _SLOT.unpack_from(self._memory, _SLOT.size)[0]
        if count >= self.capacity:
            return False
        _SLOT.pack_into(self._memory, _SLOT.size * (2 + count), run_id)
        _SLOT.pack_into(self._memory, _SLOT.size, count + 1)
        return True

    def clear_done(self) -> None:
        _SLOT.pack_into(self._memory, _SLOT.size, 0)

    def read(self) -> tuple[Optional[int], list[int]]:
        """(run in flight or None, ids of successes not committed yet)."""
        current = _SLOT.unpack_from(self._memory, 0)[0]
        count = _SLOT.unpack_from(self._memory, _SLOT.size)[0]
        done = [_SLOT.unpack_from(self._memory, _SLOT.size * (2 + i))[0] for i in range(count)]
        return (current or None), done
