"""Server-sent-event pass-through with a hold-back window for answer checks.

Upstream events are re-emitted byte for byte, in order. Text-carrying events are
held until the answer text accumulated so far has been checked and at least
`holdback` characters stay unreleased behind them; a check that blocks cuts the
stream there with a final error event (the client never sees the held text).
The answer is re-checked every `check_every` new characters and once more at the
end, before `[DONE]` is passed on.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import httpx

from .errors import ProxyError

__all__ = ["iter_sse", "SSEEvent", "HoldBack", "event_text"]


@dataclass
class SSEEvent:
    raw: bytes  # the event's lines, without the blank line that ends it
    data: str | None  # the joined `data:` lines, None for comments / keep-alives

    def encode(self) -> bytes:
        return self.raw + b"\n\n"


def _parse_event(raw: bytes) -> SSEEvent:
    data: list[str] = []
    for line in raw.split(b"\n"):
        line = line.rstrip(b"\r")
        if line.startswith(b"data:"):
            v = line[5:]
            if v.startswith(b" "):
                v = v[1:]
            data.append(v.decode("utf-8", "replace"))
    return SSEEvent(raw, "\n".join(data) if data else None)


async def iter_sse(chunks: AsyncIterator[bytes], max_event_bytes: int = 8 * 1024 * 1024) -> AsyncIterator[SSEEvent]:
    """Split a byte stream into events (blank-line separated; LF or CRLF)."""
    buf = b""
    async for chunk in chunks:
        buf += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
        while True:
            i = buf.find(b"\n\n")
            if i < 0:
                break
            raw, buf = buf[:i], buf[i + 2:]
            if raw.strip():
                yield _parse_event(raw)
        if len(buf) > max_event_bytes:
            raise ProxyError(502, "upstream_invalid_response", "upstream sent an over-long server-sent event")
    if buf.strip():
        # a last event without its blank line: the stream was cut mid-event
        raise ProxyError(502, "upstream_stream_cut", "upstream stream ended in the middle of an event")


def event_text(obj: object, endpoint: str) -> dict[int, str]:
    """choice index → text carried by one streamed chunk."""
    out: dict[int, str] = {}
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        return out
    for pos, ch in enumerate(obj["choices"]):
        if not isinstance(ch, dict):
            continue
        idx = ch.get("index") if isinstance(ch.get("index"), int) else pos
        if endpoint == "chat":
            delta = ch.get("delta")
            t = delta.get("content") if isinstance(delta, dict) else None
        else:
            t = ch.get("text")
        if isinstance(t, str) and t:
            out[idx] = out.get(idx, "") + t
    return out


CheckFn = Callable[[dict[int, str], bool], Awaitable[ProxyError | None]]


@dataclass
class HoldBack:
    """Holds events until the text behind them is checked."""

    check: CheckFn  # (texts so far, final) → error that cuts the stream, or None
    holdback: int = 64
    check_every: int = 32
    texts: dict[int, str] = field(default_factory=dict)
    _pending: deque[tuple[SSEEvent, int]] = field(default_factory=deque)
    _held: int = 0
    _unchecked: int = 0
    checks: int = 0

    def _releasable(self) -> bool:
        return bool(self._pending) and self._held - self._pending[0][1] >= self.holdback

    async def push(self, ev: SSEEvent, n_chars: int) -> list[bytes]:
        """Queue an event carrying `n_chars` new answer characters; returns the bytes
        that may be sent now. Raises ProxyError when a check blocks the answer."""
        self._pending.append((ev, n_chars))
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
            out.append(e.encode())
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
        out = [e.encode() for e, _ in self._pending]
        self._pending.clear()
        self._held = 0
        return out

    def add_text(self, texts: dict[int, str]) -> int:
        n = 0
        for i, t in texts.items():
            self.texts[i] = self.texts.get(i, "") + t
            n += len(t)
        return n


async def upstream_bytes(resp: httpx.Response, read_timeout: float) -> AsyncIterator[bytes]:
    """The upstream body; stalls and broken connections become ProxyErrors."""
    try:
        async for chunk in resp.aiter_bytes():
            yield chunk
    except httpx.TimeoutException:
        raise ProxyError(504, "upstream_timeout", f"upstream stream stalled for more than {read_timeout:g}s") from None
    except httpx.HTTPError as e:
        raise ProxyError(502, "upstream_stream_cut", f"upstream stream broke: {type(e).__name__}") from None


def parse_data(ev: SSEEvent) -> object:
    try:
        return json.loads(ev.data or "")
    except ValueError:
        raise ProxyError(502, "upstream_invalid_response",
                         f"upstream sent an event that is not JSON: {(ev.data or '')[:80]!r}") from None


__all__ += ["upstream_bytes", "parse_data"]
