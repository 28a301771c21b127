"""SIGTERM with a grace period for the streams running.

uvicorn, on SIGTERM (or Ctrl-C), stops accepting connections, closes idle keep-alive ones and waits for the
responses in progress; after `timeout_graceful_shutdown` it cancels them, which cuts a stream mid-answer with no
word to the client. A gateway's streams run for minutes, so: on the signal, every stream running gets
SHUTDOWN_GRACE_SECONDS to finish; after that, each one still running is ended by its relay with the dialect's
error event (OpenAI SSE error, Anthropic `event: error`, Ollama `{"error": ...}`) and recorded in the audit trail
as failed (503). uvicorn's own timeout is set a little beyond the grace (app/cli.py) for anything else (a request
still waiting in the queue), and the lifespan then flushes the audit buffer.

uvicorn owns the signal handlers (it installs them in every worker process before the app starts); `listen`
chains onto them, so both run.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger('mindrouter')

SHUTDOWN_MESSAGE = 'the gateway is shutting down; send the request again'
SHUTDOWN_STATUS = 503
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StreamWatch:
    """One relay's stake in a shutdown. `reading`: the relay waits on the engine now (a cancel lands in the relay,
    which can still answer); otherwise it is sending, and sees `cut` before its next read."""

    __slots__ = ('cut', 'reading', 'task')

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.reading = False
        self.cut = False

    def end(self) -> None:
        self.cut = True
        if self.reading and self.task is not None:
            self.task.cancel()


class GracefulShutdown:
    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.began = False  # a signal came: no new work should start
        self.expired = False  # the grace is over: streams still running are ended
        self._streams: set[StreamWatch] = set()
        self._previous: dict[int, Any] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self) -> StreamWatch:
        """Called by a relay as it starts; `forget` it when it ends."""
        watch = StreamWatch(asyncio.current_task())
        watch.cut = self.expired  # started after the grace: end at once
        self._streams.add(watch)
        return watch

    def forget(self, watch: StreamWatch) -> None:
        self._streams.discard(watch)

    @property
    def running(self) -> int:
        return len(self._streams)

    def begin(self) -> None:
        """The shutdown starts: streams get the grace period (idempotent; a second signal changes nothing)."""
        if self.began:
            return
        self.began = True
        if self._streams:
            log.info('shutting down: %d stream(s) running get %g s to finish', len(self._streams), self.grace)
        self._timer = asyncio.get_running_loop().call_later(self.grace, self.expire)

    def expire(self) -> None:
        """End every stream still running with its dialect's error event."""
        self.expired = True
        if self._streams:
            log.warning('shutting down: ending %d stream(s) still running after %g s', len(self._streams),
                        self.grace)
        for watch in list(self._streams):
            watch.end()

    def listen(self) -> None:
        """Chain onto the server's SIGTERM and SIGINT handlers (main thread only, and only where a server installed
        one: a bare test or a shell keeps Python's default behaviour)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous) or previous is signal.default_int_handler:
                continue

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.begin)
                previous(signum, frame)

            self._previous[sig] = previous
            signal.signal(sig, handler)

    def close(self) -> None:
        """Give the server its own handlers back, and drop the timer."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self._timer is not None:
            self._timer.cancel()
