"""The proxy's routes, as module-level functions that read the app's state
(`request.app.state.pg`, a `ProxyState`). The checked routes hand the request to
`flow.checked`; every other /v1 route passes through, unless it carries prompts the
proxy cannot check."""

from __future__ import annotations

import fnmatch
import logging
import time
from typing import Any, AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..records import ERROR_DECISION
from .errors import ProxyError
from .flow import checked, error_response, read_body, set_decision
from .metrics import CONTENT_TYPE_LATEST
from .paths import same_route
from .responses import responses as checked_responses
from .state import ProxyState
from .upstream import client_response_headers, forward_request_headers, upstream_bytes, upstream_error_from_response

__all__ = ["chat_completions", "completions", "responses", "models", "passthrough", "healthz", "readyz", "metrics",
           "http_error", "body_schema"]

log = logging.getLogger("promptguard.proxy")


def _state(request: Request) -> ProxyState:
    return request.app.state.pg


async def chat_completions(request: Request) -> Response:
    return await checked(request, "chat")


async def completions(request: Request) -> Response:
    return await checked(request, "completions")


async def responses(request: Request) -> Response:
    return await checked_responses(request)


async def models(request: Request) -> Response:
    return await passthrough(request, "models")


async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    ok, info = await _state(request).ready()
    return JSONResponse({"status": "ready" if ok else "not ready", **info}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    state = _state(request)
    state.metrics.store_queue.set(state.store.queued)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def passthrough(request: Request, path: str) -> Response:
    """Any other /v1 route, forwarded as it is (after authentication)."""
    state = _state(request)
    s, rid = state.settings, request.state.request_id
    try:
        checked_route = next((c for c in ("chat/completions", "completions", "responses") if same_route(path, c)), None)
        if checked_route == path:
            raise ProxyError(405, "method_not_allowed", f"{request.method} is not allowed on /v1/{path}; use POST",
                             kind="bad_request")
        if checked_route is not None:  # another spelling of a checked route never passes through
            raise ProxyError(400, "invalid_path", f"invalid request path /v1/{path}: routes are case-sensitive, "
                             f"use /v1/{checked_route}", kind="bad_path")
        caller = state.authenticate(request)
        if any(fnmatch.fnmatchcase(path.strip("/").lower(), pat.lower()) for pat in s.passthrough_deny):
            raise ProxyError(403, "route_not_checked", f"/v1/{path} carries prompts this proxy does not check, "
                             "so it is refused (setting passthrough_deny)", kind="denied")
        raw = await read_body(request, s.max_body_bytes)
        headers = forward_request_headers(request.headers, caller.upstream_auth)
        deadline = time.monotonic() + caller.profile.inspector.policy.proxy.upstream_deadline_s
        resp = await state.upstream.send(request.method, "/" + path, query=request.url.query,
                                         headers=headers, content=raw or None, deadline=deadline)
        if resp.status_code >= 500:  # the upstream's own error text is not passed on
            err = upstream_error_from_response(resp.status_code, await state.upstream.read(resp, deadline))
            assert err is not None
            log.warning("pass-through: %s", err.describe(), extra={"fields": {"request_id": rid}})
            raise err
    except ProxyError as e:
        state.metrics.errors.labels(e.kind).inc()
        set_decision(request, ERROR_DECISION)
        return error_response(e, rid)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream_bytes(resp, s.upstream_timeout, deadline):
                yield chunk
        except ProxyError as e:
            state.metrics.errors.labels(e.kind).inc()
            log.warning("pass-through body broke: %s", e.message, extra={"fields": {"request_id": rid}})
        finally:
            await resp.aclose()

    return StreamingResponse(body(), status_code=resp.status_code, headers=client_response_headers(resp.headers))


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """404 / 405 (no route, wrong method) in the OpenAI error format."""
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    set_decision(request, ERROR_DECISION)
    return error_response(ProxyError(exc.status_code, code, str(exc.detail)), request.state.request_id)


def body_schema(required: str) -> dict[str, Any]:
    """A loose request-body schema for the OpenAPI document: the proxy forwards every
    field, so only what it reads is described."""
    props: dict[str, Any] = {
        "model": {"type": "string"},
        "stream": {"type": "boolean"},
    }
    if required == "input":
        props["input"] = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
        props["instructions"] = {"type": "string"}
        props["tools"] = {"type": "array", "items": {"type": "object"}}
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": props, "additionalProperties": True}}}}}
    if required == "messages":
        props["messages"] = {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["role"],
            "properties": {"role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                           "content": {"type": "string"}}}}
    else:
        props["prompt"] = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": [required], "properties": props, "additionalProperties": True}}}}}
