"""The proxy's middleware, each a plain ASGI class wrapping the app (starlette's style),
outermost first:

- `RequestContext`: a request id; the `x-promptguard-request-id` and
  `x-promptguard-decision` headers on every response (a client's own are dropped);
- `RequestMetrics`: in-flight gauge, request counter and latency per endpoint;
- `Errors`: refuses paths whose meaning could change on the way upstream before any
  route is picked (`paths.py`), answers an unhandled exception (a bug) with a 500
  in the OpenAI error format, and a request the server cancels (shutdown past its
  grace period) with a 503 in that format instead of the server's bare 500.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..records import ERROR_DECISION
from .errors import ProxyError, error_body
from .metrics import Metrics
from .paths import path_problem

__all__ = ["RequestContext", "RequestMetrics", "Errors", "DECISION_HEADER", "REQUEST_ID_HEADER", "NO_DECISION",
           "KNOWN_ENDPOINTS"]

log = logging.getLogger("promptguard.proxy")

DECISION_HEADER = "x-promptguard-decision"
REQUEST_ID_HEADER = "x-promptguard-request-id"
NO_DECISION = "none"  # routes that are not checked (health, metrics, pass-through)
_OWN_HEADERS = (DECISION_HEADER.encode(), REQUEST_ID_HEADER.encode())
KNOWN_ENDPOINTS = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz", "/readyz", "/metrics"}

# request ids: a random per-process prefix and a counter (unique across workers and
# replicas without a system call per request)
_RID_PREFIX = "pg-" + uuid.uuid4().hex[:12]
_rid_counter = itertools.count(1)


def next_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):012x}"


class _HTTPMiddleware:
    """Passes everything but HTTP requests (lifespan) straight through."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        else:
            await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestContext(_HTTPMiddleware):
    """Request id and the decision header; routes set the decision in `scope["state"]`."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = next_request_id()
        st = scope.setdefault("state", {})
        st["request_id"] = rid
        st["decision"] = NO_DECISION

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OWN_HEADERS]
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                headers.append((DECISION_HEADER.encode(), str(st.get("decision", NO_DECISION)).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestMetrics(_HTTPMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.metrics is not None
        path = scope.get("path", "")
        endpoint = path if path in KNOWN_ENDPOINTS else ("/v1/*" if path.startswith("/v1/") else "other")
        m = self.metrics
        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m.in_flight.inc()
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_counting)
        finally:
            m.in_flight.dec()
            m.requests.labels(endpoint, str(status)).inc()
            m.request_seconds.labels(endpoint).observe(time.perf_counter() - t0)


class Errors(_HTTPMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.metrics is not None
        st = scope.setdefault("state", {})
        rid = st.get("request_id", "")
        problem = path_problem(scope.get("raw_path"), scope.get("path", ""))
        if problem is not None:
            # refused before routing: a path whose meaning could change on its way to the
            # upstream must not pick a route here (see paths.py)
            st["decision"] = ERROR_DECISION
            self.metrics.errors.labels("bad_path").inc()
            await _respond(ProxyError(400, "invalid_path", f"invalid request path: {problem}", kind="bad_path"),
                           rid, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except asyncio.CancelledError:
            # the server cancelled the request (shutdown): tell the client in the OpenAI format
            # (a stream has ended itself with an error event); the request is over either way
            if not started:
                st["decision"] = st.get("decision", ERROR_DECISION)
                await _respond(ProxyError(503, "server_shutting_down", "promptguard is shutting down; retry the "
                                          "request"), rid, send)
            log.warning("request cut by the server's shutdown", extra={"fields": {"request_id": rid}})
        except Exception:  # a bug: answer in the OpenAI format, with the headers, and log it
            log.exception("unhandled error", extra={"fields": {"request_id": rid}})
            self.metrics.errors.labels("internal").inc()
            if not started:
                st["decision"] = ERROR_DECISION
                await _respond(ProxyError(500, "internal_error", "promptguard internal error; see the proxy log "
                                          f"for request {rid}"), rid, send)


async def _respond(err: ProxyError, request_id: str, send: Send) -> None:
    body = json.dumps(error_body(err, request_id)).encode()
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
