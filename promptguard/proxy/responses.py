"""`POST /v1/responses` (the Responses API), checked like a chat request, from route to record.

    responses(request)                  the route: flow.py's `serve` (the body read, the rest
                                        cancelled when the client goes away, errors and shutdown
                                        answered and recorded) with the steps below, in order
      inspect_request                   flow.py's: every text the model reads checked
                                        (`parsing/responses.py`), block | sanitize | flag; the
                                        checked body, re-serialized, is what goes upstream
      unseen(ex)                        what the model will read that the request does not carry
                                        (`previous_response_id`, …): the policy's `unseen_context`
      upstream_api(ex)                  native (/v1/responses) or bridged (/v1/chat/completions,
                                        the chat request made from the checked body)
      answer(ex, resp, api)             a whole answer (a chat answer made a Response first):
                                        checked with the request as reference, [audited],
                                        sanitized in place or blocked
      relay(ex, resp, api)              `response.*` events held back until checked (flow.py's
                                        `stream` and `relay_stream`); a cut ends with an `error`
                                        event
      finish(ex)                        flow.py's: the record (redacted without store_text)

The decisions are the inspection step's, as for chat, and so are the limits, the
upstream deadline and what a disconnect or a shutdown does; what is the Responses API's
own is its shapes (parsing/responses.py), its events and the bridge (proxy/bridge.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator

import httpx
from starlette.requests import Request
from starlette.responses import Response

from ..inspection import Inspection
from ..parsing.responses import STREAMED_RESPONSE, ResponseStreamTexts, message_text, unseen_context
from ..policy import Action
from ..records import BLOCKED_STATUS
from .bridge import BridgeError, StreamBridge, chat_request, response_from_chat
from .errors import BLOCKED_TYPE, ProxyError, responses_error_event
from .flow import (Exchange, answer_holdback, audit_answer, check_answer, encode_body, end_stream, forward,
                   inspect_request, is_stream, read_answer, relay_stream, serve, set_decision, stream,
                   upstream_stream_error)
from .streaming import encode_event, parse_data, upstream_events
from .upstream import forward_request_headers

__all__ = ["responses", "upstream_api", "unseen", "API_HEADER"]

log = logging.getLogger("promptguard.proxy")

# says how the upstream was asked: `native` (its /v1/responses) or `bridge` (chat completions)
API_HEADER = "x-promptguard-responses-api"
_ROUTE_MISSING = frozenset({404, 405, 501})
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


async def responses(request: Request) -> Response:
    return await serve(request, "responses", _respond)


async def _respond(ex: Exchange) -> Response:
    await inspect_request(ex)
    unseen(ex)
    api = await upstream_api(ex)
    if api == "chat":  # the bridge's chat request is made from the checked body
        resp = await forward(ex, "/chat/completions", encode_body(_bridged(ex.sent)))
    else:
        resp = await forward(ex)
    if is_stream(ex, resp):
        return stream(ex, resp, lambda ex, resp: relay(ex, resp, api),
                      {API_HEADER: "bridge" if api == "chat" else "native"})
    return await answer(ex, resp, api)


def _bridged(body: Any) -> dict[str, Any]:
    try:
        return chat_request(body)
    except BridgeError as e:
        raise ProxyError(400, "unsupported_by_bridge", str(e), param=e.param) from None


def unseen(ex: Exchange) -> None:
    """Text the model will read that this request does not carry was not checked: the
    policy's `proxy.unseen_context` says whether that flags (default), blocks, or only
    goes into the record."""
    what = unseen_context(ex.body)
    if not what or ex.inbound is None:
        return
    mode = ex.profile.inspector.policy.proxy.unseen_context
    note = "not checked (stored upstream, out of promptguard's sight): " + "; ".join(what)
    rec, d = ex.record, ex.inbound.decision
    if mode == "block":
        rec.errors.append(note)
        rec.summary = f"block: {note}"
        set_decision(ex.request, Action.BLOCK.value)
        raise ProxyError(BLOCKED_STATUS, "unchecked_context", f"Request blocked by promptguard: {note} "
                         "(policy proxy.unseen_context: block); send the whole conversation in 'input'",
                         type_=BLOCKED_TYPE, kind="blocked",
                         details={"decision": {**d.to_dict(), "action": "block", "errors": [*d.errors, note]}})
    rec.errors.append(note)
    if mode == "flag" and Action.FLAG.rank > rec.action.rank:
        rec.decision = Action.FLAG.value
        rec.summary = f"flag: {note}"
        set_decision(ex.request, Action.FLAG.value)


async def upstream_api(ex: Exchange) -> str:
    """`responses` (forward natively) or `chat` (bridge). With `responses_api: auto` the
    upstream is asked once, with an empty request that a Responses server refuses as
    invalid (400/422) and a server without the route answers 404/405/501."""
    mode = ex.state.settings.responses_api
    if mode != "auto":
        return "responses" if mode == "native" else "chat"
    up = ex.state.upstream
    if up.responses_api is None:
        assert ex.caller is not None
        headers = forward_request_headers(ex.request.headers, ex.caller.upstream_auth)
        headers["content-type"] = "application/json"
        resp = await up.send("POST", "/responses", headers=headers, content=b"{}", deadline=ex.deadline)
        await up.read(resp, ex.deadline)
        if resp.status_code in _ROUTE_MISSING:
            up.responses_api = "chat"
        elif resp.status_code < 500 and resp.status_code not in (401, 403, 429):
            up.responses_api = "responses"
        else:  # the upstream did not say: ask it natively this time, and again next time
            return "responses"
        log.info("upstream /v1/responses: %s", "served" if up.responses_api == "responses" else
                 f"missing ({resp.status_code}): bridging to chat completions")
    return up.responses_api


# -- a whole answer ---------------------------------------------------------------------------


async def answer(ex: Exchange, resp: httpx.Response, api: str) -> Response:
    data, raw, headers = await read_answer(ex, resp)
    headers[API_HEADER] = "bridge" if api == "chat" else "native"
    if data is None:
        return Response(raw, status_code=resp.status_code, headers=headers)
    if api == "chat":
        data = response_from_chat(data, ex.sent or {})
    out = await check_answer(ex, data, _audit)
    content = json.dumps(out.output).encode() if out.rewritten or api == "chat" else raw
    return Response(content, status_code=200, headers=headers, media_type="application/json")


def _audit_request(ex: Exchange) -> tuple[dict[str, Any], None] | None:
    """The request as the audit re-asks it: through chat completions (the audit's
    backend), so it runs where the upstream serves those too; the auditor reads the
    chat body's segments. None (noted in the record) when the request has parts chat
    cannot carry."""
    try:
        return chat_request({**(ex.sent or {}), "stream": False}), None
    except BridgeError as e:
        ex.record.errors.append(f"audit: not run: {e}")
        return None


def _replace_text(output: dict[str, Any], text: str) -> bool:
    """The audit's trusted answer in place of the message text (the first output_text
    part gets it, the others are emptied)."""
    parts = [p for it in output.get("output") or [] if it.get("type") == "message"
             for p in it.get("content") or [] if p.get("type") == "output_text"]
    for k, p in enumerate(parts):
        p["text"] = text if k == 0 else ""
    return bool(parts)


async def _audit(ex: Exchange, out: Inspection, data: dict[str, Any]) -> Inspection:
    return await audit_answer(ex, out, lambda: _audit_request(ex), message_text(data), _replace_text)


# -- a streamed answer ------------------------------------------------------------------------


def _encode(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def events(ex: Exchange, resp: httpx.Response, api: str) -> AsyncIterator[tuple[bytes, Any]]:
    """The answer as Responses events, (bytes for the client, the event): the upstream's
    own, or made from its chat completion chunks (bridge). An error the upstream reports
    in the stream is a ProxyError (its text stays in the record)."""
    timeout = ex.state.settings.upstream_timeout
    if api != "chat":
        previous_id = ""
        async for ev in upstream_events(resp, timeout, ex.deadline):
            if ev.data.strip() == "[DONE]":
                continue
            obj = parse_data(ev)
            if isinstance(obj, dict) and obj.get("type") == "error":
                raise upstream_stream_error(json.dumps(obj))
            yield encode_event(ev, previous_id), obj
            previous_id = ev.id
        return
    bridge = StreamBridge(ex.sent or {})
    for e in bridge.start():
        yield _encode(e), e
    done = False
    async for ev in upstream_events(resp, timeout, ex.deadline):
        if ev.data.strip() == "[DONE]":
            done = True
            break
        obj = parse_data(ev)
        if isinstance(obj, dict) and obj.get("error") is not None:
            raise upstream_stream_error(str(obj.get("error")))
        for e in bridge.feed(obj):
            yield _encode(e), e
    if not done:
        raise ProxyError(502, "upstream_stream_cut", "upstream closed the stream before it was complete",
                         kind="upstream_cut")
    for e in bridge.finish():
        yield _encode(e), e


def relay(ex: Exchange, resp: httpx.Response, api: str) -> AsyncIterator[bytes]:
    """Events relayed behind the hold-back window (streaming.HoldBack, the same rules as
    chat streams, `flow.relay_stream` around them); a check that blocks, upstream
    trouble or a shutdown ends the stream with an `error` event."""
    texts = ResponseStreamTexts()
    last: list[Inspection] = []
    hb = answer_holdback(ex, STREAMED_RESPONSE, texts.value, last)
    seq, done = -1, False

    async def relayed() -> AsyncIterator[bytes]:
        nonlocal seq, done
        async for data, obj in events(ex, resp, api):
            if isinstance(obj, dict) and isinstance(obj.get("sequence_number"), int):
                seq = max(seq, obj["sequence_number"])
            for b in await hb.push(data, texts.feed(obj)):
                yield b
            done = done or (isinstance(obj, dict) and obj.get("type") in _TERMINAL)
        if not done:
            raise ProxyError(502, "upstream_stream_cut", "upstream closed the stream before the response "
                             "was complete", kind="upstream_cut")
        for b in await hb.finish():
            yield b

    def end() -> None:
        end_stream(ex, last[0] if last else None, STREAMED_RESPONSE.text(texts.value()), done,
                   lambda: _audit_request(ex), texts.message_text())

    return relay_stream(ex, resp, hb, relayed(), lambda e: responses_error_event(e, ex.request_id, seq + 1), end)
