"""The one HTTP layer: a retrying `httpx` transport shared by the proxy's upstream
client and the OpenAI HTTP backend.

Like every httpx transport it wraps another (`httpx.AsyncHTTPTransport` by default, a
test's `httpx.MockTransport` in tests), so retries sit below the client and each
caller keeps only what is its own: which statuses to retry and how to name a failure
(a proxy error for the client, a `BackendError` for the audit).

What is retried: failures before a response started (connection refused or reset, a
connect or pool timeout, a broken write, a malformed status line) and the statuses the
caller names. What is not: a read timeout (it would only double the wait) and any
response the caller did not ask to retry. Waits double from `backoff`, with a little
jitter, and honour a short `Retry-After`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Collection

import httpx

__all__ = ["RetryTransport", "RETRYABLE_ERRORS", "client_for"]

log = logging.getLogger("promptguard.transport")

# nothing of the request was answered: safe to send it again
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
    httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
)


class RetryTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, *, retries: int = 2, backoff: float = 0.2,
                 statuses: Collection[int] = (502, 503, 504), jitter: float = 0.25, max_retry_after: float = 10.0,
                 limits: httpx.Limits | None = None):
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport(
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20))
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.statuses = frozenset(statuses)
        self.jitter = float(jitter)
        self.max_retry_after = float(max_retry_after)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        d = self.backoff * (2 ** (attempt - 1)) * (1 + random.random() * self.jitter)
        if retry_after:
            try:
                d = max(d, min(float(retry_after), self.max_retry_after))
            except ValueError:
                pass
        return d

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        retry_after: str | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.delay(attempt, retry_after))
            try:
                response = await self.inner.handle_async_request(request)
            except RETRYABLE_ERRORS as e:
                if attempt == self.retries:
                    raise
                log.warning("%s %s failed (%s); retrying", request.method, request.url, type(e).__name__)
                continue
            if response.status_code in self.statuses and attempt < self.retries:
                retry_after = response.headers.get("retry-after")
                await response.aclose()
                log.warning("%s %s answered %d; retrying", request.method, request.url, response.status_code)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()


def client_for(*, timeout: httpx.Timeout, max_connections: int, retries: int, backoff: float,
               statuses: Collection[int], transport: httpx.AsyncBaseTransport | None = None,
               **kwargs: object) -> httpx.AsyncClient:
    """A pooled `httpx.AsyncClient` whose requests go through a `RetryTransport`."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    retry = RetryTransport(transport, retries=retries, backoff=backoff, statuses=statuses, limits=limits)
    return httpx.AsyncClient(timeout=timeout, transport=retry, **kwargs)  # type: ignore[arg-type]
