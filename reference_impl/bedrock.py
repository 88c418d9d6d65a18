"""Amazon Bedrock behind the gateway's model interface, streamed with ConverseStream.

`BedrockModel(settings, client=None).stream(request)` yields `TextDelta`s and one `ModelStop`,
like `FakeModel`, so the edge, the stream guard and both wire formats work unchanged.

How one answer flows [bedrock-converse-stream]:
- the request: `modelId`, the document and the question as user/assistant `messages`, and
  `inferenceConfig.maxTokens` = the edge-capped `max_tokens` (left unset, Bedrock would allow
  the model's maximum);
- the stream: `messageStart`, `contentBlockDelta` (`delta.text` -> one `TextDelta`),
  `contentBlockStop`, `messageStop` (`stopReason`), then `metadata` (`usage.inputTokens`,
  `usage.outputTokens`, `metrics.latencyMs`) -> one `BedrockStop`;
- errors before the stream are the modeled exceptions (`ThrottlingException`, ...); errors
  inside it arrive as exception events, which botocore raises as `EventStreamError` with a
  lower-camel code (`throttlingException`, ...). Both become one `GatewayError` of the
  catalogue, whose detail never repeats AWS's message (it can hold ARNs and account ids).

boto3 is synchronous. Each blocking call (starting the stream, reading the next event) runs in a
worker thread, so the event loop keeps serving other streams; when the stream is cancelled (a
timeout, a client that left) `EventStream.close()` closes the HTTP connection and Bedrock stops.
The synchronous pieces (`converse_request`, `open_stream`, `StreamReader`, `gateway_error`) are
shared with the Lambda handler of the WebSocket API (`aws/ws_handler.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EventStreamError,
    ReadTimeoutError,
)

from .errors import GatewayError
from .model import ModelEvent, ModelRequest, ModelStop, TextDelta
from .settings import Settings

SYSTEM_PROMPT = (
    "Answer the user's question using only the document in the first message. "
    "If the document does not answer it, say so. Answer in at most three sentences."
)
# The stop reasons the contract knows (openapi.yaml, StopReason), passed through as they are.
CONTRACT_STOP_REASONS = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "guardrail_intervened",
    "content_filtered",
}
# A retryable error tells the client when to try again; a second is a fair first pause.
RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True)
class BedrockStop(ModelStop):
    """A `ModelStop` with Bedrock's own measure of the call, `metrics.latencyMs`."""

    latency_ms: int | None = None


def make_client(settings: Settings):
    """A `bedrock-runtime` client with the retry and timeout policy from the settings."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.bedrock_region,
        # Exponential backoff with jitter on throttling and transient errors, for the call that
        # starts the stream [botocore-retries]. botocore's `max_attempts` key counts retries
        # only (it adds one); `total_max_attempts` counts the first call too, like our setting.
        retries={
            "mode": settings.bedrock_retry_mode,
            "total_max_attempts": settings.bedrock_max_attempts,
        },
        connect_timeout=settings.bedrock_connect_timeout_seconds,
        read_timeout=settings.bedrock_read_timeout_seconds,  # [botocore-config]
    )
    return boto3.client("bedrock-runtime", config=config)


def converse_request(request: ModelRequest, model_id: str) -> dict[str, Any]:
    """The keyword arguments of `converse_stream` for one question [bedrock-converse-stream].

    Messages alternate user/assistant and start with the user: the document opens the first
    user turn, earlier turns of a chat follow, the new question is the last user message.
    """
    document = f"<document>\n{request.document}\n</document>\n\n"
    turns: list[tuple[str, str]] = []
    for turn in request.history:
        turns.append(("user", turn.question))
        turns.append(("assistant", turn.answer or "(no answer)"))
    turns.append(("user", request.question))
    first_role, first_text = turns[0]
    turns[0] = (first_role, document + first_text)
    return {
        "modelId": model_id,
        "system": [{"text": SYSTEM_PROMPT}],
        "messages": [{"role": role, "content": [{"text": text}]} for role, text in turns],
        # The cap the edge enforced, passed on: Bedrock stops there with stopReason max_tokens
        # [bedrock-converse-stream].
        "inferenceConfig": {"maxTokens": request.max_tokens},
    }


# What each Bedrock error means for the client, by error code. In-stream exception events carry
# the same names in lower camel case (throttlingException); `gateway_error` accepts both.
BEDROCK_ERRORS: dict[str, tuple[str, str]] = {
    "ThrottlingException": ("rate_limited", "The model is throttling requests; retry later."),
    "ModelTimeoutException": ("model_timeout", "The model took too long to answer."),
    "ValidationException": ("invalid_request", "The model refused the request as invalid."),
    "ServiceUnavailableException": ("overloaded", "The model service is unavailable."),
    "ModelNotReadyException": ("overloaded", "The model is not ready yet; retry later."),
    "ModelStreamErrorException": ("model_error", "The model failed while streaming."),
    "InternalServerException": ("model_error", "The model service failed."),
    "ModelErrorException": ("model_error", "The model failed to answer."),
    # Our own misconfiguration (IAM, a wrong model id): the client can do nothing about it,
    # and the message names our account's resources, so it is never passed on.
    "AccessDeniedException": ("internal_error", "The gateway could not call its model."),
    "ResourceNotFoundException": ("internal_error", "The gateway could not call its model."),
}


def gateway_error(error: ClientError) -> GatewayError:
    """The catalogue's error for a Bedrock `ClientError`, raised before or inside the stream.

    The detail is ours: AWS's message can name ARNs, account ids and model ids, so it is
    dropped. Retryable errors carry a Retry-After.
    """
    # BEGIN SOLUTION lab08: map Bedrock's errors, before and inside the stream, to the catalogue
    code = str(error.response.get("Error", {}).get("Code", ""))
    code = code[:1].upper() + code[1:]  # throttlingException (in-stream) -> ThrottlingException
    gateway_code, detail = BEDROCK_ERRORS.get(code, ("model_error", "The model call failed."))
    retry_after = RETRY_AFTER_SECONDS if gateway_code in ("rate_limited", "overloaded") else None
    return GatewayError(gateway_code, detail, retry_after_seconds=retry_after)
    # END SOLUTION


def stop_reason_of(bedrock_stop_reason: str) -> str:
    """Bedrock's `stopReason` as the contract's StopReason, or a `model_error`."""
    if bedrock_stop_reason in CONTRACT_STOP_REASONS:
        return bedrock_stop_reason
    if bedrock_stop_reason == "model_context_window_exceeded":
        return "max_tokens"  # cut by a length limit too: the answer is incomplete
    # tool_use, malformed_model_output, malformed_tool_use: we offer no tools, so the answer
    # is unusable.
    raise GatewayError("model_error", "The model ended its answer abnormally.")


def open_stream(client, kwargs: dict[str, Any]):
    """Call ConverseStream; the botocore `EventStream`, or a `GatewayError` (blocking)."""
    try:
        return client.converse_stream(**kwargs)["stream"]
    except ClientError as error:
        raise gateway_error(error) from None
    except (ReadTimeoutError, ConnectTimeoutError):
        raise GatewayError("model_timeout", "The model did not answer in time.") from None
    except BotoCoreError:
        raise GatewayError("model_error", "The model could not be reached.") from None


class StreamReader:
    """Turns ConverseStream events into model events, one event at a time.

    `messageStop` comes before `metadata`, so the stop reason is kept until the usage arrives
    (or the stream ends) and then given as one `BedrockStop`.
    """

    def __init__(self, stream, request: ModelRequest) -> None:
        self.stream = stream
        self.events = iter(stream)
        self.request = request
        self.stop_reason: str | None = None
        self.usage: dict[str, int] = {}
        self.latency_ms: int | None = None
        self.done = False

    def next_event(self) -> ModelEvent | None:
        """The next model event, or None at the end (blocking: call it from a thread)."""
        if self.done:
            return None
        try:
            for event in self.events:
                delta = self.translate(event)
                if delta is not None:
                    return delta
        except EventStreamError as error:  # an exception event inside the stream
            raise gateway_error(error) from None
        except GatewayError:
            raise
        except Exception:  # the connection broke (a read timeout, a reset): nothing to retry
            raise GatewayError("model_error", "The model stream broke off.") from None
        self.done = True
        if self.stop_reason is None:
            raise GatewayError("model_error", "The model stream ended without a stop reason.")
        # Bedrock's own count is what the call costs; without one the gateway bills its estimate.
        return BedrockStop(
            stop_reason_of(self.stop_reason),
            self.usage.get("inputTokens"),
            self.usage.get("outputTokens"),
            self.latency_ms,
        )

    def translate(self, event: dict[str, Any]) -> TextDelta | None:
        if "contentBlockDelta" in event:
            text = event["contentBlockDelta"].get("delta", {}).get("text")
            if text:
                return TextDelta(text)
        elif "messageStop" in event:
            self.stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self.usage = event["metadata"].get("usage", {})
            self.latency_ms = event["metadata"].get("metrics", {}).get("latencyMs")
        return None  # messageStart, contentBlockStart/Stop: nothing for the client

    def __iter__(self) -> Iterator[ModelEvent]:
        while (event := self.next_event()) is not None:
            yield event

    def close(self) -> None:
        """Close the HTTP response: nothing more is read or sent from it.

        AWS does not document that this stops Bedrock generating or billing (reports say the
        whole answer is billed, docs/sources.md [bedrock-cancel-billing]): the cost cap is
        `inferenceConfig.maxTokens`, set from the request's `max_tokens`."""
        self.done = True
        self.stream.close()


class BedrockModel:
    """Amazon Bedrock ConverseStream as a gateway model (`GATEWAY_MODEL=bedrock`)."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.model_id = settings.bedrock_model_id
        self.name = f"bedrock:{self.model_id}"
        self.client = client if client is not None else make_client(settings)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        kwargs = converse_request(request, self.model_id)
        stream = await asyncio.to_thread(open_stream, self.client, kwargs)
        reader = StreamReader(stream, request)
        try:
            while (event := await asyncio.to_thread(reader.next_event)) is not None:
                yield event
        finally:
            # Every ending (the stop, an error, a cancellation by the guard) closes the
            # connection. A read still blocked in its thread then fails and is dropped.
            reader.close()
