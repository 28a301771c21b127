"""What the gateway served, as /metrics shows it: counted in plain dictionaries on the request path, exposed in
Prometheus' text format (parsed here by prometheus_client's own parser, as a scraper would)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core.registry.view import RegistryView
from core.status.metrics import LATENCY_BUCKETS, GatewayMetrics

CHAT = '/v1/chat/completions'


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _observe(metrics: GatewayMetrics, total_s: float, *, status: str = 'completed', model: str = 'm',
             overhead_s: float | None = 0.0004) -> None:
    metrics.observe(endpoint=CHAT, model=model, status=status, total_s=total_s, prompt_tokens=12,
                    completion_tokens=3, overhead_s=overhead_s)


def test_requests_tokens_and_outcomes_are_counted_by_their_labels() -> None:
    metrics = GatewayMetrics(RegistryView(), lambda: 0)
    _observe(metrics, 0.2)
    _observe(metrics, 0.3)
    _observe(metrics, 0.1, status='failed', model='other')
    metrics.observe_speech(model='tts', chars=120, seconds=0)
    metrics.observe_speech(model='whisper', chars=0, seconds=2.5)
    metrics.observe_speech(model='whisper', chars=0, seconds=1.0)

    samples = _samples(metrics)
    assert samples[('mindrouter_requests_total', (('endpoint', CHAT), ('model', 'm'), ('status', 'completed')))] == 2
    assert samples[('mindrouter_requests_total', (('endpoint', CHAT), ('model', 'other'), ('status', 'failed')))] == 1
    assert samples[('mindrouter_tokens_total', (('kind', 'prompt'), ('model', 'm')))] == 24
    assert samples[('mindrouter_tokens_total', (('kind', 'completion'), ('model', 'other')))] == 3
    assert samples[('mindrouter_speech_characters_total', (('model', 'tts'),))] == 120
    assert samples[('mindrouter_audio_seconds_total', (('model', 'whisper'),))] == 3.5
    assert ('mindrouter_speech_characters_total', (('model', 'whisper'),)) not in samples  # no zero-unit series


def test_durations_fall_in_cumulative_buckets_with_a_value_on_a_bound_counted_in_that_bound() -> None:
    metrics = GatewayMetrics(RegistryView(), lambda: 0)
    for seconds in (0.004, 0.005, 0.3, 301.0):  # below the first bound, on it, in the middle, past the last one
        _observe(metrics, seconds, overhead_s=None)

    samples = _samples(metrics)

    def bucket(le: str) -> float:
        return samples[('mindrouter_request_duration_seconds_bucket', (('endpoint', CHAT), ('le', le)))]

    assert [bucket(le) for le in ('0.005', '0.01', '0.25', '0.5', '300.0', '+Inf')] == [2, 2, 2, 3, 3, 4]
    assert len([key for key in samples if key[0] == 'mindrouter_request_duration_seconds_bucket']) == \
        len(LATENCY_BUCKETS) + 1
    assert samples[('mindrouter_request_duration_seconds_count', (('endpoint', CHAT),))] == 4
    assert abs(samples[('mindrouter_request_duration_seconds_sum', (('endpoint', CHAT),))] - 301.309) < 1e-9
    assert samples[('mindrouter_gateway_overhead_seconds_count', ())] == 0  # only whole answers say their overhead


def test_the_overhead_histogram_counts_what_the_timing_header_said() -> None:
    metrics = GatewayMetrics(RegistryView(), lambda: 0)
    _observe(metrics, 0.2, overhead_s=0.0004)
    _observe(metrics, 0.2, overhead_s=0.02)

    samples = _samples(metrics)
    assert samples[('mindrouter_gateway_overhead_seconds_bucket', (('le', '0.0005'),))] == 1
    assert samples[('mindrouter_gateway_overhead_seconds_bucket', (('le', '+Inf'),))] == 2
    assert abs(samples[('mindrouter_gateway_overhead_seconds_sum', ())] - 0.0204) < 1e-12
