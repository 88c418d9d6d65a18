"""The per-token path of an SSE stream: the hand-written delta encoder, the gateway's own send
loop, and the clean-up that replaced the generator wrapping every chunk; and the WebSocket chat's
delta encoder.

They exist for speed (`make bench`); these tests make sure none changed what a client sees or
what is billed.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st
from support import API_KEY, QUESTION, ModelThatNeverWaits

from reference_impl import sse, wire_ws
from reference_impl.guard import Delta

# Any text a model may send: line breaks, quotes, backslashes, control and non-BMP characters,
# and lone surrogates (a model's output is not always well-formed Unicode).
TEXT = st.text(st.characters(exclude_categories=()))


@given(index=st.integers(min_value=0, max_value=10**9), text=TEXT, id=st.integers(1, 10**9))
def test_the_delta_encoder_writes_the_same_bytes_as_the_general_one(index, text, id):
    fast = sse.encode_delta_event(index, text, id)
    assert fast == sse.encode_json_event("delta", {"index": index, "text": text}, id=id)
    (event,) = sse.parse_stream(fast.decode())
    assert event == {"event": "delta", "id": str(id), "data": event["data"]}
    assert json.loads(event["data"]) == {"index": index, "text": text}


@given(ask_id=TEXT, index=st.integers(min_value=0, max_value=10**9), text=TEXT)
def test_the_chat_delta_encoder_writes_the_same_text_as_the_general_one(ask_id, index, text):
    fast = wire_ws.encode_delta(ask_id, index, text)
    assert fast == wire_ws.encode(wire_ws.answer_message(ask_id, Delta(index, text)))
    assert json.loads(fast) == {"type": "delta", "id": ask_id, "index": index, "text": text}


def test_the_stream_is_sent_by_the_gateways_own_loop_not_sse_starlettes(start_gateway, monkeypatch):
    # WatchedEventSourceResponse keeps sse-starlette's headers and settings but sends the
    # stream itself (one task, pings from the watchdog's timer). If a change sent it through
    # sse-starlette's task group again, every stream would pay for four tasks; fail here.
    from sse_starlette.sse import EventSourceResponse

    used: list[str] = []

    async def sse_starlettes_loop(self, send):
        used.append("_stream_response")

    monkeypatch.setattr(EventSourceResponse, "_stream_response", sse_starlettes_loop)
    gateway = start_gateway()
    client = gateway.client()
    with client.http.stream("POST", "/v1/ask/stream", json=QUESTION) as response:
        received = response.read()
    assert response.status_code == 200 and received.count(b"event: delta") >= 2
    assert received.rstrip().rsplit(b"\n\n", 1)[-1].count(b"event: end") == 1
    assert used == []


class ModelThatWillNotClose:
    """Answers, then hangs in its clean-up: the close step must give up on it, not the stream."""

    name = "stuck-on-close"

    async def stream(self, request):
        from reference_impl.model import ModelStop, TextDelta

        try:
            for word in ("one", " two", " three"):
                yield TextDelta(word)
            yield ModelStop("end_turn", request.prompt_tokens, 3)
        finally:
            await asyncio.Event().wait()  # never set


def test_a_model_that_will_not_close_cannot_hang_the_stream_or_its_bill(start_gateway, monkeypatch):
    from reference_impl import wire_sse

    monkeypatch.setattr(wire_sse, "CLOSE_TIMEOUT_SECONDS", 0.3)
    gateway = start_gateway(model=ModelThatWillNotClose())
    result = gateway.client().stream(QUESTION)  # returns only once the stream has closed
    assert result.names == ["start", "delta", "delta", "delta", "end"]
    # Settled although the model never finished closing: slot freed, tokens billed.
    assert gateway.metric("gateway_streams_active") == 0
    assert gateway.metric("gateway_model_tokens_generated_total", model="stuck-on-close") == 3


# --- an answer's maker writes its events to a waiting reader's connection itself ---------------


def test_a_paced_answer_goes_out_from_its_maker_every_event_once_and_in_order(
    start_gateway, monkeypatch
):
    # While the stream's reader waits for the next event, the task making the answer writes
    # it to the connection itself (replay.MemoryReplay, wire_sse.DirectWrite), instead of
    # waking the reader for each token. Fail if that path is not taken, or if an event is
    # lost, doubled or out of order on the way.
    from reference_impl import server_bounds

    written: list[bytes] = []
    write_body = server_bounds.BodyAwareCycle.write_body

    def counted(self, data: bytes) -> bool:
        done = write_body(self, data)
        if done:
            written.append(data)
        return done

    monkeypatch.setattr(server_bounds.BodyAwareCycle, "write_body", counted)
    gateway = start_gateway(fake_tokens_per_second=200)
    result = gateway.client().stream({**QUESTION, "max_tokens": 40})
    assert result.names == ["start", *["delta"] * 40, "end"]
    assert [int(event["id"]) for event in result.events] == list(range(1, 43))
    deltas = [json.loads(event["data"]) for event in result.events if event["event"] == "delta"]
    assert [delta["index"] for delta in deltas] == list(range(40))
    # Most tokens came while the reader waited; each written once, as one whole event.
    assert len(written) >= 20
    assert all(piece.count(b"\n\n") == 1 for piece in written)
    assert len(set(written)) == len(written)


def test_events_a_model_makes_in_one_turn_of_the_loop_go_out_in_one_write(
    start_gateway, monkeypatch
):
    # A model that never waits makes many events before the loop turns; each is taken by the
    # connection (write_body) and all go out in one write when the turn ends, as they did in
    # one piece through the reader. Fail on a write per event, or on anything lost.
    from reference_impl import server_bounds

    taken: list[bool] = []
    writes = [0]  # the connection's writes once the answer has started
    write_body = server_bounds.BodyAwareCycle.write_body

    class CountedTransport:
        def __init__(self, transport) -> None:
            self.transport = transport

        def write(self, data: bytes) -> None:
            writes[0] += 1
            self.transport.write(data)

        def __getattr__(self, name: str):
            return getattr(self.transport, name)

    def counted_body(self, data: bytes) -> bool:
        if not isinstance(self.transport, CountedTransport):
            self.transport = CountedTransport(self.transport)
        done = write_body(self, data)
        taken.append(done)
        return done

    monkeypatch.setattr(server_bounds.BodyAwareCycle, "write_body", counted_body)
    gateway = start_gateway(model=ModelThatNeverWaits(), max_tokens_cap=5000)
    result = gateway.client().stream({**QUESTION, "max_tokens": 3000})
    assert result.names == ["start", *["delta"] * 3000, "end"]
    assert [int(event["id"]) for event in result.events] == list(range(1, 3003))
    assert taken.count(True) >= 1000  # most events were taken by the connection...
    assert writes[0] <= taken.count(True) / 4  # ...and written several at a time


def test_an_event_the_maker_cannot_write_goes_out_by_the_reader_in_order():
    # The client's buffer is full (DirectWrite.write says False): the reader is woken and
    # sends what it has not seen, so nothing is lost or doubled; an event made before the
    # reader has caught up waits for it (never overtakes); once it waits again, the maker
    # writes again.
    from reference_impl.replay import MemoryReplay
    from reference_impl.settings import Settings
    from reference_impl.wire_sse import DirectWrite

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        buffer = MemoryReplay(Settings())
        await buffer.open("req_d", API_KEY)
        direct, written, refuse = DirectWrite(), [], {b"e3"}

        def write(event: bytes) -> bool:
            if event in refuse:
                return False
            written.append(event)
            return True

        direct.write = write
        pieces: list[bytes] = []

        async def read() -> None:
            async for piece in buffer.read("req_d", 0, direct):
                pieces.append(piece)

        reader = asyncio.create_task(read())
        for event_id in range(1, 7):
            if event_id != 4:  # 4 comes right after 3, before the woken reader has run
                await asyncio.sleep(0.01)
            await buffer.append("req_d", event_id, b"e%d" % event_id)
        await buffer.finish("req_d")
        await asyncio.wait_for(reader, 5)
        return written, pieces

    written, pieces = asyncio.run(scenario())
    assert written == [b"e1", b"e2", b"e5", b"e6"]
    assert pieces == [b"e3e4"]  # 4 waited for 3, and went with it
