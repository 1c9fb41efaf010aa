"""Streamed answers: server-sent events from the upstream, held back until checked.

Events are read with `httpx-sse` (a CR and its LF may arrive in different chunks;
comments and keep-alives are not events) and re-sent in order, each as the
`data:` (and `event:`, `id:`, `retry:`) lines it carried. Text-carrying events are held
until the answer text accumulated so far has been checked and at least `holdback`
characters stay unreleased behind them; a check that blocks cuts the stream there with
a final error event (the client never sees the held text). The answer is re-checked
every `check_every` new characters and once more at the end, before `[DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import httpx
from httpx_sse import EventSource, ServerSentEvent

from .errors import ProxyError
from .upstream import deadline_error

__all__ = ["HoldBack", "upstream_events", "encode_event", "parse_data", "MAX_EVENT_CHARS"]

MAX_EVENT_CHARS = 8 * 1024 * 1024


def encode_event(ev: ServerSentEvent, previous_id: str = "") -> bytes:
    """One event as it goes to the client (an `id:` only where it changed)."""
    lines = [] if ev.event == "message" else [f"event: {ev.event}"]
    if ev.id and ev.id != previous_id:
        lines.append(f"id: {ev.id}")
    if ev.retry is not None:
        lines.append(f"retry: {ev.retry}")
    lines.extend(f"data: {line}" for line in ev.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


async def upstream_events(resp: httpx.Response, read_timeout: float,
                          deadline: float | None = None) -> AsyncIterator[ServerSentEvent]:
    """The upstream's events; stalls, broken connections, over-long events and the
    whole stream's deadline (a `time.monotonic()` value) become ProxyErrors. A stream
    that ends in the middle of an event yields nothing for it."""
    it = EventSource(resp).aiter_sse()
    try:
        while True:
            try:
                async with asyncio.timeout(None if deadline is None else max(0.0, deadline - time.monotonic())):
                    ev = await anext(it)
            except StopAsyncIteration:
                return
            if len(ev.data) > MAX_EVENT_CHARS:
                raise ProxyError(502, "upstream_invalid_response", "upstream sent an over-long server-sent event")
            yield ev
    except TimeoutError:
        raise deadline_error() from None
    except httpx.TimeoutException:
        raise ProxyError(504, "upstream_timeout", f"upstream stream stalled for more than {read_timeout:g}s") from None
    except httpx.HTTPError as e:
        raise ProxyError(502, "upstream_stream_cut", f"upstream stream broke: {type(e).__name__}") from None


def parse_data(ev: ServerSentEvent) -> object:
    try:
        return json.loads(ev.data)
    except ValueError:
        raise ProxyError(502, "upstream_invalid_response",
                         f"upstream sent an event that is not JSON: {ev.data[:80]!r}") from None


CheckFn = Callable[[dict[int, str], bool], Awaitable[ProxyError | None]]


@dataclass
class HoldBack:
    """Holds encoded events until the text behind them is checked."""

    check: CheckFn  # (texts so far, final) → error that cuts the stream, or None
    holdback: int = 64
    check_every: int = 32
    texts: dict[int, str] = field(default_factory=dict)
    _pending: deque[tuple[bytes, int]] = field(default_factory=deque)
    _held: int = 0
    _unchecked: int = 0
    checks: int = 0

    def _releasable(self) -> bool:
        return bool(self._pending) and self._held - self._pending[0][1] >= self.holdback

    async def push(self, event: bytes, n_chars: int) -> list[bytes]:
        """Queue an event carrying `n_chars` new answer characters; returns the bytes
        that may be sent now. Raises ProxyError when a check blocks the answer."""
        self._pending.append((event, n_chars))
        self._held += n_chars
        self._unchecked += n_chars
        if not self._releasable():
            return []
        if self._unchecked:
            if self._unchecked < self.check_every and self._held < self.holdback + self.check_every:
                return []
            await self._run_check(final=False)
        out = []
        while self._releasable():
            e, n = self._pending.popleft()
            self._held -= n
            out.append(e)
        return out

    async def _run_check(self, final: bool) -> None:
        self.checks += 1
        self._unchecked = 0
        err = await self.check(self.texts, final)
        if err is not None:
            self._pending.clear()
            self._held = 0
            raise err

    async def finish(self) -> list[bytes]:
        """Final check over the whole answer, then everything still held."""
        await self._run_check(final=True)
        out = [e for e, _ in self._pending]
        self._pending.clear()
        self._held = 0
        return out

    def add_text(self, texts: dict[int, str]) -> int:
        n = 0
        for i, t in texts.items():
            self.texts[i] = self.texts.get(i, "") + t
            n += len(t)
        return n
