"""OpenTelemetry for the gateway, read from the one stream lifecycle (session.py).

Off by default (`GATEWAY_TELEMETRY=false`): the session then holds no `Telemetry`, and a stream
pays one `is None` check when it closes. On, each stream is recorded once, when it closes, from
the times the session kept, so the per-token path never touches OpenTelemetry:

- spans: one `chat {model}` span per stream (the GenAI span name,
  `{gen_ai.operation.name} {gen_ai.request.model}`), with four children in the order a request
  flows: `edge checks`, `admission`, `model stream`, `close`;
- the GenAI client metrics of the OpenTelemetry GenAI semantic conventions:
  `gen_ai.client.operation.duration`, `gen_ai.client.operation.time_to_first_chunk`,
  `gen_ai.client.operation.time_per_output_chunk` (here one value per stream, the mean gap
  between chunks after the first, not one per chunk), and `gen_ai.client.token.usage` with
  `gen_ai.token.type` input and output: the billed tokens, the model's own count when it
  reported one.

Only the OpenTelemetry API is used here: where the data goes (an OTLP collector, AWS X-Ray
through the ADOT collector) is the SDK's configuration, set up by whoever runs the gateway.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

if TYPE_CHECKING:
    from .session import StreamSession

SCOPE = "reference_impl.gateway"
# The bucket boundaries the conventions ask for: tokens, and seconds.
TOKEN_BUCKETS = [4**n for n in range(14)]
SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
CHUNK_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5]


class Telemetry:
    """Spans and GenAI metrics for every stream; providers default to the global ones."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to the first chunk of a streamed answer",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.per_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            unit="s",
            description="Time per output chunk after the first (a stream's mean)",
            explicit_bucket_boundaries_advisory=CHUNK_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Input and output tokens billed",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )

    def record(self, session: StreamSession, ending: str, closing_at: float) -> None:
        """Record one closed stream: its spans, then its metrics."""
        progress, model = session.progress, session.gateway.model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_of(model.name),
            "gen_ai.request.model": model.name,
        }
        if progress.error is not None:
            attributes["error.type"] = progress.error.code
        now = time.perf_counter()
        to_ns = wall_clock_ns(now)
        span_attributes = {
            **attributes,
            "gen_ai.request.max_tokens": session.request.max_tokens,
            "gen_ai.response.finish_reasons": [ending],
            "gen_ai.usage.input_tokens": progress.billed_input_tokens,
            "gen_ai.usage.output_tokens": progress.billed_output_tokens,
        }
        root = self.tracer.start_span(
            f"chat {model.name}",
            kind=trace.SpanKind.CLIENT,
            start_time=to_ns(session.started),
            attributes=span_attributes,
        )
        if progress.error is not None:
            root.set_status(trace.Status(trace.StatusCode.ERROR, progress.error.code))
        parent = trace.set_span_in_context(root)
        steps = (
            ("edge checks", session.started, session.admitting_at),
            ("admission", session.admitting_at, session.admitted_at),
            ("model stream", session.admitted_at, closing_at),
            ("close", closing_at, now),
        )
        for name, start, end in steps:
            child = self.tracer.start_span(name, context=parent, start_time=to_ns(start))
            child.end(end_time=to_ns(end))
        root.end(end_time=to_ns(now))

        self.duration.record(now - session.started, attributes)
        if progress.first_token_at is not None:
            self.first_chunk.record(progress.first_token_at - session.started, attributes)
            if progress.delivered > 1:
                gaps = progress.last_chunk_at - progress.first_chunk_at
                self.per_chunk.record(gaps / (progress.delivered - 1), attributes)
        for kind, tokens in (
            ("input", progress.billed_input_tokens),
            ("output", progress.billed_output_tokens),
        ):
            self.token_usage.record(tokens, {**attributes, "gen_ai.token.type": kind})


def provider_of(model_name: str) -> str:
    """The conventions' gen_ai.provider.name: `aws.bedrock` for Bedrock, else our model's name."""
    return "aws.bedrock" if model_name.startswith("bedrock:") else model_name


def wall_clock_ns(now: float):
    """A converter from time.perf_counter() readings to the epoch nanoseconds spans want."""
    offset = time.time_ns() - int(now * 1e9)
    return lambda reading: int(reading * 1e9) + offset
