"""Prometheus metrics: what the gateway served (recorded once per request, with the audit record) and
what the cluster looks like now (read from the registry at scrape time, so it costs the hot path nothing).

One `GatewayMetrics` per application, on its own registry: several apps in one process (tests) never
collide. With several API worker processes each one exposes its own figures (scrape each, or sum).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.audit.writer import AuditWriter
from core.registry.view import RegistryView
from core.status.loop_lag import LoopLagMonitor
from core.telemetry.sidecar import NodeSnapshot

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self, registry_view: RegistryView, queue_depth: Callable[[], int],
                 gpu_snapshots: Callable[[], Mapping[int, NodeSnapshot]] | None = None,
                 loop_lag: LoopLagMonitor | None = None, audit: AuditWriter | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.served = ServedFigures()
        self.registry.register(_ServedCollector(self.served))
        self.registry.register(_ClusterCollector(registry_view, queue_depth))
        if gpu_snapshots is not None:
            self.registry.register(_GpuCollector(gpu_snapshots))
        if loop_lag is not None:
            self.registry.register(_LoopCollector(loop_lag))
        if audit is not None:
            self.registry.register(_AuditCollector(audit))
        # process_resident_memory_bytes, process_open_fds, CPU seconds: read from /proc at scrape time.
        ProcessCollector(registry=self.registry)

    def observe(self, *, endpoint: str, model: str, status: str, total_s: float, prompt_tokens: int,
                completion_tokens: int, overhead_s: float | None = None) -> None:
        served = self.served
        key = (endpoint, model, status)
        served.requests[key] = served.requests.get(key, 0) + 1
        latency = served.latency.get(endpoint)
        if latency is None:
            latency = served.latency[endpoint] = Buckets(LATENCY_BUCKETS)
        latency.observe(total_s)
        if prompt_tokens:
            served.tokens[(model, 'prompt')] = served.tokens.get((model, 'prompt'), 0) + prompt_tokens
        if completion_tokens:
            served.tokens[(model, 'completion')] = served.tokens.get((model, 'completion'), 0) + completion_tokens
        if overhead_s is not None:
            served.overhead.observe(overhead_s)

    def observe_speech(self, *, model: str, chars: int, seconds: float) -> None:
        """Speech in its own units, next to the request counted by `observe`."""
        served = self.served
        if chars:
            served.speech_chars[(model,)] = served.speech_chars.get((model,), 0) + chars
        if seconds:
            served.audio_seconds[(model,)] = served.audio_seconds.get((model,), 0.0) + seconds

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Buckets:
    """A histogram's counts: one list index and two additions per observation (prometheus_client's own
    `Histogram.labels(...).observe` takes ~5 µs, a lock and a label lookup, on every request)."""

    __slots__ = ('bounds', 'counts', 'total')

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: past every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # bucket `le` bound: value <= bound
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*map(floatToGoString, self.bounds), '+Inf'), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(slots=True)
class ServedFigures:
    """What the gateway served, counted in plain dictionaries on every request and turned into metric families
    only when /metrics is read. The event loop is the only writer and the scrape runs on it too: no lock."""

    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (endpoint, model, status)
    tokens: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, kind)
    latency: dict[str, Buckets] = field(default_factory=dict)  # by endpoint
    overhead: Buckets = field(default_factory=lambda: Buckets(OVERHEAD_BUCKETS))
    speech_chars: dict[tuple[str], int] = field(default_factory=dict)  # (model,)
    audio_seconds: dict[tuple[str], float] = field(default_factory=dict)  # (model,)


class _ServedCollector(Collector):
    def __init__(self, served: ServedFigures) -> None:
        self._served = served

    def collect(self) -> Iterator[Metric]:
        served = self._served
        yield _counter('mindrouter_requests', 'Inference requests by endpoint, model and outcome',
                       ['endpoint', 'model', 'status'], list(served.requests.items()))
        yield _counter('mindrouter_tokens', 'Tokens served, by model and kind (prompt or completion)',
                       ['model', 'kind'], list(served.tokens.items()))
        latency = HistogramMetricFamily('mindrouter_request_duration_seconds', 'Whole request time, by endpoint',
                                        labels=['endpoint'])
        for endpoint, buckets in list(served.latency.items()):
            latency.add_metric([endpoint], buckets.cumulative(), buckets.total)
        yield latency
        overhead = HistogramMetricFamily('mindrouter_gateway_overhead_seconds',
                                         'Gateway time excluding queue and backend (what X-MindRouter-Overhead-Ms '
                                         'says)')
        overhead.add_metric([], served.overhead.cumulative(), served.overhead.total)
        yield overhead
        yield _counter('mindrouter_speech_characters', 'Characters of text read aloud (text to speech), by model',
                       ['model'], list(served.speech_chars.items()))
        yield _counter('mindrouter_audio_seconds', 'Seconds of audio transcribed or translated (speech to text), '
                       'by model', ['model'], list(served.audio_seconds.items()))


def _counter(name: str, text: str, labels: list[str], values: Iterable[tuple[Sequence[str], float]]) -> Metric:
    family = CounterMetricFamily(name, text, labels=labels)
    for label_values, value in values:
        family.add_metric(list(label_values), value)
    return family


class _ClusterCollector(Collector):
    def __init__(self, view: RegistryView, queue_depth: Callable[[], int]) -> None:
        self._view = view
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily('mindrouter_backend_in_flight', 'Requests on each backend now (this process)',
                                      labels=['backend'])
        fleet = GaugeMetricFamily('mindrouter_backend_in_flight_fleet',
                                  'Requests on each backend now, all workers together (as last known)',
                                  labels=['backend'])
        capacity = GaugeMetricFamily('mindrouter_backend_max_concurrent', 'Slots of each backend', labels=['backend'])
        healthy = GaugeMetricFamily('mindrouter_backend_healthy', '1 when the backend takes requests',
                                    labels=['backend', 'engine'])
        models = GaugeMetricFamily('mindrouter_backend_models', 'Models each backend serves', labels=['backend'])
        for backend in self._view.backends:
            in_flight.add_metric([backend.name], backend.in_flight)
            fleet.add_metric([backend.name], backend.total_in_flight)
            capacity.add_metric([backend.name], backend.max_concurrent)
            healthy.add_metric([backend.name, backend.engine], 1 if backend.healthy else 0)
            models.add_metric([backend.name], len(backend.models))
        yield from (in_flight, fleet, capacity, healthy, models)
        yield GaugeMetricFamily('mindrouter_queue_depth', 'Requests waiting for a free backend slot',
                                value=self._queue_depth())


class _LoopCollector(Collector):
    """The event loop's lag (bench/ and bench/soak.py read these) and its task count, read at scrape time."""

    def __init__(self, monitor: LoopLagMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        figures = self._monitor.figures
        lag = HistogramMetricFamily('mindrouter_event_loop_lag_seconds',
                                    'How late the event loop ran a timer that was due (sampled every '
                                    f'{self._monitor.interval:g} s)')
        lag.add_metric([], figures.cumulative(), figures.total)
        yield lag
        threshold_ms = self._monitor.stall_threshold * 1000
        stalls = CounterMetricFamily('mindrouter_event_loop_stalls',
                                     f'Ticks the loop ran more than {threshold_ms:g} ms late; cpu=busy: its thread was '
                                     'running (our code, a collection), off: it was not (the core was taken, or '
                                     'it sat in a blocking call)', labels=['cpu'])
        stalls.add_metric(['busy'], figures.stalls - figures.off_cpu_stalls)
        stalls.add_metric(['off'], figures.off_cpu_stalls)
        yield stalls
        yield GaugeMetricFamily('mindrouter_event_loop_lag_max_seconds', 'The largest lag seen since start-up',
                                value=figures.max_lag)
        yield GaugeMetricFamily('mindrouter_event_loop_tasks', 'Asyncio tasks alive in this process',
                                value=self._monitor.tasks())


class _AuditCollector(Collector):
    """The audit trail's writer: what waits in memory, what it wrote and what it lost (a full buffer, a row the
    database refused). A pending count that only grows means the database cannot keep up."""

    def __init__(self, writer: AuditWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily('mindrouter_audit_pending', 'Audit records waiting in memory to be written',
                                value=self._writer.pending)
        yield CounterMetricFamily('mindrouter_audit_written', 'Audit records written since start-up',
                                  value=self._writer.written)
        yield CounterMetricFamily('mindrouter_audit_dropped', 'Audit records lost since start-up (buffer full '
                                  'during an outage, or a row the database refused)', value=self._writer.dropped)


# sidecar field -> (metric name, help)
_GPU_GAUGES = (
    ('utilization_gpu', 'mindrouter_gpu_utilization_percent', 'GPU utilisation'),
    ('utilization_memory', 'mindrouter_gpu_memory_utilization_percent', 'GPU memory controller utilisation'),
    ('memory_used_gb', 'mindrouter_gpu_memory_used_gib', 'GPU memory in use'),
    ('memory_total_gb', 'mindrouter_gpu_memory_total_gib', 'GPU memory'),
    ('temperature_gpu', 'mindrouter_gpu_temperature_celsius', 'GPU temperature'),
    ('power_draw_watts', 'mindrouter_gpu_power_watts', 'GPU power draw'),
)


class _GpuCollector(Collector):
    """The latest sidecar reading of every GPU (labels: node id, its hostname, GPU index)."""

    def __init__(self, snapshots: Callable[[], Mapping[int, NodeSnapshot]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        families = {field: GaugeMetricFamily(name, text, labels=['node_id', 'hostname', 'gpu'])
                    for field, name, text in _GPU_GAUGES}
        for node_id, snapshot in self._snapshots().items():
            for gpu in snapshot.gpus:
                labels = [str(node_id), snapshot.hostname or '', str(gpu.get('index'))]
                for reading, family in families.items():
                    value = gpu.get(reading)
                    if isinstance(value, int | float):
                        family.add_metric(labels, float(value))
        yield from families.values()
