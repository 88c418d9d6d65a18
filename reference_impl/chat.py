"""The WebSocket chat (/v1/chat): one conversation per connection, one answer at a time.

A connection is served by two tasks, in the supervisor shape of the SSE stream:
- the receive loop: reads every client message as it arrives (so a disconnect is noticed at
  once, not at the next send), checks the per-connection limits and routes the message;
- the answer task: encodes what the answer's `StreamSession` (session.py, the same as SSE's)
  yields: `start`, `delta`s and one terminal message.
A `cancel`, a disconnect, a connection limit or a server shutdown cancels the answer task; the
guard's `finally` then closes the model stream at once, even while the model is stalled, and
the task's `finally` closes the session, which bills and frees the admission slot.

Per connection, like an API Gateway WebSocket API [apigw-ws-quotas]: messages up to 128 KB
(else close 1009), idle timeout, maximum connection time, and a message rate. The close codes
and when each is sent are in `contract/asyncapi.yaml`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import edge, wire_ws
from .errors import GatewayError
from .guard import Delta
from .limits import TokenBucket
from .model import ModelRequest, Turn
from .request_id import new_request_id
from .server_bounds import SEND_TEXT
from .session import StreamSession
from .wire_sse import SendWatchdog

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("gateway.chat")

# Close codes (RFC 6455 section 7.4 and the IANA registry; 4000-4999 are private).
GOING_AWAY = 1001  # idle timeout or maximum connection time: reconnect
POLICY_VIOLATION = 1008  # kept sending after being rate limited, or stopped reading
MESSAGE_TOO_BIG = 1009  # as API Gateway does above 128 KB [apigw-ws-quotas]
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013  # too many connections for this key, or its limits are unreachable
UNAUTHORIZED = 4401  # the private-use mirror of HTTP 401

# What the gateway says, in one `error`, before it closes a connection with each code. 1001
# has two causes, so whoever closes with it names the error (see close_when_idle_or_too_old).
CLOSE_ERRORS = {
    POLICY_VIOLATION: (
        "rate_limited",
        "This connection kept sending while rate limited, so it is closed. Slow down.",
    ),
    MESSAGE_TOO_BIG: ("request_too_large", "A message was over the size limit; it is closed."),
    INTERNAL_ERROR: ("internal_error", "The gateway failed; the connection is closed."),
    SERVICE_RESTART: ("shutting_down", "The gateway is restarting; reconnect and ask again."),
}


class AnswerState(Enum):
    """Where an answer is in its life; it only moves down this list."""

    STREAMING = "streaming"
    CANCELLING = "cancelling"  # the client sent `cancel`: end with stop_reason cancelled
    CLOSING = "closing"  # the connection is closing: end with `closing_error`, if there is one
    ENDED = "ended"  # its terminal message is out (or going out): never a second one


@dataclass
class Answer:
    """The answer streaming on a connection, and how far it is in its life."""

    ask_id: str
    question: str
    session: StreamSession
    task: asyncio.Task | None = None
    state: AnswerState = AnswerState.STREAMING
    closing_error: GatewayError | None = None  # what a CLOSING answer's terminal error says
    stopped_because: str = "client_disconnect"  # or "send_timeout": the client stopped reading


class ChatHub:
    """Every chat connection of one app: the per-key count and the shutdown hook (the tickets
    are the admission's, so any worker can redeem one another issued)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.connections: set[ChatConnection] = set()
        self.per_key: dict[str, int] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False

    async def authenticate(self, websocket: HTTPConnection) -> str:
        """The API key of a connection, as a `$connect` authorizer decides it [apigw-ws-auth].

        Programs send `Authorization: Bearer <key>`; browsers, which cannot set headers on a
        WebSocket, send `?ticket=` with a single-use ticket. A key is never read from the URL.
        """
        if "authorization" in websocket.headers:
            return edge.authenticate(websocket, self.settings)
        ticket = websocket.query_params.get("ticket")
        if ticket is None:
            raise GatewayError(
                "unauthorized",
                "Send Authorization: Bearer <key>, or a ticket from POST /v1/chat/tickets as "
                "?ticket=<ticket>. API keys are not accepted in the URL.",
            )
        # Under the `refuse` policy a redeem raises limits_unavailable while Redis is down.
        key = await self.gateway.admission.redeem_ticket(ticket)
        if key is None:
            raise GatewayError(
                "unauthorized", "The ticket is unknown, already used or expired; get a new one."
            )
        return key

    async def serve(self, websocket: WebSocket) -> None:
        """Authenticate, count the connection against its key, and serve it until it closes."""
        self.loop = asyncio.get_running_loop()
        try:
            throttle = self.gateway.auth_throttle  # wrong keys and tickets per address
            key = await throttle.authenticate(
                websocket, self.settings.api_keys, lambda: self.authenticate(websocket)
            )
        except GatewayError as error:
            # 1013 for limits_unavailable and for an address throttled after wrong keys.
            close_code = UNAUTHORIZED if error.code == "unauthorized" else TRY_AGAIN_LATER
            await self.refuse(websocket, error, close_code)
            return
        if self.stopping:
            error = GatewayError("shutting_down", "The gateway is restarting; reconnect.")
            await self.refuse(websocket, error, SERVICE_RESTART)
            return
        if self.per_key.get(key, 0) >= self.settings.ws_max_connections_per_key:
            limit = self.settings.ws_max_connections_per_key
            error = GatewayError(
                "rate_limited",
                f"This API key already has {limit} chat connections open, the most it may have.",
                retry_after_seconds=1.0,
            )
            await self.refuse(websocket, error, TRY_AGAIN_LATER)
            return
        connection = ChatConnection(self, websocket, key)
        self.per_key[key] = self.per_key.get(key, 0) + 1
        self.connections.add(connection)
        self.gateway.metrics.ws_connections.inc()
        try:
            await connection.run()
        finally:
            self.gateway.metrics.ws_connections.dec()
            self.connections.discard(connection)
            self.per_key[key] -= 1

    async def refuse(self, websocket: WebSocket, error: GatewayError, code: int) -> None:
        """Accept, say why in one `error` message, close with `code`: a browser cannot read
        the HTTP status of a refused handshake (it sees only 1006), but it can read these."""
        self.gateway.reject(error.code)
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.accept()
            message = wire_ws.error_message(None, error, new_request_id())
            await websocket.send_text(wire_ws.encode(message))
            await websocket.close(code, error.code)

    async def shutdown(self) -> None:
        """Every open answer gets an `error` (shutting_down), then every socket closes 1012."""
        self.stopping = True
        closing = [c.close(SERVICE_RESTART, "server restarting") for c in list(self.connections)]
        await asyncio.gather(*closing, return_exceptions=True)


class ChatConnection:
    """One open chat connection: its conversation, its limits and its answer, if any."""

    def __init__(self, hub: ChatHub, websocket: WebSocket, key: str) -> None:
        self.hub = hub
        self.gateway = hub.gateway
        self.settings = hub.settings
        self.websocket = websocket
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.opened_at = self.last_activity = self.loop.time()
        self.bucket = TokenBucket(
            self.settings.ws_messages_per_second, self.settings.ws_message_burst
        )
        self.refused_in_a_row = 0
        self.answer: Answer | None = None
        self.closed = False
        # Set once `close` begins: frames that arrive while it says its last word go unanswered,
        # so nothing follows the closing error.
        self.closing = False
        # The conversation: earlier turns, oldest first, and their size in tokens.
        self.history: deque[Turn] = deque()
        self.history_tokens = 0  # the sum of the turns' `tokens`
        # What the conversation is about: the document fields of the last ask that named one.
        self.document: dict[str, str] = {}
        # For errors about the connection itself (no ask to name).
        self.request_id = new_request_id()
        self.watchdog: SendWatchdog | None = None  # from `run` on
        self.dropping: asyncio.Task | None = None  # `drop_not_reading`, once a send timed out
        self.run_task: asyncio.Task | None = None
        # Sends a message at once when it can go without waiting (server_bounds.SEND_TEXT).
        self.send_now = websocket.scope.get("extensions", {}).get(SEND_TEXT)

    # --- the receive loop -------------------------------------------------------------------

    async def run(self) -> None:
        await self.websocket.accept()
        self.touch()
        timer = asyncio.create_task(self.close_when_idle_or_too_old())
        # A client that stops reading: one send blocked this long drops the connection, as
        # an SSE stream is dropped (one timer for the connection, not one per message).
        self.watchdog = SendWatchdog(self.settings.send_timeout_seconds)
        self.run_task = asyncio.current_task()
        try:
            while not self.closed:
                frame = await self.websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                if self.closing:
                    continue  # read until the client's close, answer nothing more
                self.touch()
                if await self.within_limits(frame):
                    await self.handle(frame)
        except asyncio.CancelledError:
            if self.dropping is None or not self.dropping.done():
                raise
            # drop_not_reading ended this loop: the connection is over, the close is queued.
            asyncio.current_task().uncancel()
        except Exception:  # a bug: log it, tell the client only that it failed
            log.exception("chat connection failed")
            await self.close(INTERNAL_ERROR, "internal error")
        finally:
            self.run_task = None  # out of the loop: drop_not_reading has nothing to cancel
            timer.cancel()
            self.watchdog.stop()
            # The client left (or we closed): stop the model now and bill what it generated.
            await self.stop_answer()
            self.closed = True
            if self.dropping is not None:
                await asyncio.wait([self.dropping])

    def touch(self) -> None:
        """A message went either way: the idle timer starts again."""
        self.last_activity = self.loop.time()

    async def within_limits(self, frame: dict[str, Any]) -> bool:
        """Enforce the per-connection limits on one received frame; False drops the frame."""
        # BEGIN SOLUTION lab07: enforce the per-connection limits, message size then message rate
        text, data = frame.get("text"), frame.get("bytes")
        size = len(text.encode()) if text is not None else len(data or b"")
        if size > self.settings.ws_max_message_bytes:
            # As API Gateway does for a message above 128 KB [apigw-ws-quotas].
            self.gateway.reject("request_too_large")
            await self.close(MESSAGE_TOO_BIG, "message too big")
            return False
        wait = self.bucket.try_take()
        if wait == 0:
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        self.gateway.reject("rate_limited")
        if self.refused_in_a_row >= self.settings.ws_rate_limited_before_close:
            await self.close(POLICY_VIOLATION, "rate limit exceeded")
            return False
        error = GatewayError(
            "rate_limited",
            f"More than {self.settings.ws_messages_per_second:g} messages per second (burst "
            f"{self.settings.ws_message_burst}) on this connection; the message was dropped.",
            retry_after_seconds=wait,
        )
        await self.send(wire_ws.error_message(self.id_of(frame), error, self.request_id))
        return False
        # END SOLUTION

    def id_of(self, frame: dict[str, Any]) -> str | None:
        try:
            return wire_ws.route(frame).message.get("id")
        except GatewayError:
            return None

    async def handle(self, frame: dict[str, Any]) -> None:
        try:
            routed = wire_ws.route(frame)
        except wire_ws.Unroutable as error:  # the $default route
            self.gateway.reject(error.code)
            await self.send(wire_ws.error_message(error.message_id, error, self.request_id))
            return
        if routed.route == "ask":
            await self.ask(routed.message)
        elif routed.route == "cancel":
            await self.cancel(routed.message)
        else:
            await self.send(wire_ws.PONG)

    # --- ask: admission, then the answer task -----------------------------------------------

    async def ask(self, message: dict[str, Any]) -> None:
        ask_id, request_id = message["id"], new_request_id()
        if self.answer is not None:
            # One answer at a time: a second one would interleave its tokens with the first.
            error = GatewayError(
                "busy",
                f"Answer {self.answer.ask_id} is still streaming; cancel it or wait for its end.",
            )
            self.gateway.reject(error.code)
            await self.send(wire_ws.error_message(ask_id, error, request_id))
            return
        try:
            await self.gateway.admission.check_rate(self.key)
            model_request, truncated = self.model_request(message)
            session = await StreamSession.admit(self.gateway, self.key, model_request, request_id)
        except GatewayError as error:
            self.gateway.reject(error.code)
            await self.send(wire_ws.error_message(ask_id, error, request_id))
            return
        answer = Answer(ask_id, message["question"], session)
        self.answer = answer
        answer.task = asyncio.create_task(self.stream_answer(answer, truncated))

    def model_request(self, message: dict[str, Any]) -> tuple[ModelRequest, bool]:
        """The model request for an ask, with as much of the conversation as the budget allows.

        The document, max_tokens cap and prompt limit are checked by the same edge code as HTTP.
        """
        document = edge.document_of(message) or self.document
        if not document:
            raise GatewayError(
                "invalid_request",
                "The first ask of a conversation must name a document_id or send a document.",
            )
        request = edge.model_request(edge.ask_from_message(message, document), self.settings)
        self.document = document
        truncated = False
        while self.history and self.history_tokens > self.settings.ws_history_tokens:
            dropped = self.history.popleft()  # oldest first
            self.history_tokens -= dropped.tokens
            truncated = True
        return replace(request, history=tuple(self.history)), truncated

    def remember(self, turn: Turn) -> None:
        self.history.append(turn)
        self.history_tokens += turn.tokens

    async def stream_answer(self, answer: Answer, history_truncated: bool) -> bool:
        """Stream one answer: start, deltas, and one terminal message, however it ends.

        Returns whether its terminal message was the `closing_error` of a closing connection.
        """
        session = answer.session
        ask_id, request_id = answer.ask_id, session.request_id
        text: list[str] = []
        try:
            await self.send(wire_ws.start_message(ask_id, request_id, history_truncated))
            async for item in session.items:
                if isinstance(item, Delta):
                    text.append(item.text)
                    await self.send(wire_ws.encode_delta(ask_id, item.index, item.text))
                else:
                    answer.state = AnswerState.ENDED
                    await self.send(wire_ws.answer_message(ask_id, item))
        except GatewayError as error:
            answer.state = AnswerState.ENDED
            await self.send(wire_ws.error_message(ask_id, error, request_id))
        except asyncio.CancelledError:
            state = answer.state
            if state is AnswerState.CANCELLING:
                asyncio.current_task().uncancel()  # the client's cancel ends it; see `cancel`
                await self.end_cancelled(answer)
            elif state is AnswerState.CLOSING and answer.closing_error is not None:
                asyncio.current_task().uncancel()
                answer.state = AnswerState.ENDED
                error = session.fail(answer.closing_error)
                await session.close()
                await self.send(wire_ws.error_message(ask_id, error, request_id))
                return True
            else:  # the client left, or the connection closes with nothing to say
                raise
        finally:
            answer.state = AnswerState.ENDED
            try:
                await session.close(answer.stopped_because)
            finally:
                if session.progress.finished is not None:
                    # What the client saw becomes the context of the next question.
                    self.remember(Turn(answer.question, "".join(text)))
                if self.answer is answer:
                    self.answer = None
        return False

    # --- cancel ---------------------------------------------------------------------------

    async def cancel(self, message: dict[str, Any]) -> None:
        """The client's `cancel`: stop the streaming answer it names, and its model, now.

        The lab's task, first half (the second is `end_cancelled`). A cancel that names no
        streaming answer is refused below (given). Otherwise: set `answer.state` to
        CANCELLING (so the answer's task knows the cancel is the client's), cancel
        `answer.task`, and wait until that task has ended (`asyncio.wait`), so that when this
        returns the model has stopped, `end` with stop_reason `cancelled` is sent, and the
        next message is handled with no answer streaming.
        """
        answer = self.answer
        if (
            answer is None
            or answer.state is not AnswerState.STREAMING
            or (answer.ask_id != message["id"])
        ):
            error = GatewayError(
                "invalid_request",
                f"No answer with id {message['id']} is streaming; it may have just ended.",
            )
            self.gateway.reject(error.code)
            await self.send(wire_ws.error_message(message["id"], error, self.request_id))
            return
        # BEGIN SOLUTION lab07: cancel the answer's task and wait until it has ended
        answer.state = AnswerState.CANCELLING
        answer.task.cancel()
        # The task stops the model and sends `end` (`end_cancelled`); wait for it, so the next
        # message is handled with no answer streaming.
        await asyncio.wait([answer.task])
        # END SOLUTION

    async def end_cancelled(self, answer: Answer) -> None:
        """End a cancelled answer, in its own task: stop the model, then send its `end`.

        The lab's task, second half. Called in the answer's task once the cancel has reached it
        (its `CancelledError` is caught and uncancelled), with `answer.state` CANCELLING. Take
        the answer's end from `answer.session.cancel()` (stop_reason `cancelled`, the usage of
        what was delivered), mark the answer ENDED (no second terminal message), close the
        session with `await answer.session.close()` (this stops the model and bills the
        partial answer) and only then send the end:
        `await self.send(wire_ws.answer_message(answer.ask_id, end))`.
        """
        # BEGIN SOLUTION lab07: end the cancelled answer: stop the model, then send its end
        end = answer.session.cancel()
        answer.state = AnswerState.ENDED
        await answer.session.close()  # the model stops here, before anything is sent
        await self.send(wire_ws.answer_message(answer.ask_id, end))
        # END SOLUTION

    async def stop_answer(self, error: GatewayError | None = None) -> bool:
        """Stop the answer task, if one runs, and wait until the model has stopped. With an
        `error`, a streaming answer ends with it; returns whether one did."""
        answer = self.answer
        if answer is None or answer.task is None or answer.task.done():
            return False
        if answer.state is AnswerState.STREAMING:
            answer.state, answer.closing_error = AnswerState.CLOSING, error
        answer.task.cancel()
        await asyncio.wait([answer.task])
        task = answer.task
        return not task.cancelled() and task.exception() is None and task.result()

    # --- sending and closing ----------------------------------------------------------------

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send one message: a dict, or a delta already encoded (wire_ws.encode_delta)."""
        if self.closed:
            return
        text = message if type(message) is str else wire_ws.encode(message)
        if self.send_now is not None and self.send_now(text):
            self.touch()
            return
        # It has to wait for the client (or the server has no shortcut): the ASGI way.
        watchdog = self.watchdog
        if watchdog is not None:
            watchdog.sending_since, watchdog.sender = self.loop.time(), asyncio.current_task()
        try:
            await self.websocket.send_text(text)
        except (RuntimeError, OSError, WebSocketDisconnect):
            self.closed = True  # the client is gone; the receive loop ends the connection
            return
        except asyncio.CancelledError:
            if watchdog is None or not watchdog.fired or self.dropping is not None:
                raise
            # The watchdog's cancel: the client has not read for the send timeout.
            asyncio.current_task().uncancel()
            self.closed = True  # nothing more can reach it
            self.dropping = asyncio.create_task(self.drop_not_reading())
            return
        finally:
            if watchdog is not None:
                watchdog.sending_since = None
        self.touch()

    async def drop_not_reading(self) -> None:
        """End the answer of a client that stopped reading and close with 1008.

        No `error` first: the client is not reading, so nothing more reaches it. 1008 (policy
        violation), not 1011: the gateway did not fail, the client broke the protocol's
        assumption that it reads what it asked for. The model stops and the slot is freed at
        once; the close itself may take the server's close timeout, as the close frame waits
        behind what the client has not read.
        """
        log.info(
            "chat client stopped reading for %g s; closing", self.settings.send_timeout_seconds
        )
        answer = self.answer
        if answer is not None:
            answer.stopped_because = "send_timeout"
        await self.stop_answer()
        # The close frame is queued behind the unread messages at once; the closing handshake
        # cannot complete while the client does not read, so it is not waited for longer.
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, TimeoutError):
            async with asyncio.timeout(self.settings.send_timeout_seconds):
                await self.websocket.close(POLICY_VIOLATION, "send timeout: client not reading")
        if self.run_task is not None and not self.run_task.done():
            self.run_task.cancel()  # its receive would wait for a client that never reads

    async def close(self, code: int, reason: str, error: GatewayError | None = None) -> None:
        """Say why in one `error`, then close with `code`.

        The error is the streaming answer's terminal message, with the ask's id, so that answer
        still ends with exactly one; with no answer streaming, it is about the connection (id
        null). `error` defaults to the one CLOSE_ERRORS gives for `code`.
        """
        if self.closed:
            return
        self.closing = True
        if error is None and code in CLOSE_ERRORS:
            error = GatewayError(*CLOSE_ERRORS[code])
        answer_told = await self.stop_answer(error)
        if error is not None and not answer_told:
            await self.send(wire_ws.error_message(None, error, self.request_id))
        self.closed = True
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.websocket.close(code, reason)

    async def close_when_idle_or_too_old(self) -> None:
        """Close with 1001 when no message went either way for the idle timeout, or when the
        connection reached its maximum time [apigw-ws-quotas]. Wakes up only at the next
        deadline: messages just move `last_activity`, as the guard's deadlines do."""
        settings = self.settings
        too_old_at = self.opened_at + settings.ws_max_connection_seconds
        while True:
            idle_at = self.last_activity + settings.ws_idle_timeout_seconds
            now = self.loop.time()
            if now >= too_old_at:
                reason = "maximum connection time reached"
                error = GatewayError(
                    "connection_expired",
                    f"The connection reached its maximum time of "
                    f"{settings.ws_max_connection_seconds:g} s; open a new one.",
                )
                break
            if now >= idle_at:
                reason = "idle timeout"
                error = GatewayError(
                    "connection_idle",
                    f"No message either way for {settings.ws_idle_timeout_seconds:g} s; "
                    "open a new connection (send `ping` to keep one open).",
                )
                break
            await asyncio.sleep(min(idle_at, too_old_at) - now)
        await self.close(GOING_AWAY, reason, error)
