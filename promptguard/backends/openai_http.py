"""OpenAI-compatible HTTP upstream: vLLM (`vllm serve`), llama.cpp's server, OpenAI, ...

Pooled `httpx.AsyncClient` over the shared retrying transport (`promptguard.transport`:
connection errors, 429 and 502/503/504 are retried with backoff, honouring a short
`Retry-After`; a read timeout is not), per-request timeouts. Streams are read with
`httpx-sse`. Chat
requests go to `/chat/completions`, prompt requests to `/completions`. Extra
fields that some servers add (vLLM's `stop_reason`, `prompt_logprobs`,
`kv_transfer_params`, `reasoning_content`, ...) are tolerated and kept in `raw`.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource, SSEError

from ..content import content_text
from ..transport import client_for

from .base import (
    BackendError,
    BackendHTTPError,
    BackendTimeout,
    BadResponse,
    Completion,
    CompletionRequest,
)

__all__ = ["OpenAIHTTPBackend"]

_RETRY_STATUS = {429, 502, 503, 504}


def _normalise_base(url: str) -> str:
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.path in ("", "/"):
        url += "/v1"
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _error_message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
        if data.get("message"):  # vLLM's older {"object": "error", "message": ...}
            return str(data["message"])[:300]
        if data.get("detail"):
            return str(data["detail"])[:300]
    return resp.text[:300]


class OpenAIHTTPBackend:
    """An upstream speaking `/v1/chat/completions` and `/v1/completions`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.25,
        max_connections: int = 16,
        headers: dict[str, str] | None = None,
        deterministic: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = _normalise_base(base_url)
        self.name = f"http:{self.base_url}"
        self.model = model
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_connections = int(max_connections)
        # temperature 0 + seed is repeatable on vLLM and llama.cpp; say False for
        # upstreams that are not (the audit then repeats calls to measure noise).
        self.deterministic = deterministic
        self._headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._transport = transport
        # one pooled client per event loop, forgotten with its loop
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = \
            weakref.WeakKeyDictionary()
        self._model_lock: asyncio.Lock | None = None

    # -- plumbing ------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """The pooled client of the running loop (a client must not cross loops; sync
        callers all share the one background loop of `promptguard.portal`)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = client_for(
                timeout=httpx.Timeout(self.timeout, connect=min(self.connect_timeout, self.timeout)),
                max_connections=self.max_connections, retries=self.retries, backoff=self.backoff,
                statuses=_RETRY_STATUS, transport=self._transport, base_url=self.base_url, headers=self._headers)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's client (those of other loops go with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always awaited
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    async def _send(self, method: str, path: str, body: dict | None = None,
                    timeout: float | None = None) -> httpx.Response:
        """One request (retried by the transport); returns a 2xx response or raises a BackendError."""
        req_timeout = httpx.Timeout(timeout, connect=min(self.connect_timeout, timeout)) \
            if timeout else httpx.USE_CLIENT_DEFAULT
        try:
            resp = await self._client().request(method, path, json=body, timeout=req_timeout)
        except httpx.TimeoutException as e:
            raise BackendTimeout(f"{self.base_url}{path}: timed out ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise BackendError(f"{self.base_url}{path}: {type(e).__name__}: {e}") from e
        if resp.status_code >= 400:
            raise BackendHTTPError(resp.status_code, _error_message(resp))
        return resp

    async def default_model(self) -> str | None:
        """The configured model, else the first one the upstream lists (cached)."""
        if self.model:
            return self.model
        if self._model_lock is None:
            self._model_lock = asyncio.Lock()
        async with self._model_lock:
            if self.model:
                return self.model
            try:
                resp = await self._send("GET", "/models", timeout=min(self.timeout, 10.0))
                data = resp.json().get("data") or []
                if data and isinstance(data[0], dict) and data[0].get("id"):
                    self.model = str(data[0]["id"])
            except (BackendError, ValueError, AttributeError):
                return None  # servers that serve one model accept requests without it
            return self.model

    # -- the contract --------------------------------------------------------
    async def complete(self, request: CompletionRequest) -> Completion:
        body = request.to_body(await self.default_model())
        body.pop("stream", None)
        path = "/chat/completions" if request.is_chat else "/completions"
        t0 = time.perf_counter()
        resp = await self._send("POST", path, body)
        latency = time.perf_counter() - t0
        try:
            data = resp.json()
        except ValueError:
            raise BadResponse(f"{self.base_url}{path}: response is not JSON: {resp.text[:200]!r}") from None
        return self._parse(data, request.is_chat, latency)

    def _parse(self, data: Any, chat: bool, latency: float) -> Completion:
        if not isinstance(data, dict):
            raise BadResponse(f"response is a {type(data).__name__}, not an object")
        if "error" in data and not data.get("choices"):
            raise BadResponse(f"upstream error: {data['error']}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BadResponse("response has no choices")
        ch = choices[0]
        if chat:
            msg = ch.get("message")
            if not isinstance(msg, dict):
                raise BadResponse("chat response choice has no message")
            text = msg.get("content")
            if isinstance(text, list):  # content parts
                text = content_text(text)
        else:
            text = ch.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise BadResponse(f"completion text is a {type(text).__name__}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return Completion(
            text=text,
            finish_reason=ch.get("finish_reason"),
            model=data.get("model"),
            usage={k: v for k, v in usage.items() if isinstance(v, int)},
            latency_s=latency,
            backend=self.name,
            raw=data,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        """Text deltas of a streamed completion (SSE), ending at `[DONE]`.

        Chunks without text (role-only first chunks, usage-only last chunks,
        vLLM's `reasoning_content` deltas) yield nothing.
        """
        body = request.to_body(await self.default_model())
        body["stream"] = True
        path = "/chat/completions" if request.is_chat else "/completions"
        client = self._client()
        try:
            async with client.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise BackendHTTPError(resp.status_code, _error_message(resp))
                async for event in EventSource(resp).aiter_sse():
                    if event.data.strip() == "[DONE]":
                        return
                    try:
                        chunk = json.loads(event.data)
                    except ValueError:
                        raise BadResponse(f"bad stream chunk: {event.data[:200]!r}") from None
                    if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
                        raise BadResponse(f"upstream error in stream: {chunk['error']}")
                    for ch in (chunk.get("choices") or []) if isinstance(chunk, dict) else []:
                        if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                            continue
                        piece = (ch.get("delta") or {}).get("content") if request.is_chat else ch.get("text")
                        if isinstance(piece, str) and piece:
                            yield piece
        except SSEError as e:
            raise BadResponse(f"{self.base_url}{path}: {e}") from None
        except httpx.TimeoutException as e:
            raise BackendTimeout(f"{self.base_url}{path}: stream timed out") from e
        except httpx.TransportError as e:
            raise BackendError(f"{self.base_url}{path}: {type(e).__name__}: {e}") from e

    def __repr__(self) -> str:
        return f"OpenAIHTTPBackend({self.base_url!r}, model={self.model!r})"
