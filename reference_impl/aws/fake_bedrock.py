"""Bedrock offline: real ConverseStream responses, parsed by botocore's own parser.

moto does not implement `converse_stream` (it raises NotImplementedError), and a stub that
returns a Python list skips what matters: the binary event-stream framing, botocore's parser,
`EventStream.close()`, and exception events that botocore raises as `EventStreamError`. This
module encodes genuine AWS event-stream frames and answers the client's call with them through
a `before-call` hook, so the code under test gets a real `botocore.eventstream.EventStream`.

A frame: prelude (total length, headers length, CRC32 of the prelude), headers
(`:event-type` or `:exception-type`, `:content-type`, `:message-type` event | exception),
a JSON payload, and the CRC32 of the whole message.

    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    calls = install(client, answer(["Hel", "lo"], stop_reason="end_turn"))
    stream = client.converse_stream(modelId="m", messages=[...])["stream"]
    calls[0]["inferenceConfig"]["maxTokens"]  # what boto3 sent, as JSON

`before-call` (not `before-send`) is used because inside `moto.mock_aws()` every `before-send`
handler runs, moto's included, while the first `before-call` answer short-circuits the call.
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

STRING_HEADER = 7  # the event-stream header value type for a UTF-8 string


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One binary event-stream message."""
    encoded = b"".join(
        struct.pack("!B", len(name))
        + name.encode()
        + struct.pack("!BH", STRING_HEADER, len(value))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, body: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, json.dumps(body).encode())


def exception(exception_type: str, message: str) -> bytes:
    """An exception event, such as `throttlingException`, sent inside the stream."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, json.dumps({"message": message}).encode())


def answer(
    deltas: Iterable[str],
    stop_reason: str = "end_turn",
    input_tokens: int = 42,
    latency_ms: int = 123,
    fail_with: tuple[str, str] | None = None,
    output_tokens: int | None = None,
) -> bytes:
    """The frames of one ConverseStream text answer: messageStart, contentBlockDeltas,
    contentBlockStop, messageStop, metadata (whose outputTokens is one per delta unless
    `output_tokens` says otherwise: a real model's tokens are not its text chunks).

    With `fail_with=(exception_type, message)` the stream breaks after the deltas instead.
    """
    deltas = list(deltas)
    frames = [event("messageStart", {"role": "assistant"})]
    frames += [
        event("contentBlockDelta", {"delta": {"text": text}, "contentBlockIndex": 0})
        for text in deltas
    ]
    if fail_with is not None:
        return b"".join(frames) + exception(*fail_with)
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event("messageStop", {"stopReason": stop_reason}))
    output_tokens = len(deltas) if output_tokens is None else output_tokens
    usage = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }
    frames.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": latency_ms}}))
    return b"".join(frames)


def frame_ends(payload: bytes) -> list[int]:
    """Where each event-stream message of `payload` ends (its prelude says how long it is)."""
    ends, at = [], 0
    while at < len(payload):
        at += struct.unpack("!I", payload[at : at + 4])[0]
        ends.append(at)
    return ends


class Pause:
    """Holds a stream after its first `after_deltas` deltas until `release()`, as a slow model
    would: the moment a test acts while an answer is in flight. The thread reading the stream
    blocks; `reached` is set when it does."""

    def __init__(self, after_deltas: int, timeout: float = 10.0) -> None:
        self.after_frames = after_deltas + 1  # messageStart comes first
        self.timeout = timeout
        self.reached = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def hold(self) -> None:
        self.reached.set()
        self.released.wait(self.timeout)  # bounded: a test that never releases fails, not hangs


class RawStream:
    """The HTTP body as botocore reads it: `stream()`, `read()`, `close()`."""

    def __init__(self, payload: bytes, chunk: int = 17, pause: Pause | None = None) -> None:
        self.payload = payload
        self.chunk = chunk  # odd-sized reads: frames split across reads, as on a network
        self.pause = pause
        self.closed = False

    def stream(self, amt: int | None = None, decode_content: bool | None = None):
        pieces = [self.payload]
        if self.pause is not None:
            at = frame_ends(self.payload)[self.pause.after_frames - 1]
            pieces = [self.payload[:at], self.payload[at:]]
        for number, piece in enumerate(pieces):
            if number:
                self.pause.hold()
            for start in range(0, len(piece), self.chunk):
                if self.closed:
                    return
                yield piece[start : start + self.chunk]

    def read(self, amt: int | None = None) -> bytes:
        return self.payload

    def close(self) -> None:
        self.closed = True


class CallLog(list):
    """The JSON bodies boto3 sent, one per call (with `modelId` from the URL), and in
    `streams` the raw response bodies handed out, to check they were closed."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[RawStream] = []


def install(
    client, *payloads: bytes, operation: str = "ConverseStream", pause: Pause | None = None
) -> CallLog:
    """Answer the client's calls of `operation` with `payloads`, one per call (the last one
    again when they run out); with `pause`, the first call's stream holds there."""
    from botocore.awsrequest import AWSResponse
    from botocore.parsers import create_parser

    calls = CallLog()

    def before_call(model, params, **kwargs):
        sent = json.loads(params.get("body") or b"{}")
        sent["modelId"] = unquote(params["url_path"].split("/")[2])
        calls.append(sent)
        raw = RawStream(
            payloads[min(len(calls), len(payloads)) - 1], pause=pause if len(calls) == 1 else None
        )
        calls.streams.append(raw)
        headers = {"content-type": "application/vnd.amazon.eventstream"}
        http = AWSResponse("https://bedrock.invalid", 200, headers, raw)
        parsed = create_parser(model.metadata["protocol"]).parse(
            {
                "status_code": 200,
                "headers": http.headers,
                "body": http.raw,
                "context": {"operation_name": model.name},
            },
            model.output_shape,
        )
        return http, parsed

    client.meta.events.register(f"before-call.bedrock-runtime.{operation}", before_call)
    return calls


def fail_before_stream(client, code: str, message: str, status: int) -> None:
    """Make the client's next ConverseStream calls fail before the stream, with the modeled
    error `code` (for example ThrottlingException, 429), as Bedrock answers them."""
    from botocore.awsrequest import AWSResponse

    def before_call(model, params, **kwargs):
        http = AWSResponse("https://bedrock.invalid", status, {}, RawStream(b""))
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return http, parsed

    client.meta.events.register("before-call.bedrock-runtime.ConverseStream", before_call)
