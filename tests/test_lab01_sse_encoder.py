"""Lab 01: the SSE wire format (WHATWG server-sent events)."""

from __future__ import annotations

import httpx
import httpx_sse
import pytest
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

# The three Lab Tasks of notebook 01: data lines, single-line fields, keep-alive comments.
data_task = pytest.mark.lab("01", task=1)
field_task = pytest.mark.lab("01", task=2)
comment_task = pytest.mark.lab("01", task=3)

MULTI_LINE = "first line\nsecond line\r\nthird line\rfourth line"


@data_task
def test_multi_line_data_becomes_one_data_line_per_line(impl):
    encoded = impl.sse.encode_event(MULTI_LINE, event="delta")
    assert encoded == (
        b"event: delta\n"
        b"data: first line\n"
        b"data: second line\n"
        b"data: third line\n"
        b"data: fourth line\n"
        b"\n"
    )


@data_task
def test_data_with_blank_and_trailing_lines_keeps_every_line(impl):
    encoded = impl.sse.encode_event("a\n\nb\n")
    assert encoded == b"data: a\ndata: \ndata: b\ndata: \n\n"
    assert impl.sse.parse_stream(encoded.decode())[0]["data"] == "a\n\nb\n"


@field_task
@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("bad", ["delta\nevent: admin", "x\r\ndata: injected", "x\ry"])
def test_line_breaks_in_event_or_id_are_refused(impl, field, bad):
    with pytest.raises(impl.sse.SSEFieldError):
        impl.sse.encode_event("ok", **{field: bad})


@field_task
def test_nul_in_id_is_refused_and_plain_values_pass(impl):
    with pytest.raises(impl.sse.SSEFieldError):
        impl.sse.encode_event("ok", id="7\0")
    assert impl.sse.encode_event("ok", event="end", id=7) == b"id: 7\nevent: end\ndata: ok\n\n"


@field_task
def test_refused_field_is_a_value_error_so_callers_can_handle_it(impl):
    with pytest.raises(ValueError):
        impl.sse.single_line_field("event", "a\nb")


@comment_task
def test_comment_is_a_colon_line_per_line_with_no_blank_line(impl):
    assert impl.sse.encode_comment("ping") == b": ping\n"
    assert impl.sse.encode_comment("") == b":\n"
    assert impl.sse.encode_comment("two\nlines") == b": two\n: lines\n"


@data_task
def test_json_event_is_compact_and_decodes_back(impl):
    encoded = impl.sse.encode_json_event("delta", {"index": 0, "text": "a\nb"}, id=2)
    assert encoded == b'id: 2\nevent: delta\ndata: {"index":0,"text":"a\\nb"}\n\n'


def _app(chunks: list[bytes]) -> Starlette:
    async def stream(request):
        async def body():
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/events", stream)])


@comment_task
@pytest.mark.timeout(30)
def test_a_real_sse_client_reads_back_exactly_what_was_encoded(impl):
    sse = impl.sse
    chunks = [
        sse.encode_comment("keep-alive"),
        sse.encode_event(MULTI_LINE, event="delta", id=1),
        sse.encode_comment("ping"),
        sse.encode_json_event("end", {"stop_reason": "end_turn"}, id=2),
    ]
    with impl.background.BackgroundServer(_app(chunks), name="lab01-test") as server:
        with httpx.Client(timeout=10) as client:
            with httpx_sse.connect_sse(client, "GET", f"{server.url}/events") as source:
                events = list(source.iter_sse())
    assert [(e.event, e.id) for e in events] == [("delta", "1"), ("end", "2")]
    # The client joins data lines with "\n": every kind of line break comes back as one.
    assert events[0].data == "first line\nsecond line\nthird line\nfourth line"
    assert events[1].json() == {"stop_reason": "end_turn"}


# Not lab tests: these parts of the encoder are given, not written by the learner.


def test_retry_must_be_a_non_negative_whole_number(impl):
    assert impl.sse.encode_event(retry_ms=1500) == b"retry: 1500\n\n"
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(impl.sse.SSEFieldError):
            impl.sse.encode_event(retry_ms=bad)


def test_an_event_without_fields_is_refused(impl):
    with pytest.raises(impl.sse.SSEFieldError):
        impl.sse.encode_event()


def test_the_parser_drops_comments_and_carries_the_last_event_id_forward(impl):
    # WHATWG: an event without an id line has the last event id seen, the one a reconnecting
    # browser sends back as Last-Event-ID; a client must not lose it.
    text = ": hello\n\nid: 3\ndata: x\n\ndata: y\n\nid: 4\nevent: end\ndata: z\n\n"
    assert impl.sse.parse_stream(text) == [
        {"event": "message", "data": "x", "id": "3"},
        {"event": "message", "data": "y", "id": "3"},
        {"event": "end", "data": "z", "id": "4"},
    ]
    assert impl.sse.parse_stream("data: first\n\n") == [{"event": "message", "data": "first"}]
