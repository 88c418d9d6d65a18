"""OpenTelemetry from the one stream lifecycle: a span tree and the GenAI client metrics per
stream, read back with the SDK's in-memory exporter and reader. Off unless asked for."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import QUESTION, TEST_SETTINGS, RunningGateway

STEPS = ["edge checks", "admission", "model stream", "close"]


@pytest.fixture
def traced(impl):
    """A gateway whose telemetry goes to an in-memory span exporter and metric reader."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = impl.telemetry.Telemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    settings = impl.settings.Settings(**TEST_SETTINGS)
    app = impl.app.create_app(settings, telemetry=telemetry)
    server = impl.background.BackgroundServer(app, name="telemetry").start()
    gateway = RunningGateway(server, app, settings)
    yield gateway, spans, reader
    for client in gateway.clients:
        client.close()
    server.stop()


def finished_spans(spans, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(spans.get_finished_spans()) < count:
        assert time.monotonic() < deadline, "the stream's spans never arrived"
        time.sleep(0.01)
    return spans.get_finished_spans()


def points(reader):
    """metric name -> the data points of every recording so far."""
    found = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_a_stream_is_one_span_with_its_steps_in_the_order_a_request_flows(traced):
    gateway, spans, _ = traced
    end = gateway.client().stream(QUESTION).data(-1)
    recorded = finished_spans(spans, 1 + len(STEPS))
    [root] = [span for span in recorded if span.parent is None]
    assert root.name == "chat fake-docqa"
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.usage.input_tokens"] == end["usage"]["input_tokens"]
    assert root.attributes["gen_ai.usage.output_tokens"] >= end["usage"]["output_tokens"]
    assert list(root.attributes["gen_ai.response.finish_reasons"]) == [end["stop_reason"]]
    steps = sorted(
        (span for span in recorded if span.parent is not None), key=lambda s: s.start_time
    )
    assert [span.name for span in steps] == STEPS
    assert all(span.parent.span_id == root.context.span_id for span in steps)
    assert root.start_time <= steps[0].start_time and steps[-1].end_time <= root.end_time


def test_the_genai_client_metrics_are_recorded_per_stream(traced):
    gateway, spans, reader = traced
    end = gateway.client().stream(QUESTION).data(-1)
    finished_spans(spans, 1 + len(STEPS))  # recorded together with the metrics
    found = points(reader)
    for name in (
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
    ):
        [point] = found[name]
        assert point.count == 1 and point.sum > 0
    [first] = found["gen_ai.client.operation.time_to_first_chunk"]
    assert first.sum * 1000 == pytest.approx(end["ttft_ms"], abs=1.0)
    usage = {p.attributes["gen_ai.token.type"]: p.sum for p in found["gen_ai.client.token.usage"]}
    assert usage["input"] == end["usage"]["input_tokens"]
    assert usage["output"] >= end["usage"]["output_tokens"]


def test_a_refused_stream_is_a_span_with_its_error(traced, impl):
    gateway, spans, _ = traced
    gateway.app.state.gateway.model.behavior = "throttled"
    assert gateway.client().stream(QUESTION).response.status_code == 429
    [root] = [span for span in finished_spans(spans, 1 + len(STEPS)) if span.parent is None]
    assert root.attributes["error.type"] == "rate_limited"
    assert not root.status.is_ok


def test_telemetry_is_off_unless_asked_for(impl, start_gateway):
    assert impl.settings.Settings().telemetry is False
    assert start_gateway().app.state.gateway.telemetry is None
