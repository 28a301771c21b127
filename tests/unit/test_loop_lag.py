"""The event-loop lag monitor: a blocked loop shows as lag and as a stall; the tracer names what blocked it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from core.status.loop_lag import LoopLagMonitor


def _block(seconds: float) -> None:
    time.sleep(seconds)  # what a blocking system call (a synchronous database call, say) does to the loop


def _compute(seconds: float) -> None:
    ends = time.thread_time() + seconds  # CPU time: a long computation (or a full garbage collection)
    while time.thread_time() < ends:
        pass


async def _ticks(monitor: LoopLagMonitor, n: int) -> None:
    target = monitor.figures.ticks + n
    for _ in range(2000):  # seconds on a loaded machine
        if monitor.figures.ticks >= target:
            return
        await asyncio.sleep(monitor.interval)
    raise AssertionError('the monitor stopped ticking')


async def test_an_idle_loop_ticks_without_stalls() -> None:
    monitor = LoopLagMonitor(interval=0.002, stall_threshold=5.0)  # above anything a loaded machine adds
    monitor.start()
    try:
        await _ticks(monitor, 20)
    finally:
        monitor.stop()
    figures = monitor.figures
    assert figures.stalls == 0
    assert sum(figures.counts) == figures.ticks >= 20
    assert figures.cumulative()[-1] == ('+Inf', figures.ticks)


async def test_a_blocked_loop_is_a_stall_of_about_its_length() -> None:
    monitor = LoopLagMonitor(interval=0.002, stall_threshold=0.02)
    monitor.start()
    try:
        await _ticks(monitor, 2)
        _block(0.1)
        await _ticks(monitor, 2)
    finally:
        monitor.stop()
    assert monitor.figures.stalls >= 1
    assert 0.09 <= monitor.figures.max_lag < 5  # the tick due inside the block ran at its end
    lags = dict(monitor.figures.cumulative())
    assert lags['0.05'] < lags['+Inf']  # the histogram has it past 50 ms


async def test_a_stall_is_busy_or_off_cpu_by_the_loop_threads_cpu_time() -> None:
    monitor = LoopLagMonitor(interval=0.002, stall_threshold=0.02)
    monitor.start()
    try:
        await _ticks(monitor, 2)
        started = time.perf_counter()
        _compute(0.06)
        preempted = time.perf_counter() - started > 0.11  # a loaded machine took the core away: off CPU, rightly
        await _ticks(monitor, 2)
        figures = monitor.figures  # (a loaded machine may add off-CPU stalls of its own: counts are lower bounds)
        assert figures.stalls - figures.off_cpu_stalls >= 1 or preempted
        off_before = figures.off_cpu_stalls
        _block(0.06)
        await _ticks(monitor, 2)
        assert figures.off_cpu_stalls >= off_before + 1
    finally:
        monitor.stop()


async def test_tasks_counts_the_loops_live_tasks() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    try:
        before = monitor.tasks()
        waiters = [asyncio.create_task(asyncio.sleep(10)) for _ in range(5)]
        assert monitor.tasks() == before + 5
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert monitor.tasks() == before
    finally:
        monitor.stop()


async def test_the_tracer_logs_where_the_loop_was_blocked(caplog: pytest.LogCaptureFixture) -> None:
    monitor = LoopLagMonitor(interval=0.002, stall_threshold=0.02, trace=True)
    monitor.start()
    try:
        with caplog.at_level(logging.WARNING, logger='mindrouter.loop'):
            await _ticks(monitor, 2)
            _block(0.15)
            await _ticks(monitor, 2)  # the late tick reports what the watchdog sampled
    finally:
        monitor.stop()
    report = '\n'.join(record.getMessage() for record in caplog.records)
    assert 'event loop stalled' in report
    assert '_block' in report  # the stack of the blocking call
