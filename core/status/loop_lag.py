"""Event-loop lag: how late the loop runs a callback that was due, which is how late it answers everything else.

A plain timer callback re-arms itself every `interval` seconds and notes how far past its due time it ran.
No task, no future, no lock: a tick costs a few microseconds of Python on a loop that is awake anyway, and one
timer wake-up when it is idle. A stall of D seconds is seen by the tick that fell due inside it, as a lag
between D - interval and D; stalls shorter than the interval are seen with probability D / interval, so the
histogram is a sample of what callbacks waited and the stall counter a lower bound (exact when the interval is
at most the stall threshold, as the benchmark sets it).

With `trace` on (a diagnostic, not for production), a watchdog thread also looks at the loop thread while a tick
is overdue and logs where it was (`sys._current_frames`), and garbage collections longer than the threshold are
logged with their generation. Sampling another thread's stack needs the GIL, which the loop thread yields every
`sys.getswitchinterval()` (5 ms) while it runs Python code, but not during a collection: the watchdog attributes
those to the collector by their timestamps instead.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import logging
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger('mindrouter.loop')

# Upper bounds in seconds; a timer's normal lateness (the loop's millisecond clock) sits in the first two.
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(slots=True)
class LagFigures:
    """What the monitor saw since it started; read at scrape time (prometheus-style cumulative buckets)."""

    buckets: Sequence[float]
    counts: list[int]  # per bucket, not cumulative; one more at the end for lags past the last bound
    total: float = 0.0  # sum of lags, seconds
    ticks: int = 0
    stalls: int = 0  # ticks later than the stall threshold: busy_stalls + off_cpu_stalls
    off_cpu_stalls: int = 0  # of which the loop thread ran less than half the time (see LoopLagMonitor)
    max_lag: float = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append((repr(bound), running))
        out.append(('+Inf', running + self.counts[-1]))
        return out


class LoopLagMonitor:
    """Ticks on the running loop. A stall is told apart by the loop thread's CPU time since the previous tick:
    at least half the lag spent running means the loop was busy (our code, or a garbage collection); less means
    it was off the CPU: another process had the core, or the thread sat in a blocking system call."""

    def __init__(
        self,
        *,
        interval: float = 0.025,
        stall_threshold: float = 0.005,
        trace: bool = False,
        buckets: Sequence[float] = LAG_BUCKETS,
    ) -> None:
        self.interval = interval
        self.stall_threshold = stall_threshold
        self.figures = LagFigures(buckets=tuple(buckets), counts=[0] * (len(buckets) + 1))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # perf_counter time the next tick is due
        self._cpu = 0.0  # the loop thread's CPU time at the last tick
        self._tracer = _StallTracer(self) if trace else None

    @property
    def due(self) -> float:
        """`time.perf_counter()` time the next tick is due."""
        return self._due

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._cpu = time.thread_time()
        self._arm(time.perf_counter())
        if self._tracer is not None:
            self._tracer.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._tracer is not None:
            self._tracer.stop()

    def tasks(self) -> int:
        """Asyncio tasks alive on the monitored loop (a leak shows as a count that only grows)."""
        return len(asyncio.all_tasks(self._loop)) if self._loop is not None and not self._loop.is_closed() else 0

    def _arm(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval
        self._handle = self._loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        lag = max(0.0, now - self._due)
        figures = self.figures
        figures.counts[bisect.bisect_left(figures.buckets, lag)] += 1
        figures.total += lag
        figures.ticks += 1
        if lag > figures.max_lag:
            figures.max_lag = lag
        if lag > self.stall_threshold:
            figures.stalls += 1
            busy = cpu - self._cpu
            if busy < lag / 2:
                figures.off_cpu_stalls += 1
            if self._tracer is not None:
                self._tracer.report(self._due, lag, busy)
        self._cpu = cpu
        self._arm(now)


@dataclass(slots=True)
class _Collection:
    generation: int
    started: float  # perf_counter
    seconds: float


_Frames = tuple[tuple[str, int, str], ...]  # (file, line, function), innermost first


class _StallTracer:
    """The diagnostic watchdog: a daemon thread that samples the loop thread's stack while a tick is overdue; the
    late tick itself reports what was sampled (so the stall's length is the tick's own measure)."""

    _PERIOD = 0.001  # seconds between the watchdog's looks
    _DEPTH = 16  # frames kept per sample

    def __init__(self, monitor: LoopLagMonitor) -> None:
        self._monitor = monitor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0
        self._lock = threading.Lock()
        self._samples: Counter[_Frames] = Counter()  # for the tick due at self._sampled_due
        self._sampled_due = 0.0
        self._gc_started = 0.0
        self._collections: deque[_Collection] = deque(maxlen=32)  # recent long ones

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name='loop-stall-tracer', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == 'start':
            self._gc_started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._gc_started
        if seconds > self._monitor.stall_threshold:
            self._collections.append(_Collection(info['generation'], self._gc_started, seconds))

    def _watch(self) -> None:
        threshold = self._monitor.stall_threshold
        while not self._stop.wait(self._PERIOD):
            due = self._monitor.due
            if time.perf_counter() - due <= threshold:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            frames: list[tuple[str, int, str]] = []
            while frame is not None and len(frames) < self._DEPTH:  # cheap: formatted only when reported
                frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
                frame = frame.f_back
            with self._lock:
                if self._sampled_due != due:
                    self._samples, self._sampled_due = Counter(), due
                self._samples[tuple(frames)] += 1

    def report(self, due: float, lag: float, busy: float) -> None:
        """Called by the late tick, on the loop thread."""
        with self._lock:
            samples = self._samples if self._sampled_due == due else Counter()
            self._samples = Counter()
        ended = due + lag
        notes = [
            f'gc generation {c.generation} took {c.seconds * 1000:.1f} ms'
            for c in self._collections
            if c.started + c.seconds >= due - self._monitor.interval and c.started <= ended
        ]
        notes.append(f'loop thread on CPU {busy * 1000:.1f} ms since the previous tick')
        if not samples:
            log.warning('event loop stalled %.1f ms (%s); no stack sample', lag * 1000, '; '.join(notes))
            return
        frames, hits = samples.most_common(1)[0]
        stack = ''.join(
            traceback.format_list([traceback.FrameSummary(file, line, name) for file, line, name in reversed(frames)])
        )
        log.warning(
            'event loop stalled %.1f ms (%s); %d of %d samples in:\n%s',
            lag * 1000,
            '; '.join(notes),
            hits,
            samples.total(),
            stack,
        )
