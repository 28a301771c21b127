"""The gateway's event-loop lag over a benchmark cell: two scrapes of /metrics and their difference.

The gateway's histogram counts since start-up; the difference of two scrapes is what one cell did to the loop.
Percentiles come from bucket bounds, so they read "at most X ms" (the bucket's upper bound).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

_BUCKET = re.compile(r'^mindrouter_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)
_STALLS = re.compile(r'^mindrouter_event_loop_stalls_total\{cpu="(busy|off)"\} (\S+)$', re.M)
_TASKS = re.compile(r'^mindrouter_event_loop_tasks (\S+)$', re.M)
_SUM = re.compile(r'^mindrouter_event_loop_lag_seconds_sum (\S+)$', re.M)


@dataclass(frozen=True)
class LagScrape:
    buckets: tuple[tuple[float, float], ...]  # (upper bound s, cumulative count), +Inf last
    total_s: float
    stalls: float  # busy ones: the loop ran our code (or a collection) past the threshold
    off_cpu_stalls: float  # the loop thread was off the CPU: the machine's other load, or a blocking call
    tasks: float


@dataclass(frozen=True)
class LagDelta:
    ticks: int
    stalls: int  # busy
    off_cpu_stalls: int
    mean_ms: float
    p50_ms: float  # upper bound of the bucket holding the median
    p99_ms: float
    max_ms: float  # upper bound of the highest bucket that got a tick (inf: past the last bound)

    def summary(self) -> str:
        top = 'over 2.5 s' if self.max_ms == float('inf') else f'≤ {self.max_ms:g} ms'
        return (
            f'{self.ticks} ticks, lag mean {self.mean_ms:.2f} ms, p99 ≤ {self.p99_ms:g} ms, max {top}, '
            f'{self.stalls} busy stalls, {self.off_cpu_stalls} off CPU'
        )


def scrape(base_url: str) -> LagScrape | None:
    """None when the gateway exposes no lag figures (an older version, or LOOP_LAG_INTERVAL=0)."""
    return parse(httpx.get(f'{base_url}/metrics', timeout=10).text)


def parse(text: str) -> LagScrape | None:
    """The lag figures in a /metrics exposition."""
    buckets = tuple((float(bound), float(count)) for bound, count in _BUCKET.findall(text))
    total, stalls, tasks = _SUM.search(text), dict(_STALLS.findall(text)), _TASKS.search(text)
    if not buckets or total is None or len(stalls) != 2:
        return None
    return LagScrape(
        buckets,
        float(total.group(1)),
        float(stalls['busy']),
        float(stalls['off']),
        float(tasks.group(1)) if tasks else 0.0,
    )


def delta(before: LagScrape | None, after: LagScrape | None) -> LagDelta | None:
    if before is None or after is None:
        return None
    counts = [(bound, a - b) for (bound, a), (_, b) in zip(after.buckets, before.buckets, strict=True)]
    ticks = int(counts[-1][1])
    if ticks == 0:
        return LagDelta(0, 0, 0, 0.0, 0.0, 0.0, 0.0)

    def quantile(q: float) -> float:
        return next(bound for bound, cumulative in counts if cumulative >= q * ticks) * 1000

    previous, top = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative > previous:
            top = bound
        previous = cumulative
    return LagDelta(
        ticks=ticks,
        stalls=int(after.stalls - before.stalls),
        off_cpu_stalls=int(after.off_cpu_stalls - before.off_cpu_stalls),
        mean_ms=(after.total_s - before.total_s) / ticks * 1000,
        p50_ms=quantile(0.5),
        p99_ms=quantile(0.99),
        max_ms=top * 1000,
    )
