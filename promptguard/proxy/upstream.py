"""Forwarding to the upstream with one pooled `httpx.AsyncClient`.

Connection failures and 502/503/504 answers are retried by the shared retrying
transport (`promptguard.transport`; nothing has reached the client yet, so a retry is
invisible to it); a read that times out becomes a 504, a refused or broken connection
a 502. Nothing waits forever: every read has the configured timeout, and the whole
exchange a deadline (`deadline`, a `time.monotonic()` value: the policy's
`proxy.upstream_deadline_s`), so an upstream that trickles a byte now and then cannot
hold a request. The upstream's own error texts stay in records and logs, never in what
the client gets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator, Mapping

import httpx

from ..transport import client_for
from .errors import ProxyError
from .settings import ProxySettings

__all__ = ["Upstream", "HOP_BY_HOP", "forward_request_headers", "client_response_headers"]

log = logging.getLogger("promptguard.proxy.upstream")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_RETRY_STATUS = frozenset({502, 503, 504})


def forward_request_headers(headers: Mapping[str, str], authorization: str | None) -> dict[str, str]:
    """The client's headers minus hop-by-hop ones, the proxy's own (`x-promptguard-*`)
    and encodings (httpx negotiates its own); `authorization` replaces the client's."""
    out = {
        k: v for k, v in headers.items()
        if k.lower() not in HOP_BY_HOP and not k.lower().startswith("x-promptguard")
        and k.lower() not in ("authorization", "accept-encoding", "x-api-key")
    }
    if authorization:
        out["authorization"] = authorization
    return out


def client_response_headers(headers: httpx.Headers, *, keep_encoding: bool = False) -> dict[str, str]:
    skip = set(HOP_BY_HOP) | {"date", "server"}  # the proxy's server sets its own
    if not keep_encoding:
        skip.add("content-encoding")
    return {k: v for k, v in headers.items() if k.lower() not in skip and not k.lower().startswith("x-promptguard")}


class Upstream:
    def __init__(self, settings: ProxySettings, transport: httpx.AsyncBaseTransport | None = None):
        self.base = settings.upstream
        self.timeout = httpx.Timeout(settings.upstream_timeout, connect=settings.upstream_connect_timeout)
        self.client = client_for(timeout=self.timeout, max_connections=settings.max_connections,
                                 retries=settings.upstream_retries, backoff=settings.retry_backoff,
                                 statuses=_RETRY_STATUS, transport=transport, follow_redirects=False)
        # does the upstream serve /v1/responses? ("responses" | "chat"; None until asked, see proxy/responses.py)
        self.responses_api: str | None = None

    def url(self, path: str, query: str = "") -> str:
        """`path` is the part after /v1 (e.g. `/chat/completions`)."""
        return self.base + path + (f"?{query}" if query else "")

    async def send(self, method: str, path: str, *, query: str = "", headers: Mapping[str, str],
                   content: bytes | None = None, deadline: float | None = None) -> httpx.Response:
        """Send (retried by the transport) and return the response with its body unread
        (stream it or `read()` it); the caller closes it. Raises ProxyError(502/504)
        when the upstream fails or the deadline passes."""
        req = self.client.build_request(method, self.url(path, query), headers=headers, content=content)
        try:
            async with asyncio.timeout(_left(deadline)):
                return await self.client.send(req, stream=True)
        except TimeoutError:
            raise deadline_error() from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise ProxyError(504, "upstream_timeout",
                             f"upstream did not accept the connection in time ({type(e).__name__})") from None
        except httpx.TimeoutException:
            raise ProxyError(504, "upstream_timeout", f"upstream did not answer within {self.timeout.read:g}s") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            raise ProxyError(502, "upstream_unreachable", f"upstream unreachable ({type(e).__name__})",
                             internal=str(e)) from None
        except httpx.HTTPError as e:
            raise ProxyError(502, "upstream_error", f"upstream request failed ({type(e).__name__})",
                             internal=str(e)) from None

    async def read(self, resp: httpx.Response, deadline: float | None = None) -> bytes:
        """The whole body; a stall, a cut connection or the deadline becomes a 504/502
        ProxyError."""
        try:
            async with asyncio.timeout(_left(deadline)):
                return await resp.aread()
        except TimeoutError:
            raise deadline_error() from None
        except httpx.TimeoutException:
            raise ProxyError(504, "upstream_timeout",
                             f"upstream stalled for more than {self.timeout.read:g}s while answering") from None
        except httpx.HTTPError as e:
            raise ProxyError(502, "upstream_stream_cut", f"upstream connection broke while answering: {type(e).__name__}") from None
        finally:
            await resp.aclose()

    async def ping(self, timeout: float = 2.0) -> tuple[bool, str]:
        try:
            r = await self.client.get(self.url("/models"), timeout=timeout)
        except httpx.HTTPError as e:
            return False, f"{type(e).__name__}: {e}"[:200]
        if r.status_code >= 500:
            return False, f"upstream answered {r.status_code}"
        return True, f"upstream answered {r.status_code}"

    async def aclose(self) -> None:
        await self.client.aclose()


def _left(deadline: float | None) -> float | None:
    """Seconds to a `time.monotonic()` deadline (None: no deadline)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def deadline_error() -> ProxyError:
    return ProxyError(504, "upstream_timeout", "upstream did not finish its answer within the deadline "
                      "(policy proxy.upstream_deadline_s)", kind="upstream_deadline")


def upstream_error_from_response(status: int, body: bytes) -> ProxyError | None:
    """A 5xx from the upstream, wrapped as our 502 (4xx answers pass through as they
    are). The upstream's text stays internal (records, logs)."""
    if status < 500:
        return None
    snippet = body[:300].decode("utf-8", "replace")
    msg = snippet
    try:
        data: Any = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            msg = str(data["error"].get("message") or snippet)
    except ValueError:
        pass
    code = "upstream_timeout" if status == 504 else "upstream_error"
    return ProxyError(504 if status == 504 else 502, code, f"upstream answered {status}", internal=msg[:500])


async def upstream_bytes(resp: httpx.Response, read_timeout: float, deadline: float | None = None) -> AsyncIterator[bytes]:
    """The upstream body; stalls, broken connections and the deadline become ProxyErrors."""
    it = resp.aiter_bytes()
    try:
        while True:
            try:
                async with asyncio.timeout(_left(deadline)):
                    chunk = await anext(it)
            except StopAsyncIteration:
                return
            yield chunk
    except TimeoutError:
        raise deadline_error() from None
    except httpx.TimeoutException:
        raise ProxyError(504, "upstream_timeout", f"upstream stream stalled for more than {read_timeout:g}s") from None
    except httpx.HTTPError as e:
        raise ProxyError(502, "upstream_stream_cut", f"upstream stream broke: {type(e).__name__}") from None


__all__ += ["upstream_error_from_response", "upstream_bytes", "deadline_error"]
