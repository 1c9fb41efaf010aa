"""The shared retrying transport and the background loop for sync callers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from promptguard.portal import portal_loop, run_sync
from promptguard.transport import RetryTransport


def _counting(responses: list) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        r = responses[min(len(seen), len(responses)) - 1]
        if isinstance(r, Exception):
            raise r
        return r

    return httpx.MockTransport(handler), seen


async def test_retries_statuses_and_connection_errors_then_succeeds():
    inner, seen = _counting([httpx.Response(503), httpx.ConnectError("refused"), httpx.Response(200, json={"ok": 1})])
    async with httpx.AsyncClient(transport=RetryTransport(inner, retries=2, backoff=0.001)) as c:
        r = await c.post("http://up.test/v1/chat/completions", content=b'{"a": 1}')
    assert r.status_code == 200 and len(seen) == 3
    assert all(req.content == b'{"a": 1}' for req in seen)  # the body is sent again in full


async def test_gives_up_with_the_last_answer_and_never_retries_a_read_timeout():
    inner, seen = _counting([httpx.Response(502)])
    async with httpx.AsyncClient(transport=RetryTransport(inner, retries=1, backoff=0.001)) as c:
        assert (await c.get("http://up.test/")).status_code == 502 and len(seen) == 2
    inner, seen = _counting([httpx.ReadTimeout("slow")])
    async with httpx.AsyncClient(transport=RetryTransport(inner, retries=3, backoff=0.001)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get("http://up.test/")
    assert len(seen) == 1
    inner, seen = _counting([httpx.Response(429, headers={"retry-after": "0"}), httpx.Response(200)])
    async with httpx.AsyncClient(transport=RetryTransport(inner, retries=1, backoff=0.001, statuses={429})) as c:
        assert (await c.get("http://up.test/")).status_code == 200 and len(seen) == 2


async def test_sync_callers_share_one_background_loop_even_inside_a_running_loop():
    async def where() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    inside = run_sync(where())  # called from a coroutine: must not touch this loop
    assert inside is portal_loop() and inside is not asyncio.get_running_loop()
    assert run_sync(where()) is inside
