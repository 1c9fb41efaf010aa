"""One checked request (`/v1/chat/completions`, `/v1/completions`), from route to record.

    checked(request, endpoint)          the route: the steps below, in order
      read_request(ex)                  authenticate, read the body (size, UTF-8, JSON, shape)
      inspect_request(ex)               the inbound inspection: block | sanitize | flag | allow
      forward(ex)                       send upstream (retried by the transport)
      answer(ex, resp)                  a whole answer: inspect it, [audit it], respond
      stream(ex, resp)                  a streamed answer: hold back, inspect as it grows
      finish(ex)                        the record: latency, store (queued), log

Each step is a module-level function of one `Exchange` (the request in flight), so it
can be read, called and tested on its own. Decisions are the inspection step's
(`promptguard.inspection`), the same as the LangChain integration's and the scanner's;
what is the proxy's own is HTTP: status codes, headers, the hold-back window.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..inspection import INBOUND, OUTBOUND, Inspection, Shape, audit_failed, audit_summary, fold_audit
from ..parsing import CHAT, COMPLETION, ParseError
from ..parsing.answers import CHAT_RESPONSE, COMPLETION_RESPONSE, STREAMED_ANSWERS, answers_text, choice_texts
from ..parsing.responses import RESPONSE_OUTPUT, RESPONSES, validate_body
from ..policy import Action, Decision
from ..records import BLOCKED_STATUS, ERROR_DECISION, Record
from ..segments import Segment
from .errors import BLOCKED_TYPE, ProxyError, blocked_error, error_body, sse_error_event
from .state import Caller, ProxyState
from .streaming import HoldBack, encode_event, parse_data, upstream_events
from .upstream import client_response_headers, forward_request_headers, upstream_error_from_response

__all__ = ["Exchange", "checked", "read_request", "parse_body", "inspect_request", "forward", "answer",
           "read_answer", "check_answer", "audit_answer", "answer_holdback", "stream_failed", "end_stream",
           "upstream_error_event",
           "stream", "finish", "failed", "begin", "set_decision", "error_response", "read_body"]

log = logging.getLogger("promptguard.proxy")

# which body field each checked endpoint requires (a Responses request is checked by its own reader)
ENDPOINT_KEYS = {"chat": "messages", "completions": "prompt"}
_SHAPES = {"chat": CHAT, "completions": COMPLETION, "responses": RESPONSES}
_ANSWERS = {"chat": CHAT_RESPONSE, "completions": COMPLETION_RESPONSE, "responses": RESPONSE_OUTPUT}
_PATHS = {"chat": "/chat/completions", "completions": "/completions", "responses": "/responses"}


@dataclass
class Exchange:
    """One checked request on its way through the proxy."""

    state: ProxyState
    request: Request
    endpoint: str  # chat | completions | responses
    record: Record
    t0: float
    caller: Caller | None = None
    body: dict[str, Any] | None = None  # as the client sent it
    content: bytes = b""  # what goes upstream (the client's bytes, or the sanitized body)
    sent: dict[str, Any] | None = None  # the body that went upstream
    inbound: Inspection | None = None
    streaming: bool = False  # the response is a stream, which records itself when it ends

    @property
    def request_id(self) -> str:
        return self.record.request_id

    @property
    def profile(self) -> Any:
        assert self.caller is not None
        return self.caller.profile


def set_decision(request: Request, value: str) -> None:
    """The `x-promptguard-decision` header's value (set by the request-context middleware)."""
    request.scope.setdefault("state", {})["decision"] = value


def error_response(err: ProxyError, request_id: str) -> JSONResponse:
    return JSONResponse(error_body(err, request_id), status_code=err.status)


# -- the route -----------------------------------------------------------------------------


def begin(request: Request, endpoint: str) -> Exchange:
    """A checked request arrives: its exchange and its record (an error until decided)."""
    rec = Record(request_id=request.state.request_id, ts=time.time(), endpoint=request.url.path,
                 decision=ERROR_DECISION, stage="request", client=request.client.host if request.client else "")
    set_decision(request, ERROR_DECISION)
    return Exchange(request.app.state.pg, request, endpoint, rec, time.perf_counter())


async def checked(request: Request, endpoint: str) -> Response:
    ex = begin(request, endpoint)
    rec = ex.record
    try:
        await read_request(ex)
        await inspect_request(ex)
        resp = await forward(ex)
        if rec.stream and resp.status_code == 200 and "text/event-stream" in resp.headers.get("content-type", ""):
            return stream(ex, resp)
        return await answer(ex, resp)
    except ProxyError as e:
        return failed(ex, e)
    finally:
        if not ex.streaming:
            finish(ex)


def failed(ex: Exchange, e: ProxyError) -> JSONResponse:
    """A request that ends in an error (a block included): recorded, counted, answered."""
    rec = ex.record
    rec.status = e.status
    if e.kind == "blocked":
        rec.decision = Action.BLOCK.value
    else:
        rec.errors = [*rec.errors, f"{e.code}: {e.message}"]
    ex.state.metrics.errors.labels(e.kind).inc()
    return error_response(e, ex.request_id)


# -- the steps -----------------------------------------------------------------------------


async def read_request(ex: Exchange) -> None:
    """Who calls, and what they sent: the body read within the size limit and parsed."""
    ex.caller = ex.state.authenticate(ex.request)
    ex.record.api_key = ex.caller.name
    ex.content = await read_body(ex.request, ex.state.settings.max_body_bytes)
    ex.body = ex.sent = parse_body(ex.content, ex.endpoint)
    ex.record.model = ex.body.get("model") or ""
    ex.record.stream = ex.body.get("stream") is True


async def inspect_request(ex: Exchange) -> None:
    """The inbound inspection; a block is answered here, a sanitized body replaces the
    client's for the upstream."""
    assert ex.body is not None
    insp = await ex.profile.inspector.ainspect(_SHAPES[ex.endpoint], ex.body, INBOUND)
    if insp.unreadable is not None:  # well-formed JSON that no parser can read: the client's error
        raise ProxyError(400, "invalid_request", insp.unreadable)
    ex.inbound = insp
    rec = ex.record
    rec.note(insp)
    rec.hash_texts(prompt=insp.text, keep=ex.state.settings.store_text)
    set_decision(ex.request, insp.action.value)
    ex.state.metrics.decisions.labels(INBOUND, insp.action.value).inc()
    if insp.action is Action.BLOCK:
        decided = insp.recheck.decision if insp.recheck is not None and insp.recheck.decision.reasons else insp.decision
        raise blocked_error(decided, INBOUND)
    if insp.rewritten:
        ex.sent = insp.output
        ex.content = json.dumps(insp.output).encode()


async def forward(ex: Exchange, path: str | None = None, content: bytes | None = None) -> httpx.Response:
    """Send the (possibly sanitized) body upstream (or `content` to `path`: the
    Responses bridge); the response body is not read yet."""
    assert ex.caller is not None
    headers = forward_request_headers(ex.request.headers, ex.caller.upstream_auth)
    headers["content-type"] = "application/json"
    t = time.perf_counter()
    resp = await ex.state.upstream.send("POST", path or _PATHS[ex.endpoint], query=ex.request.url.query,
                                        headers=headers, content=ex.content if content is None else content)
    ex.record.upstream_ms = (time.perf_counter() - t) * 1000  # to the response headers
    return resp


async def read_answer(ex: Exchange, resp: httpx.Response) -> tuple[dict[str, Any] | None, bytes, dict[str, str]]:
    """The upstream's whole answer: (its JSON object, its bytes, the headers for the
    client). The object is None for an upstream 4xx, which goes to the client as it is;
    a 5xx, garbage or a stream where none was asked for is a ProxyError."""
    t = time.perf_counter()
    data_bytes = await ex.state.upstream.read(resp)
    rec = ex.record
    rec.upstream_ms = (rec.upstream_ms or 0.0) + (time.perf_counter() - t) * 1000
    ex.state.metrics.upstream_seconds.labels(ex.request.url.path).observe(rec.upstream_ms / 1000)
    headers = client_response_headers(resp.headers)
    if resp.status_code != 200:
        up_err = upstream_error_from_response(resp.status_code, data_bytes)
        if up_err is not None:
            rec.stage = "upstream"
            raise up_err
        rec.status = resp.status_code  # the upstream's own 4xx answer to the client's request
        return None, data_bytes, headers
    if rec.stream:
        raise ProxyError(502, "upstream_invalid_response", "asked for a stream but the upstream answered "
                         f"{resp.headers.get('content-type') or 'no content type'}", kind="upstream_invalid")
    try:
        data = json.loads(data_bytes)
    except ValueError:
        raise ProxyError(502, "upstream_invalid_response", "upstream answered with invalid JSON",
                         kind="upstream_invalid") from None
    if not isinstance(data, dict):
        raise ProxyError(502, "upstream_invalid_response", "upstream answered with JSON that is not an object",
                         kind="upstream_invalid")
    return data, data_bytes, headers


async def answer(ex: Exchange, resp: httpx.Response) -> Response:
    """A whole (non-streamed) answer: read, inspected, [audited], returned."""
    data, data_bytes, headers = await read_answer(ex, resp)
    if data is None:
        return Response(data_bytes, status_code=resp.status_code, headers=headers)
    out = await check_answer(ex, data, _audit)
    content = json.dumps(out.output).encode() if out.rewritten else data_bytes
    return Response(content, status_code=200, headers=headers, media_type="application/json")


AuditFn = Callable[[Exchange, Inspection, dict[str, Any]], Awaitable[Inspection]]


async def check_answer(ex: Exchange, data: dict[str, Any], audit: AuditFn) -> Inspection:
    """A whole answer (in the endpoint's answer shape) checked, audited when the policy
    says so, and recorded; returns its inspection, or raises the block."""
    rec = ex.record
    rec.hash_texts(answer=_ANSWERS[ex.endpoint].text(data), keep=ex.state.settings.store_text)
    out = await _inspect_answer(ex, data)
    if out.action is not Action.BLOCK and ex.profile.auditor is not None:
        out = await audit(ex, out, data)
        if out.action is Action.BLOCK:
            rec.note(out)
            set_decision(ex.request, rec.decision)
            raise ProxyError(BLOCKED_STATUS, "answer_blocked", "Answer blocked by promptguard: the answer audit "
                             "found a backdoor trigger in the request", type_=BLOCKED_TYPE,
                             details={"decision": {"action": "block", "audit": rec.summary}}, kind="blocked")
    rec.note(out)
    set_decision(ex.request, rec.decision)
    if out.action is Action.BLOCK:
        raise blocked_error(out.decision, OUTBOUND)
    rec.status = 200
    return out


async def _inspect_answer(ex: Exchange, data: dict[str, Any]) -> Inspection:
    shape = _ANSWERS[ex.endpoint]
    if not ex.state.settings.check_answers:
        return Inspection(shape, data, OUTBOUND, Decision(Action.ALLOW), output=data)
    out = await ex.profile.answers.ainspect(shape, data, OUTBOUND)
    ex.state.metrics.decisions.labels(OUTBOUND, out.action.value).inc()
    return out


async def _audit(ex: Exchange, out: Inspection, data: dict[str, Any]) -> Inspection:
    """The answer audit of a chat or completion answer."""

    def replace(output: dict[str, Any], text: str) -> bool:
        ch = output["choices"][0]
        if ex.endpoint == "chat":
            ch["message"]["content"] = text
        else:
            ch["text"] = text
        return True

    assert ex.inbound is not None
    return await audit_answer(ex, out, lambda: (ex.sent, ex.inbound.segments),  # type: ignore[union-attr]
                              choice_texts(data, ex.endpoint).get(0), replace)


AuditRequest = Callable[[], "tuple[dict[str, Any], list[Segment] | None] | None"]


async def audit_answer(ex: Exchange, out: Inspection, request: AuditRequest, text: str | None,
                       replace: Callable[[dict[str, Any], str], bool]) -> Inspection:
    """The answer audit, inline (holds the response) or after the fact (logs only).
    `request()` is the request as the audit re-asks it, (body, segments or None to read
    the body's), or None when it cannot be audited; `replace(output, text)` puts the
    audit's trusted answer into a copy of the answer."""
    assert ex.inbound is not None
    auditor, inbound, policy = ex.profile.auditor, ex.inbound, ex.profile.inspector.policy
    try:
        # with the answer, suspicion mode also sees answer echo (a step citing a query span)
        if not auditor.should_audit(inbound.segments, inbound.findings, answer=text):
            return out
        asked = request()
        if asked is None:
            return out
        body, segments = asked
        if not auditor.config.inline:
            auditor.submit(body, segments, text, inbound.findings)
            return out
        report = await auditor.audit(body, segments, text, inbound.findings)
    except Exception as e:  # noqa: BLE001 - decided like a detector error
        audit_failed(out, e, policy)
        return out
    ex.record.summary = (ex.record.summary + "; " + audit_summary(report)).lstrip("; ")
    fold_audit(out, report, policy)
    if report.trusted_answer and auditor.config.return_trusted_answer and report.findings:
        # the audit's answer without the trigger replaces the backdoored one: not a block
        replaced = json.loads(json.dumps(out.output))
        if replace(replaced, report.trusted_answer):
            out.output = replaced
            d = out.decision
            d.action = max(Action.FLAG, Action.SANITIZE if d.action is Action.BLOCK else d.action,
                           key=lambda a: a.rank)
            d.changes.append("answer replaced by the audit's answer without the trigger")
    return out


def stream(ex: Exchange, resp: httpx.Response) -> StreamingResponse:
    """A streamed answer: relayed event by event behind the hold-back window; the
    record is written when the stream ends."""
    ex.streaming = True
    ex.state.metrics.upstream_seconds.labels(ex.request.url.path).observe((ex.record.upstream_ms or 0.0) / 1000)
    ex.record.status = 200
    headers = client_response_headers(resp.headers)
    headers.pop("content-type", None)
    return StreamingResponse(relay(ex, resp), status_code=200, headers=headers, media_type="text/event-stream")


def answer_holdback(ex: Exchange, shape: Shape, value: Callable[[], Any], last: list[Inspection]) -> HoldBack:
    """The hold-back window of a streamed answer: each check reads `value()`, the answer
    so far in `shape`'s form (`last` keeps the latest check). Text already sent cannot be
    rewritten, so an answer check that asks for sanitize cuts the stream like a block."""
    s = ex.state.settings

    async def check(_: dict[int, str], final: bool) -> ProxyError | None:
        v = value()
        if not s.check_answers or not shape.text(v).strip():
            return None
        insp = await ex.profile.answers.ainspect(shape, v, OUTBOUND)
        last[:] = [insp]
        if insp.action is Action.SANITIZE:
            insp.decision.escalate(Action.BLOCK, "a streamed answer cannot be sanitized")
            insp.refresh()
        return blocked_error(insp.decision, OUTBOUND) if insp.action is Action.BLOCK else None

    return HoldBack(check, holdback=s.stream_holdback_chars, check_every=s.stream_check_every_chars)


async def stream_failed(ex: Exchange, hb: HoldBack, e: ProxyError) -> tuple[list[bytes], ProxyError]:
    """A stream ends in an error: the held text it may still send (upstream trouble:
    what was received, once checked) and the error it ends with (a block wins)."""
    rec, metrics = ex.record, ex.state.metrics
    held: list[bytes] = []
    if e.kind != "blocked":
        rec.errors.append(f"{e.code}: {e.message}")
        rec.stage = "upstream"
        metrics.errors.labels(e.kind).inc()
        try:
            held = await hb.finish()
        except ProxyError as blocked:
            e = blocked
    if e.kind == "blocked":
        rec.decision = Action.BLOCK.value
        metrics.errors.labels("blocked").inc()
    rec.status = e.status
    return held, e


async def upstream_error_event(ex: Exchange, hb: HoldBack, error: str, event: bytes) -> list[bytes]:
    """The upstream reports an error mid-stream: what came before it (once checked),
    then its event, passed on."""
    out = await hb.finish()
    ex.record.errors.append(f"upstream stream error: {error[:300]}")
    ex.record.stage = "upstream"
    return [*out, event]


async def relay(ex: Exchange, resp: httpx.Response) -> AsyncIterator[bytes]:
    s = ex.state.settings
    last: list[Inspection] = []
    hb = answer_holdback(ex, STREAMED_ANSWERS, lambda: dict(hb.texts), last)
    done = False
    try:
        try:
            previous_id = ""
            async for ev in upstream_events(resp, s.upstream_timeout):
                if ev.data.strip() == "[DONE]":
                    done = True
                    break
                obj = parse_data(ev)
                encoded = encode_event(ev, previous_id)
                previous_id = ev.id
                if isinstance(obj, dict) and obj.get("error") is not None:
                    for b in await upstream_error_event(ex, hb, str(obj.get("error")), encoded):
                        yield b
                    return
                for b in await hb.push(encoded, hb.add_text(choice_texts(obj, ex.endpoint, delta=True))):
                    yield b
            if not done:
                raise ProxyError(502, "upstream_stream_cut", "upstream closed the stream before it was complete",
                                 kind="upstream_cut")
            for b in await hb.finish():
                yield b
            yield b"data: [DONE]\n\n"
        except ProxyError as e:
            held, e = await stream_failed(ex, hb, e)
            for b in held:
                yield b
            yield sse_error_event(e, ex.request_id)
    finally:
        end_stream(ex, last[0] if last else None, answers_text(hb.texts), done,
                   lambda: (ex.sent, ex.inbound.segments), hb.texts.get(0))  # type: ignore[union-attr]
        try:
            await resp.aclose()
        except Exception:  # noqa: BLE001 - the client is gone or the upstream broke: nothing to do
            pass


def end_stream(ex: Exchange, answer_check: Inspection | None, answer_text: str, done: bool,
               audit_request: AuditRequest, audit_text: str | None) -> None:
    """What a finished stream leaves in the record (its last answer check, the answer's
    hash, an audit after the fact: see `audit_answer` for `audit_request`), then the
    record itself."""
    rec = ex.record
    if answer_check is not None:
        ex.state.metrics.decisions.labels(OUTBOUND, answer_check.action.value).inc()
        rec.note(answer_check)
        if answer_check.action is Action.BLOCK:
            rec.stage = OUTBOUND
    rec.hash_texts(answer=answer_text, keep=ex.state.settings.store_text)
    auditor, inbound = ex.profile.auditor, ex.inbound
    if auditor is not None and inbound is not None and done and rec.decision != Action.BLOCK.value:
        try:  # a stream has reached the client: its audit can only be after the fact
            if auditor.should_audit(inbound.segments, inbound.findings, answer=audit_text):
                asked = audit_request()
                if asked is not None:
                    auditor.submit(asked[0], asked[1], audit_text, inbound.findings)
        except Exception as e:  # noqa: BLE001
            rec.errors.append(f"audit: {type(e).__name__}: {e}")
    finish(ex)


def finish(ex: Exchange) -> None:
    """The record: latency, queued for the store, one log line."""
    rec = ex.record
    rec.latency_ms = (time.perf_counter() - ex.t0) * 1000
    ex.state.store.put(rec)
    log.info("request", extra={"fields": {
        "request_id": rec.request_id, "endpoint": rec.endpoint, "status": rec.status,
        "decision": rec.decision, "stage": rec.stage, "client": rec.client, "api_key": rec.api_key,
        "model": rec.model, "stream": rec.stream, "latency_ms": round(rec.latency_ms, 2),
        "summary": rec.summary, "errors": rec.errors[:3],
    }})


# -- reading the body ----------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None and cl.strip().isdigit() and int(cl) > limit:
        raise ProxyError(413, "request_too_large", f"request body of {int(cl)} bytes exceeds the limit of {limit} bytes",
                         kind="too_large")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ProxyError(413, "request_too_large", f"request body exceeds the limit of {limit} bytes",
                             kind="too_large")
    return bytes(buf)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes, endpoint: str) -> dict[str, Any]:
    """Decode, parse and shape-check a request body; errors are 400s in OpenAI format."""
    if not raw.strip():
        raise ProxyError(400, "invalid_request", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProxyError(400, "invalid_encoding", f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProxyError(400, "invalid_json", f"the request body is not valid JSON: {e}"[:300]) from None
    if not isinstance(body, dict):
        raise ProxyError(400, "invalid_request", f"the request body must be a JSON object, got {type(body).__name__}")
    if endpoint == "responses":
        return _responses_body(body)
    key = ENDPOINT_KEYS[endpoint]
    if key not in body:
        raise ProxyError(400, "invalid_request", f"'{key}' is required", param=key)
    other = "prompt" if key == "messages" else "messages"
    if other in body:
        raise ProxyError(400, "invalid_request", f"'{other}' is not accepted on this endpoint", param=other)
    if "model" in body and not isinstance(body["model"], str):
        raise ProxyError(400, "invalid_request", "'model' must be a string", param="model")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise ProxyError(400, "invalid_request", "'stream' must be a boolean", param="stream")
    if key == "prompt":
        p = body["prompt"]
        if not isinstance(p, (str, list)):
            raise ProxyError(400, "invalid_request", "'prompt' must be a string or a list of strings", param="prompt")
        if isinstance(p, list) and p and not all(isinstance(x, str) for x in p):
            # token-id prompts cannot be read, so they cannot be checked
            raise ProxyError(400, "invalid_request", "'prompt' must be a string or a list of strings "
                             "(token ids cannot be checked)", param="prompt")
    return body


def _responses_body(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_body(body)
    except ParseError as e:
        raise ProxyError(400, "invalid_request", str(e)) from None
