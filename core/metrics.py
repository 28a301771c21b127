"""Prometheus metrics: what the gateway served (recorded once per request, with the audit record) and
what the cluster looks like now (read from the registry at scrape time, so it costs the hot path nothing).

One `GatewayMetrics` per application, on its own registry: several apps in one process (tests) never
collide. With several API worker processes each one exposes its own figures (scrape each, or sum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.registry.view import RegistryView

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self, registry_view: RegistryView, queue_depth: Callable[[], int]) -> None:
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
        self.registry.register(_ClusterCollector(registry_view, queue_depth))

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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ClusterCollector(Collector):
    def __init__(self, view: RegistryView, queue_depth: Callable[[], int]) -> None:
        self._view = view
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily('mindrouter_backend_in_flight', 'Requests on each backend now (this process)',
                                      labels=['backend'])
        capacity = GaugeMetricFamily('mindrouter_backend_max_concurrent', 'Slots of each backend', labels=['backend'])
        healthy = GaugeMetricFamily('mindrouter_backend_healthy', '1 when the backend takes requests',
                                    labels=['backend', 'engine'])
        models = GaugeMetricFamily('mindrouter_backend_models', 'Models each backend serves', labels=['backend'])
        for backend in self._view.backends:
            in_flight.add_metric([backend.name], backend.in_flight)
            capacity.add_metric([backend.name], backend.max_concurrent)
            healthy.add_metric([backend.name, backend.engine], 1 if backend.healthy else 0)
            models.add_metric([backend.name], len(backend.models))
        yield from (in_flight, capacity, healthy, models)
        yield GaugeMetricFamily('mindrouter_queue_depth', 'Requests waiting for a free backend slot',
                                value=self._queue_depth())
