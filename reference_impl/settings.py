"""The one settings object: every limit the gateway enforces, with the AWS value it mirrors.

Each field reads the environment variable `GATEWAY_<FIELD>` (for example
`GATEWAY_MAX_STREAM_SECONDS=1.5`). Durations are seconds and accept fractions. Sources for the AWS
values are in docs/sources.md under the id in square brackets.

"Static + 1": these limits, the contract and the error rules are fixed by the operator; only
the client's request varies, and it can never raise a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Seconds = Annotated[float, Field(gt=0)]
FakeBehavior = Literal["normal", "runaway", "stall", "fail_midstream", "throttled"]


@dataclass(frozen=True)
class StreamLimits:
    """The limits on one stream, which the guard enforces and the `start` event announces.

    The field names are the contract's (`Limits` in openapi.yaml): `as_contract` is what a
    client reads.
    """

    max_tokens: int
    max_stream_seconds: float
    first_token_timeout_seconds: float
    idle_timeout_seconds: float

    def as_contract(self) -> dict[str, int | float]:
        """The `Limits` object of the contract (what `asdict` gives, at a tenth of its cost:
        it is written into every stream's `start` event)."""
        return {
            "max_tokens": self.max_tokens,
            "max_stream_seconds": self.max_stream_seconds,
            "first_token_timeout_seconds": self.first_token_timeout_seconds,
            "idle_timeout_seconds": self.idle_timeout_seconds,
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    # --- who may call -----------------------------------------------------------------------
    # Comma-separated bearer keys. Like an API key on an API Gateway usage plan, a key names the
    # client that limits are counted for. [apigw-usage-plans]
    api_keys: Annotated[tuple[str, ...], NoDecode] = ("course-key",)
    # Wrong keys one client address may send per minute; above it every request from that
    # address answers 429 rate_limited (even with a right key, so guessing learns nothing) until
    # the minute has refilled. Counted in this worker's memory, also with GATEWAY_REDIS_URL: a
    # guesser spread over N workers gets N times the tries (auth_guard.py says why).
    auth_failures_per_minute: int = Field(30, gt=0)
    # Origins (scheme://host[:port], comma-separated) whose browser pages may call the gateway:
    # CORS on HTTP and the WebSocket handshake's Origin. Empty: same origin only (the Origin's
    # host:port is the Host header). A request with no Origin (not a browser) is not checked.
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # --- request size: refused before the body is read --------------------------------------
    # API Gateway REST and HTTP APIs take at most 10 MB [apigw-rest-quotas]; a Q&A request
    # needs far less, so the edge refuses anything above 64 KiB from Content-Length.
    max_request_bytes: int = Field(64 * 1024, gt=0)
    # The prompt (question + document) in tokens of our tokenizer; above it: prompt_too_long.
    max_prompt_tokens: int = Field(4000, gt=0)

    # --- output tokens: what a stream may cost ----------------------------------------------
    # Bedrock's inferenceConfig.maxTokens defaults to the model's maximum [bedrock-converse-stream];
    # the edge sets a cap, refuses requests above it and passes the capped value to the model.
    max_tokens_cap: int = Field(1024, gt=0)
    default_max_tokens: int = Field(256, gt=0)

    # --- time: every stream ends ----------------------------------------------------------
    # The first token must come within this, or the client gets a 504 model_timeout. API
    # Gateway's default integration timeout is 29 s [apigw-rest-quotas].
    first_token_timeout_seconds: Seconds = 10.0
    # Longest gap between two tokens once streaming; REST response streaming's idle timeout is
    # 5 minutes on Regional endpoints [apigw-rest-streaming]; a model silent for 15 s is stuck.
    idle_timeout_seconds: Seconds = 15.0
    # A whole stream; REST response streaming allows up to 15 minutes [apigw-rest-streaming].
    max_stream_seconds: Seconds = 120.0
    # Keep-alive comment interval; idle proxies (and edge-optimized endpoints, 30 s) cut silent
    # connections [apigw-rest-streaming].
    ping_seconds: Seconds = 10.0
    # A client that stops reading: one send may block this long before the stream is dropped
    # (an SSE stream ends; a chat connection ends its answer and closes 1008).
    send_timeout_seconds: Seconds = 10.0
    # Resumable streams (reference_impl/resumable.py): a finished answer's events are kept this
    # long for `GET /v1/ask/stream/{request_id}`, then a resume answers 410 stream_expired.
    stream_retention_seconds: Seconds = 300.0
    # A client that left does not stop the model at once: a reconnect within this many seconds
    # continues the same answer, with no second model call. Past it with no reader, the model
    # is stopped. Longer: more answers survive a flaky network; each abandoned answer costs up
    # to this many seconds of tokens.
    resume_grace_seconds: Seconds = 5.0

    # --- rate and concurrency, per API key --------------------------------------------------
    # Token bucket like a usage plan's throttle: rate = refill per second, burst = bucket size
    # [apigw-throttling].
    rate_limit_rps: float = Field(5.0, gt=0)
    rate_limit_burst: int = Field(10, gt=0)
    # Model tokens per minute per key (prompt + output), reserved at admission like Bedrock's
    # tokens-per-minute quota [bedrock-quotas]; a usage plan's quota counts requests instead.
    tokens_per_minute: int = Field(20_000, gt=0)
    max_concurrent_streams: int = Field(4, gt=0)
    # All keys together: above this the gateway answers 503 overloaded, to protect the backend.
    max_total_streams: int = Field(256, gt=0)

    # --- limits shared by several workers (reference_impl/shared_limits.py) ------------------
    # Unset: every limit above lives in the worker's memory, so N workers let N times the
    # traffic through. Set (redis://host:6379/0): the rate, the token budget, the stream slots
    # and the WebSocket tickets live in this Redis, and every worker enforces one limit.
    redis_url: str | None = None
    # What admission does when Redis cannot be reached: "refuse" answers 503
    # limits_unavailable (a limit nobody can check is not enforced: fail closed);
    # "per_worker" falls back to this worker's own limits, logs it and counts it in
    # gateway_limits_unavailable_total.
    redis_unavailable: Literal["refuse", "per_worker"] = "refuse"
    # The longest one Redis call may take before Redis counts as unreachable.
    redis_timeout_seconds: Seconds = 0.5

    # --- the WebSocket chat (/v1/chat), per connection ---------------------------------------
    # API Gateway WebSocket APIs take messages of at most 128 KB (in frames of at most 32 KB) and
    # close the connection with 1009 when one is larger [apigw-ws-quotas]. We do the same.
    ws_max_message_bytes: int = Field(128 * 1024, gt=0)
    # API Gateway closes a WebSocket connection idle for 10 minutes and any connection after 2
    # hours, whatever its traffic [apigw-ws-quotas]. Idle means no message either way: a ping
    # from the client or a token to it restarts the timer.
    ws_idle_timeout_seconds: Seconds = 600.0
    ws_max_connection_seconds: Seconds = 7200.0
    # Messages a connection may send: a token bucket, as API Gateway throttles each route with
    # ThrottlingRateLimit and ThrottlingBurstLimit [apigw-ws-throttling]. A refused message gets
    # a `rate_limited` error; a client that keeps sending after this many refusals in a row is
    # closed with 1008.
    ws_messages_per_second: float = Field(5.0, gt=0)
    ws_message_burst: int = Field(10, ge=1)
    ws_rate_limited_before_close: int = Field(10, ge=1)
    # Open chat connections per API key. API Gateway has no quota on concurrent connections, only
    # on new ones per second [apigw-ws-quotas]; a gateway in front of one model needs a cap.
    ws_max_connections_per_key: int = Field(8, gt=0)
    # How long a browser's single-use connection ticket is valid. A browser cannot set an
    # Authorization header on a WebSocket, and an API key in a URL ends up in logs; a ticket that
    # dies in seconds and works once is safe to put there.
    ws_ticket_seconds: Seconds = 30.0
    # The conversation a follow-up carries: earlier turns up to this many tokens, oldest dropped
    # first. Every turn kept is prompt tokens paid again on each question.
    ws_history_tokens: int = Field(2000, ge=0)
    # permessage-deflate: off. Tokens are a few bytes each, so compressing them saves almost
    # nothing, while deflate costs ~34 KiB of memory per connection and ~2 us per message
    # (measured on the course VM, 2026-11-24): for many mostly idle chat connections, memory
    # matters more. uvicorn negotiates it, not the app: the app names it in
    # `app.state.uvicorn_options`, which BackgroundServer and the command line apply.
    ws_per_message_deflate: bool = False

    # --- the server's own bounds: what a client may hold open -------------------------------
    # In production API Gateway (or a load balancer) takes the client's connection and hands
    # the gateway whole requests; run on its own, the gateway bounds these itself
    # (reference_impl/server_bounds.py applies them to uvicorn; docs/aws-mapping.md).
    # A request's headers, and then its body, must arrive within this; a connection that sends
    # no request is closed after it (a 408 request_timeout when a request had begun).
    request_read_timeout_seconds: Seconds = 10.0
    # The request line and headers together; above: 431 headers_too_large. API Gateway allows
    # 10,240 bytes of header values on a REST API [apigw-rest-quotas].
    max_header_bytes: int = Field(16 * 1024, gt=0)
    # Open connections (HTTP and WebSocket) of one worker; above: 503 overloaded, then closed.
    # Just below the usual limit of 1024 open files, so the cap is met before the process runs
    # out of them (`make bench` shows one worker carrying 500 streams and 500 chats).
    max_connections: int = Field(1000, gt=0)
    # How long an idle keep-alive connection stays open after its last answer.
    keep_alive_seconds: Seconds = 5.0
    # SIGTERM: open streams get `shutting_down`, then the process exits within this, whatever
    # clients do.
    shutdown_grace_seconds: Seconds = 10.0

    # --- the model --------------------------------------------------------------------------
    # "fake" is the offline, deterministic model; "bedrock" streams from Amazon Bedrock with
    # ConverseStream (reference_impl/bedrock.py), with AWS credentials [bedrock-converse-stream].
    model: Literal["fake", "bedrock"] = "fake"
    # The Bedrock model id for ConverseStream's modelId. No default on purpose: models move from
    # Active to Legacy to end-of-life [bedrock-models], so name one your account can use that
    # streams (GetFoundationModel: responseStreamingSupported) [bedrock-converse-stream].
    bedrock_model_id: str = ""
    bedrock_region: str = "us-east-1"
    # Client retries, before the stream starts: botocore retries throttling and transient errors
    # with exponential backoff and jitter [botocore-retries]. "standard" makes 3 attempts by
    # default; "adaptive" adds client-side rate limiting and suits one caller, not a multi-tenant
    # gateway [aws-sdk-retry-behavior]. Attempts count the first call [botocore-config]. Once
    # the stream has started, an error inside it is never retried by the SDK: the gateway
    # reports it.
    bedrock_retry_mode: Literal["standard", "adaptive"] = "standard"
    bedrock_max_attempts: int = Field(3, ge=1)
    # Socket timeouts of the Bedrock client; both default to 60 s in botocore [botocore-config].
    # read_timeout bounds the wait for each read, so also the gap between two stream events;
    # the gateway's own first-token and idle timeouts above are shorter and decide first.
    bedrock_connect_timeout_seconds: Seconds = 5.0
    bedrock_read_timeout_seconds: Seconds = 60.0
    # On AWS only (reference_impl/aws/deploy.py): a usage plan's quota counts requests per DAY,
    # WEEK or MONTH per API key [apigw-usage-plans], not tokens; this is its daily limit.
    aws_requests_per_day: int = Field(10_000, gt=0)
    fake_tokens_per_second: float = Field(40.0, gt=0)
    fake_first_token_seconds: float = Field(0.2, ge=0)
    fake_behavior: FakeBehavior = "normal"
    # The demo page's presenter panel (`python -m reference_impl --demo`): lets whoever holds an
    # API key switch the fake model's behaviour for everyone, so each limit can be shown firing.
    # Only with the fake model; never in production.
    demo_controls: bool = False
    # OpenTelemetry spans and GenAI metrics for every stream (reference_impl/telemetry.py), sent
    # wherever the process's OpenTelemetry SDK is configured to send them. Off: it costs nothing.
    telemetry: bool = False
    # Prices make the cost meter speak in dollars. Illustrative values per 1K tokens, not a
    # quote for any real model.
    price_per_1k_input_tokens: float = Field(0.003, ge=0)
    price_per_1k_output_tokens: float = Field(0.015, ge=0)

    @model_validator(mode="after")
    def bedrock_needs_a_model_id(self) -> Settings:
        if self.model == "bedrock" and not self.bedrock_model_id:
            raise ValueError(
                "GATEWAY_MODEL=bedrock needs GATEWAY_BEDROCK_MODEL_ID: a model id your account "
                "can call with ConverseStream (aws bedrock list-foundation-models lists them)"
            )
        return self

    @field_validator("redis_url", mode="before")
    @classmethod
    def empty_redis_url_is_none(cls, value: object) -> object:
        # GATEWAY_REDIS_URL= (set but empty) means no Redis, as unset does.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(key.strip() for key in value.split(",") if key.strip())
        if not value:
            raise ValueError("at least one API key is needed (GATEWAY_API_KEYS=key1,key2)")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = (origin.strip() for origin in value.split(","))
        return tuple(str(origin).strip().rstrip("/").lower() for origin in value if origin)

    def stream_limits(self, max_tokens: int) -> StreamLimits:
        """The limits on a stream whose max_tokens the edge has settled."""
        return StreamLimits(
            max_tokens=max_tokens,
            max_stream_seconds=self.max_stream_seconds,
            first_token_timeout_seconds=self.first_token_timeout_seconds,
            idle_timeout_seconds=self.idle_timeout_seconds,
        )
