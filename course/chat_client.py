"""A small WebSocket chat client for notebook 07, so its cells stay short and the logic is tested.

`ChatClient` opens one connection to the gateway's `/v1/chat` with a real `websockets` sync
client, the way a program does (`Authorization: Bearer <key>`) or a browser does (`?ticket=`
from `get_ticket`). Every message it sends or receives is checked against the chat's contract,
`reference_impl/contract/asyncapi.yaml`: the contract, not the code, is the yardstick, so a
gateway that drifts from it fails loudly here.

Every message is also logged with the time it crossed the wire, so a notebook can print the
exchange (`transcript()`) and measure it (the seconds from a `cancel` to its `end`).

    chat = ChatClient(server.ws_url, key="course-key")
    chat.ask("q1", "How long can a connection stay idle?", "api-gateway-websocket-limits")
    answer = chat.answer("q1")       # start, deltas, end
    print(chat.transcript())
    chat.close()                     # (1000, "")

Waiting is always on a condition with a deadline (the next message, a terminal message, the
server's close), never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from reference_impl.contract import asyncapi_validate as chat_contract

CHAT_PATH = chat_contract.chat_address()  # "/v1/chat"
TERMINAL = frozenset({"end", "error"})
# A functional deadline, not a speed target: long enough that a slow machine never trips it.
WAIT_SECONDS = 10.0

Message = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One message of the exchange: who sent it, when, and what."""

    direction: str  # "->" sent by the client, "<-" received from the gateway
    at: float  # seconds since the connection opened
    message: Message | None  # the parsed message; None for a raw frame sent on purpose
    size: int  # the frame's payload in bytes, what the gateway's message size limit counts


def get_ticket(http_url: str, key: str) -> str:
    """A single-use chat ticket from `POST /v1/chat/tickets`, paid for with the API key.

    This is what a browser's backend does: the key stays in a header, and only the ticket,
    which opens one connection within seconds, ever appears in a URL.
    """
    response = httpx.post(
        f"{http_url}/v1/chat/tickets", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    response.raise_for_status()
    return response.json()["ticket"]


def text_of(messages: list[Message]) -> str:
    """The answer's text: the `delta` messages joined."""
    return "".join(m["text"] for m in messages if m["type"] == "delta")


class ChatClient:
    """One chat connection; every message both ways checked against the AsyncAPI contract.

    Give `key` (programs: an Authorization header) or `ticket` (browsers: `?ticket=`), or
    neither to see the gateway refuse the connection.
    """

    def __init__(
        self,
        ws_url: str,
        key: str | None = None,
        ticket: str | None = None,
        *,
        timeout: float = WAIT_SECONDS,
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        query = f"?ticket={quote(ticket, safe='')}" if ticket is not None else ""
        self.url = f"{ws_url}{CHAT_PATH}{query}"
        self.timeout = timeout
        self.log: list[Entry] = []
        # websockets wants connect() used as a context manager; this client is that context,
        # held open until close(). compression=None: the gateway does not negotiate
        # permessage-deflate (settings.py says why); max_size=None: the gateway, not this
        # client, enforces the message size.
        self._connection = contextlib.ExitStack()
        self.ws = self._connection.enter_context(
            connect(
                self.url,
                additional_headers=headers,
                compression=None,
                open_timeout=timeout,
                max_size=None,
            )
        )
        self.opened_at = time.perf_counter()

    # --- sending ------------------------------------------------------------------------------

    def send(self, message: Message) -> float:
        """Send one contract-checked message; return when it was sent (seconds since open)."""
        chat_contract.validate_client_message(message)
        frame = json.dumps(message)
        self.ws.send(frame)
        return self._logged("->", message, frame)

    def send_raw(self, data: str | bytes) -> float:
        """Send a frame the contract may not allow, on purpose (bad JSON, too big, binary)."""
        self.ws.send(data)
        return self._logged("->", None, data)

    def ask(
        self,
        id: str,
        question: str,
        document_id: str | None = None,
        max_tokens: int | None = None,
        *,
        document: str | None = None,
    ) -> float:
        """Ask a question about a built-in `document_id` or your own `document` text. Leave
        both out on a follow-up: the conversation's document is used."""
        message: Message = {"type": "ask", "id": id, "question": question}
        if document_id is not None:
            message["document_id"] = document_id
        if document is not None:
            message["document"] = document
        if max_tokens is not None:
            message["max_tokens"] = max_tokens
        return self.send(message)

    def cancel(self, id: str) -> float:
        """Ask the gateway to stop the answer to ask `id`; it ends with `end`, `cancelled`."""
        return self.send({"type": "cancel", "id": id})

    def ping(self) -> float:
        """An application-level keep-alive; the gateway answers `pong`."""
        return self.send({"type": "ping"})

    # --- receiving ----------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Message:
        """The next message from the gateway, contract-checked.

        Raises TimeoutError when none comes in time, and `websockets`' ConnectionClosed when
        the gateway has closed the connection.
        """
        raw = self.ws.recv(timeout=self.timeout if timeout is None else timeout)
        message = json.loads(raw)
        chat_contract.validate_server_message(message)
        self._logged("<-", message, raw)
        return message

    def until(
        self, predicate: Callable[[Message], bool], timeout: float | None = None
    ) -> list[Message]:
        """Receive until `predicate(message)` holds; return every message up to that one."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        received = []
        while True:
            message = self.recv(max(0.001, deadline - time.monotonic()))
            received.append(message)
            if predicate(message):
                return received

    def answer(self, id: str, timeout: float | None = None) -> list[Message]:
        """The messages of the answer to ask `id`, from `start` to its `end` or `error`.

        Messages about other ids received meanwhile are left out (they stay in the log).
        """
        received = self.until(lambda m: m["type"] in TERMINAL and m["id"] == id, timeout)
        return [m for m in received if m.get("id") == id]

    def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        """Wait for the gateway to close the connection; return its (code, reason).

        Messages that arrive before the close are received and logged.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self.recv(max(0.001, deadline - time.monotonic()))
        except ConnectionClosed:
            return self.close_status()

    def close_status(self) -> tuple[int | None, str | None]:
        """The close code and reason the gateway sent, or (None, None) while it is open."""
        return self.ws.close_code, self.ws.close_reason

    def close(self) -> tuple[int | None, str | None]:
        """Close from the client side (1000), unless the gateway already closed; return the
        (code, reason) that ended the connection."""
        self._connection.close()
        return self.close_status()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the record ---------------------------------------------------------------------------

    def sent(self) -> list[Message]:
        return [e.message for e in self.log if e.direction == "->" and e.message is not None]

    def received(self) -> list[Message]:
        return [e.message for e in self.log if e.direction == "<-"]

    def transcript(self, every_delta: bool = False, width: int = 100) -> str:
        """The exchange so far, one line per message, with the time it crossed the wire.

        A run of `delta`s for one answer is one line (how many, until when, the text they
        carry) unless `every_delta` is true. Lines longer than `width` are cut with "…", except
        `error` lines, which are shown whole.
        """
        lines: list[str] = []
        index = 0
        while index < len(self.log):
            entry = self.log[index]
            message = entry.message
            if not every_delta and message is not None and message["type"] == "delta":
                run = [entry]
                while (
                    index + len(run) < len(self.log)
                    and (following := self.log[index + len(run)].message) is not None
                    and following["type"] == "delta"
                    and following["id"] == message["id"]
                ):
                    run.append(self.log[index + len(run)])
                text = "".join(e.message["text"] for e in run)
                until = f" until {run[-1].at:.3f} s" if len(run) > 1 else ""
                summary = f"delta x{len(run)} {message['id']}{until}: {text!r}"
                lines.append(_line(entry.at, entry.direction, summary, width))
                index += len(run)
                continue
            # An error's detail is what the learner reads the transcript for: never cut it.
            full = message is not None and message["type"] == "error"
            lines.append(_line(entry.at, entry.direction, describe(entry), None if full else width))
            index += 1
        code, reason = self.close_status()
        if code is not None:
            lines.append(f"{'':>8}   closed {code} {reason!r}")
        return "\n".join(lines)

    def _logged(self, direction: str, message: Message | None, frame: str | bytes) -> float:
        at = time.perf_counter() - self.opened_at
        size = len(frame.encode() if isinstance(frame, str) else frame)
        self.log.append(Entry(direction, at, message, size))
        return at


def describe(entry: Entry) -> str:
    """One message as a short line: its type and id, and the fields that matter for it."""
    message = entry.message
    if message is None:
        return f"raw frame, {entry.size} bytes"
    kind, id = message["type"], message.get("id")
    if kind == "ask":
        extra = {k: message[k] for k in ("document_id", "max_tokens") if k in message}
        return f"ask {id}: {message['question']!r} {extra if extra else ''}".rstrip()
    if kind == "start":
        truncated = message["history_truncated"]
        return f"start {id} {message['request_id']} history_truncated={truncated}"
    if kind == "delta":
        return f"delta {id} #{message['index']}: {message['text']!r}"
    if kind == "end":
        usage = message["usage"]
        return (
            f"end {id} stop_reason={message['stop_reason']} input_tokens={usage['input_tokens']} "
            f"output_tokens={usage['output_tokens']} ttft_ms={message['ttft_ms']}"
        )
    if kind == "error":
        problem = message["problem"]
        return (
            f"error {id} {problem['code']} ({problem['status']}, retryable="
            f"{problem['retryable']}): {problem['detail']}"
        )
    return f"{kind} {id}" if id is not None else kind


def _line(at: float, direction: str, text: str, width: int | None) -> str:
    line = f"{at:7.3f} s {direction} {text}"
    return line if width is None or len(line) <= width else line[: width - 1] + "…"
