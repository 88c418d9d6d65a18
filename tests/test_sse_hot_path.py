"""The per-token path of an SSE stream: the hand-written delta encoder and the send hook.

Both exist for speed (`make bench`); these tests make sure neither changed what a client sees.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from sse_starlette.sse import EventSourceResponse

from reference_impl import sse
from reference_impl.wire_sse import WatchedEventSourceResponse

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


def test_the_send_hook_the_gateway_overrides_is_the_one_sse_starlette_calls():
    # WatchedEventSourceResponse replaces sse-starlette's per-send cancel scope with its
    # watchdog by overriding this method. If a new sse-starlette renamed it, the override would
    # be silently dead; fail here instead.
    assert callable(EventSourceResponse.__dict__.get("_send_with_timeout"))
    assert "_send_with_timeout" in WatchedEventSourceResponse.__dict__
