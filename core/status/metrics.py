"""Prometheus metrics: what the gateway served (recorded once per request, with the audit record) and
what the cluster looks like now (read from the registry at scrape time, so it costs the hot path nothing).

One `GatewayMetrics` per application, on its own registry: several apps in one process (tests) never
collide. With several API worker processes each one exposes its own figures (scrape each, or sum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core.audit.writer import AuditWriter
from core.registry.view import RegistryView
from core.status.loop_lag import LoopLagMonitor
from core.telemetry.sidecar import NodeSnapshot

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self, registry_view: RegistryView, queue_depth: Callable[[], int],
                 gpu_snapshots: Callable[[], Mapping[int, NodeSnapshot]] | None = None,
                 loop_lag: LoopLagMonitor | None = None, audit: AuditWriter | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter('mindrouter_requests', 'Inference requests by endpoint, model and outcome',
                                ['endpoint', 'model', 'status'], registry=self.registry)
        self.tokens = Counter('mindrouter_tokens', 'Tokens served, by model and kind (prompt or completion)',
                              ['model', 'kind'], registry=self.registry)
        self.latency = Histogram('mindrouter_request_duration_seconds', 'Whole request time, by endpoint',
                                 ['endpoint'], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.overhead = Histogram('mindrouter_gateway_overhead_seconds',
                                  'Gateway time excluding queue and backend (what X-MindRouter-Overhead-Ms says)',
                                  buckets=_OVERHEAD_BUCKETS, registry=self.registry)
        self.speech_chars = Counter('mindrouter_speech_characters', 'Characters of text read aloud (text to speech), '
                                    'by model', ['model'], registry=self.registry)
        self.audio_seconds = Counter('mindrouter_audio_seconds', 'Seconds of audio transcribed or translated (speech '
                                     'to text), by model', ['model'], registry=self.registry)
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
        self.requests.labels(endpoint, model, status).inc()
        self.latency.labels(endpoint).observe(total_s)
        if prompt_tokens:
            self.tokens.labels(model, 'prompt').inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(model, 'completion').inc(completion_tokens)
        if overhead_s is not None:
            self.overhead.observe(overhead_s)

    def observe_speech(self, *, model: str, chars: int, seconds: float) -> None:
        """Speech in its own units, next to the request counted by `observe`."""
        if chars:
            self.speech_chars.labels(model).inc(chars)
        if seconds:
            self.audio_seconds.labels(model).inc(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


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
                for field, family in families.items():
                    value = gpu.get(field)
                    if isinstance(value, int | float):
                        family.add_metric(labels, float(value))
        yield from families.values()
