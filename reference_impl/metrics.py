"""Prometheus metrics: the numbers that prove the limits work.

`gateway_model_tokens_generated_total` is the cost meter: what the model produced, delivered or
not. Compare it with `gateway_tokens_delivered_total` to see waste (a runaway cut at the edge, a
client that left). It is billed from the model's own usage when the model reports one, and is
counted when a stream closes (session.py), with everything else about that stream. Each app has
its own registry, so tests and notebooks can run several apps in
one process without their counts mixing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.model_requests = Counter(
            "gateway_model_requests", "Requests that reached the model", ["model"], registry=r
        )
        self.tokens_generated = Counter(
            "gateway_model_tokens_generated",
            "Output tokens the model produced, delivered or not (the cost meter)",
            ["model"],
            registry=r,
        )
        self.tokens_delivered = Counter(
            "gateway_tokens_delivered", "Output tokens delivered to clients", registry=r
        )
        self.rejections = Counter(
            "gateway_rejections",
            "Requests and streams refused or ended with an error",
            ["code"],
            registry=r,
        )
        self.streams_active = Gauge("gateway_streams_active", "Streams open now", registry=r)
        self.ws_connections = Gauge(
            "gateway_ws_connections_active",
            "WebSocket chat connections open now (each holds server memory while idle)",
            registry=r,
        )
        self.cancellations = Counter(
            "gateway_stream_cancellations",
            "Streams ended early, by reason: client_disconnect, cancelled (a WebSocket cancel),"
            " send_timeout (the client stopped reading), stream_timeout, idle_timeout,"
            " model_error",
            ["reason"],
            registry=r,
        )
        self.limits_unavailable = Counter(
            "gateway_limits_unavailable",
            "Admission checks made while the shared limits store (Redis) was unreachable, by"
            " what the gateway did: refused (503 limits_unavailable) or per_worker (it used this"
            " worker's own limits instead)",
            ["action"],
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_ttft_seconds", "Time to first token", buckets=LATENCY_BUCKETS, registry=r
        )
        self.stream_duration = Histogram(
            "gateway_stream_duration_seconds",
            "Stream duration, start to terminal event",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cost_dollars = Counter(
            "gateway_model_cost_dollars",
            "Model cost at the configured prices per 1K tokens",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Read one sample (for tests and notebooks), 0 when it was never set."""
        found = self.registry.get_sample_value(name, labels or {})
        return found if found is not None else 0.0
