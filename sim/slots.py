"""Admission: at most `max_concurrency` requests generate at once, up to `queue_limit` more wait in FIFO order.

Both limits are read from the live config on every call, so a test can raise or lower them mid-run (call
`wake()` after raising the limit so that waiters move on).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from sim.config import SimConfig
from sim.stats import SimStats


class QueueFull(Exception):
    """Every slot is busy and the queue is at `queue_limit`."""


class Slots:
    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        self.config = config
        self.stats = stats
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _has_room(self) -> bool:
        limit = self.config.max_concurrency or 0
        return limit <= 0 or self.stats.running < limit

    def _grant(self) -> None:
        self.stats.running += 1
        self.stats.peak_running = max(self.stats.peak_running, self.stats.running)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued (no await: the fast path)."""
        if not self._waiters and self._has_room():
            self._grant()
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        limit = self.config.queue_limit
        if limit is not None and len(self._waiters) >= limit:
            raise QueueFull
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.stats.waiting = len(self._waiters)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled before it could run: pass the slot on
            else:
                self._discard(fut)
            raise

    def _discard(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)
        self.stats.waiting = len(self._waiters)

    def release(self) -> None:
        self.stats.running -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to waiters, oldest first."""
        while self._waiters and self._has_room():
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self._grant()
            fut.set_result(None)
        self.stats.waiting = len(self._waiters)
