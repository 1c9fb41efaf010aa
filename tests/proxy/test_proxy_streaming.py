"""Reading the upstream's server-sent events (httpx-sse) and re-sending them."""

from __future__ import annotations

import json

import httpx
from httpx_sse import ServerSentEvent

from promptguard.proxy.streaming import encode_event, upstream_events


def _response(chunks: list[bytes]) -> httpx.Response:
    async def body():
        for c in chunks:
            yield c

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


async def test_cr_and_lf_in_different_chunks_do_not_cut_the_stream():
    """The hand-written parser this replaced merged the two events below into one
    (a CR at the end of one chunk, its LF at the start of the next)."""
    chunks = [b'data: {"a": 1}\r\n\r', b'\ndata: {"b": 2}\r', b"\n\r\n", b": keep-alive\r\n\r\ndata: [DONE]\r\n\r\n"]
    events = [ev async for ev in upstream_events(_response(chunks), 5.0)]
    assert [e.data for e in events] == ['{"a": 1}', '{"b": 2}', "[DONE]"]


async def test_a_stream_cut_mid_event_yields_nothing_for_it():
    events = [ev async for ev in upstream_events(_response([b"data: {\"a\": 1}\n\n", b"data: {\"b\""]), 5.0)]
    assert [json.loads(e.data) for e in events] == [{"a": 1}]


def test_events_are_re_sent_with_their_fields():
    assert encode_event(ServerSentEvent(data='{"x": 1}')) == b'data: {"x": 1}\n\n'
    ev = ServerSentEvent(event="delta", data="a\nb", id="7", retry=100)
    assert encode_event(ev) == b"event: delta\nid: 7\nretry: 100\ndata: a\ndata: b\n\n"
    assert b"id:" not in encode_event(ev, previous_id="7")


async def test_any_line_ending_split_anywhere():
    """CR, LF or CRLF line endings, with the stream cut into pieces at every position."""
    for nl in (b"\n", b"\r", b"\r\n"):
        raw = b"data: {\"a\": 1}" + nl + nl + b"data: {\"b\": 2}" + nl + nl + b"data: [DONE]" + nl + nl
        for size in (1, 2, 3, 7):
            chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
            events = [ev.data async for ev in upstream_events(_response(chunks), 5.0)]
            assert events == ['{"a": 1}', '{"b": 2}', "[DONE]"], (nl, size)
