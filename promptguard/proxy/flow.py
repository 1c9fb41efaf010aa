"""One checked request (`/v1/chat/completions`, `/v1/completions`; the steps are shared
with `/v1/responses`, `responses.py`), from route to record.

    checked(request, endpoint)          the route: `serve` with the steps below, in order
      read_request(ex)                  authenticate, read the body (size, UTF-8, JSON, shape)
      until_disconnect(ex, ...)         the rest, stopped when the client goes away
        inspect_request(ex)             the inbound inspection: block | sanitize | flag | allow
        forward(ex)                     send the checked body, re-serialized, upstream
        answer(ex, resp)                a whole answer: inspect it, [audit it], respond
        stream(ex, resp)                a streamed answer: hold back, inspect as it grows
      finish(ex)                        the record: latency, store (queued), log

Each step is a module-level function of one `Exchange` (the request in flight), so it
can be read, called and tested on its own, and the Responses route is the same steps
around its own shapes, events and bridge: `serve`, `read_answer`, `check_answer`,
`audit_answer`, `answer_holdback`, `relay_stream`, `end_stream`. Decisions are the
inspection step's (`promptguard.inspection`), the same as the LangChain integration's
and the scanner's; what is the proxy's own is HTTP: status codes, headers, the
hold-back window, and what happens when the client goes away (the checks and the
upstream call are cancelled: status 499 in the record) or the server shuts down under
a request (503 in the OpenAI error format, or a final error event in a stream; the
record says so).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..inspection import INBOUND, OUTBOUND, Inspection, Shape, audit_failed, audit_summary, fold_audit, \
    reference_segments
from ..parsing import CHAT, COMPLETION, ParseError
from ..parsing.answers import CHAT_RESPONSE, COMPLETION_RESPONSE, STREAMED_ANSWERS, answers_text, choice_texts, \
    stream_texts
from ..parsing.responses import RESPONSE_OUTPUT, RESPONSES, validate_body
from ..policy import Action, Decision
from ..records import BLOCKED_STATUS, ERROR_DECISION, Record
from ..segments import Segment
from .errors import BLOCKED_TYPE, ProxyError, blocked_error, error_body, sse_error_event
from .state import Caller, ProxyState
from .streaming import HoldBack, encode_event, parse_data, upstream_events
from .upstream import client_response_headers, forward_request_headers, upstream_error_from_response

__all__ = ["Exchange", "checked", "serve", "begin", "failed", "read_request", "parse_body", "inspect_request",
           "encode_body", "forward", "is_stream", "answer", "read_answer", "check_answer", "audit_answer",
           "answer_holdback", "stream", "RelayResponse", "relay_stream", "stream_failed", "upstream_stream_error",
           "end_stream", "finish", "set_decision", "error_response", "read_body", "until_disconnect",
           "SHUTDOWN_ERROR", "CLIENT_GONE_STATUS"]

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
    content: bytes = b""  # what goes upstream: the checked body (the client's, or the sanitized one), re-serialized
    sent: dict[str, Any] | None = None  # the body that went upstream
    inbound: Inspection | None = None
    streaming: bool = False  # the response is a stream, which records itself when it ends
    # set when nobody waits for the answer any more: the checks in flight stop (limits.Budget)
    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic() by which the upstream must be done
    client_gone: bool = False  # the client closed the connection
    recorded: bool = False

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


# the status a record gets when the client went away before its answer (nginx's convention)
CLIENT_GONE_STATUS = 499
# what a request cut by the server's shutdown gets, and its record
SHUTDOWN_ERROR = ProxyError(503, "server_shutting_down", "promptguard is shutting down; retry the request",
                            kind="shutdown")


# -- the route -----------------------------------------------------------------------------


async def checked(request: Request, endpoint: str) -> Response:
    return await serve(request, endpoint, _respond)


async def _respond(ex: Exchange) -> Response:
    await inspect_request(ex)
    resp = await forward(ex)
    if is_stream(ex, resp):
        return stream(ex, resp)
    return await answer(ex, resp)


def begin(request: Request, endpoint: str) -> Exchange:
    """A checked request arrives: its exchange and its record (an error until decided);
    it counts as in flight until `finish` records it (shutdown waits for it)."""
    state: ProxyState = request.app.state.pg
    rec = Record(request_id=request.state.request_id, ts=time.time(), endpoint=request.url.path,
                 decision=ERROR_DECISION, stage="request", client=request.client.host if request.client else "")
    set_decision(request, ERROR_DECISION)
    state.in_flight += 1
    return Exchange(state, request, endpoint, rec, time.perf_counter())


async def serve(request: Request, endpoint: str, respond: Callable[[Exchange], Awaitable[Response]]) -> Response:
    """A checked route: the body read, then `respond(ex)` (inspect, forward, answer or
    stream) until the client goes away; errors are answered in the OpenAI format, and a
    shutdown that cancels the request leaves an accurate record."""
    ex = begin(request, endpoint)
    rec = ex.record
    try:
        await read_request(ex)
        return await until_disconnect(ex, respond(ex))
    except ProxyError as e:
        return failed(ex, e)
    except asyncio.CancelledError:  # the server cancels the request (shutdown past its grace period)
        rec.status = SHUTDOWN_ERROR.status
        rec.errors = [*rec.errors, "cut by the server's shutdown before the answer (the client got a 503)"]
        ex.state.metrics.errors.labels(SHUTDOWN_ERROR.kind).inc()
        raise
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
        rec.errors = [*rec.errors, e.describe()]
    ex.state.metrics.errors.labels(e.kind).inc()
    return error_response(e, ex.request_id)


async def until_disconnect(ex: Exchange, work: Coroutine[Any, Any, Response]) -> Response:
    """Run `work` unless the client goes away first: then the checks in flight are
    stopped (`ex.cancel`), the upstream call is cancelled, and the record says 499.
    (A stream watches for the client itself: `RelayResponse`.)"""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(ex.request.receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        ex.cancel.set()
        task.cancel()
        gone.cancel()
        raise
    if task.done():
        gone.cancel()
        return task.result()
    ex.client_gone = True
    ex.cancel.set()
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - cancelled, or failed while cancelling: the client is gone either way
        pass
    raise ProxyError(CLIENT_GONE_STATUS, "client_disconnected", "the client closed the connection before the "
                     "answer; the checks and the upstream call were cancelled", kind="client_gone")


async def _disconnected(receive: Receive) -> None:
    """Return when the client disconnects (the body has been read: nothing else comes)."""
    while (await receive())["type"] != "http.disconnect":
        pass


# -- the steps -----------------------------------------------------------------------------


async def read_request(ex: Exchange) -> None:
    """Who calls, and what they sent: the body read within the size limit and parsed."""
    ex.caller = ex.state.authenticate(ex.request)
    ex.record.api_key = ex.caller.name
    ex.content = await read_body(ex.request, ex.state.settings.max_body_bytes)
    ex.body = ex.sent = parse_body(ex.content, ex.endpoint)
    ex.record.model = ex.body.get("model") or ""
    ex.record.stream = ex.body.get("stream") is True
    ex.deadline = time.monotonic() + ex.profile.inspector.policy.proxy.upstream_deadline_s


async def inspect_request(ex: Exchange) -> None:
    """The inbound inspection; a block is answered here, a sanitized body replaces the
    client's for the upstream."""
    assert ex.body is not None
    inspector = ex.profile.inspector
    insp = await inspector.ainspect(_SHAPES[ex.endpoint], ex.body, INBOUND, budget=inspector.budget(ex.cancel))
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
    # what goes upstream is what was checked, re-serialized: never the client's bytes, in
    # which a duplicate key could be read one way here and another way upstream
    ex.content = encode_body(ex.sent)


def encode_body(body: Any) -> bytes:
    """A request body as JSON bytes (UTF-8; `\\u` escapes only where UTF-8 cannot say
    it, for lone surrogates)."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")


async def forward(ex: Exchange, path: str | None = None, content: bytes | None = None) -> httpx.Response:
    """Send the checked body upstream (or `content` to `path`: the Responses bridge's
    chat request, made from the checked body); the response body is not read yet."""
    assert ex.caller is not None
    headers = forward_request_headers(ex.request.headers, ex.caller.upstream_auth)
    headers["content-type"] = "application/json"
    t = time.perf_counter()
    resp = await ex.state.upstream.send("POST", path or _PATHS[ex.endpoint], query=ex.request.url.query,
                                        headers=headers, content=ex.content if content is None else content,
                                        deadline=ex.deadline)
    ex.record.upstream_ms = (time.perf_counter() - t) * 1000  # to the response headers
    return resp


def is_stream(ex: Exchange, resp: httpx.Response) -> bool:
    """The client asked for a stream and the upstream answers with one."""
    return (ex.record.stream and resp.status_code == 200
            and "text/event-stream" in resp.headers.get("content-type", ""))


async def read_answer(ex: Exchange, resp: httpx.Response) -> tuple[dict[str, Any] | None, bytes, dict[str, str]]:
    """The upstream's whole answer: (its JSON object, its bytes, the headers for the
    client). The object is None for an upstream 4xx, which goes to the client as it is;
    a 5xx (its text kept out of the client's answer), garbage, the deadline or a stream
    where none was asked for is a ProxyError."""
    t = time.perf_counter()
    data_bytes = await ex.state.upstream.read(resp, ex.deadline)
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
    out = await _check_answer(ex, shape, data)
    ex.state.metrics.decisions.labels(OUTBOUND, out.action.value).inc()
    return out


async def _check_answer(ex: Exchange, shape: Any, value: Any) -> Inspection:
    """The answer detectors over an answer, with the request's segments as reference
    (the system prompt it must not repeat, the conversation a URL must not carry),
    within the policy's limits, stopped when nobody waits for it any more."""
    answers = ex.profile.answers
    reference = reference_segments(ex.inbound.segments) if ex.inbound is not None else ()
    return await answers.ainspect(shape, value, OUTBOUND, reference=reference, budget=answers.budget(ex.cancel))


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


# -- a streamed answer ---------------------------------------------------------------------


StreamBody = Callable[[Exchange, httpx.Response], AsyncIterator[bytes]]


def stream(ex: Exchange, resp: httpx.Response, body: StreamBody | None = None,
           extra_headers: dict[str, str] | None = None) -> StreamingResponse:
    """A streamed answer: relayed event by event behind the hold-back window by `body`
    (chat and completions: `relay`); the record is written when the stream ends."""
    ex.streaming = True
    ex.state.metrics.upstream_seconds.labels(ex.request.url.path).observe((ex.record.upstream_ms or 0.0) / 1000)
    ex.record.status = 200
    headers = client_response_headers(resp.headers)
    headers.pop("content-type", None)
    headers.update(extra_headers or {})
    return RelayResponse(ex, resp, headers, (body or relay)(ex, resp))


class RelayResponse(StreamingResponse):
    """The streamed answer's response: it notes when the client goes away (so that a cut
    stream's record can tell a client that left from a server that stopped), and makes
    sure the exchange is recorded even when the stream never started."""

    def __init__(self, ex: Exchange, resp: httpx.Response, headers: dict[str, str],
                 body: AsyncIterator[bytes] | None = None):
        super().__init__(relay(ex, resp) if body is None else body, status_code=200, headers=headers,
                         media_type="text/event-stream")
        self.ex, self.upstream_response = ex, resp

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        self.ex.client_gone = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            ex = self.ex
            if not ex.recorded:  # cut while the relay waited to send, or before it started
                ex.record.status = CLIENT_GONE_STATUS if ex.client_gone else SHUTDOWN_ERROR.status
                ex.record.errors.append("the stream was cut: " + ("the client went away" if ex.client_gone
                                                                  else "the server stopped"))
                await self.body_iterator.aclose()  # type: ignore[attr-defined]  # runs relay's own ending
                if not ex.recorded:  # it never started
                    await self.upstream_response.aclose()
                    finish(ex)


def answer_holdback(ex: Exchange, shape: Shape, value: Callable[[], Any], last: list[Inspection]) -> HoldBack:
    """The hold-back window of a streamed answer: each check reads `value()`, the answer
    so far in `shape`'s form (`last` keeps the latest check), with the request as
    reference and within the policy's limits (`_check_answer`). Text already sent
    cannot be rewritten, so an answer check that asks for sanitize cuts the stream like
    a block."""
    s = ex.state.settings

    async def check(_: dict[Any, str], final: bool) -> ProxyError | None:
        v = value()
        if not s.check_answers or not shape.text(v).strip():
            return None
        insp = await _check_answer(ex, shape, v)
        last[:] = [insp]
        if insp.action is Action.SANITIZE:
            insp.decision.escalate(Action.BLOCK, "a streamed answer cannot be sanitized")
            insp.refresh()
        return blocked_error(insp.decision, OUTBOUND) if insp.action is Action.BLOCK else None

    return HoldBack(check, holdback=s.stream_holdback_chars, check_every=s.stream_check_every_chars)


def upstream_stream_error(detail: str) -> ProxyError:
    """The upstream reports an error mid-stream: the stream ends with an error of our own
    (what came before it is checked and released first); the upstream's text stays in
    the record."""
    return ProxyError(502, "upstream_error", "the upstream reported an error in the stream", internal=detail[:300])


async def stream_failed(ex: Exchange, hb: HoldBack, e: ProxyError) -> tuple[list[bytes], ProxyError]:
    """A stream ends in an error: the held text it may still send (upstream trouble:
    what was received, once checked) and the error it ends with (a block wins)."""
    rec, metrics = ex.record, ex.state.metrics
    held: list[bytes] = []
    if e.kind != "blocked":
        rec.errors.append(e.describe())
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


async def relay_stream(ex: Exchange, resp: httpx.Response, hb: HoldBack, events: AsyncIterator[bytes],
                       error_event: Callable[[ProxyError], bytes], end: Callable[[], None]) -> AsyncIterator[bytes]:
    """What every streamed answer shares around its own `events` (which push through
    `hb` and raise a ProxyError on trouble or a block): the error that ends a failed
    stream (`error_event(e)`, the API's own form), the record of a stream the client
    left (499) or the server cut (503, with a final error event the client can read),
    the checks stopped, `end()` (see `end_stream`) and the upstream response closed."""
    rec = ex.record
    try:
        try:
            async for b in events:
                yield b
        except ProxyError as e:
            held, e = await stream_failed(ex, hb, e)
            for b in held:
                yield b
            yield error_event(e)
    except asyncio.CancelledError:
        if ex.client_gone:  # nobody to tell
            rec.status = CLIENT_GONE_STATUS
            rec.errors.append("the client closed the stream before its end")
            raise
        # the server stops under the stream: end it with an error event the client can read
        rec.status = SHUTDOWN_ERROR.status
        rec.errors.append("stream cut by the server's shutdown (the client got a final error event)")
        ex.state.metrics.errors.labels(SHUTDOWN_ERROR.kind).inc()
        yield error_event(SHUTDOWN_ERROR)
    finally:
        ex.cancel.set()  # a check still running for this stream stops
        try:
            end()
        finally:
            try:
                await events.aclose()  # type: ignore[attr-defined]
                await resp.aclose()
            except Exception:  # noqa: BLE001 - the client is gone or the upstream broke: nothing to do
                pass


def relay(ex: Exchange, resp: httpx.Response) -> AsyncIterator[bytes]:
    """A chat or completions stream: the upstream's events relayed as they are, their
    texts (tool-call arguments included) checked behind the hold-back window."""
    s = ex.state.settings
    last: list[Inspection] = []
    hb = answer_holdback(ex, STREAMED_ANSWERS, lambda: dict(hb.texts), last)
    done = False

    async def events() -> AsyncIterator[bytes]:
        nonlocal done
        previous_id = ""
        async for ev in upstream_events(resp, s.upstream_timeout, ex.deadline):
            if ev.data.strip() == "[DONE]":
                done = True
                break
            obj = parse_data(ev)
            encoded = encode_event(ev, previous_id)
            previous_id = ev.id
            if isinstance(obj, dict) and obj.get("error") is not None:
                raise upstream_stream_error(str(obj.get("error")))
            for b in await hb.push(encoded, hb.add_text(stream_texts(obj, ex.endpoint))):
                yield b
        if not done:
            raise ProxyError(502, "upstream_stream_cut", "upstream closed the stream before it was complete",
                             kind="upstream_cut")
        for b in await hb.finish():
            yield b
        yield b"data: [DONE]\n\n"

    def end() -> None:
        end_stream(ex, last[0] if last else None, answers_text(hb.texts), done,
                   lambda: (ex.sent, ex.inbound.segments), hb.texts.get(0))  # type: ignore[union-attr]

    return relay_stream(ex, resp, hb, events(), lambda e: sse_error_event(e, ex.request_id), end)


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
    """The record: latency, queued for the store, one log line. Without `store_text`,
    no request or answer text stays in it (`Record.redact`)."""
    if ex.recorded:
        return
    ex.recorded = True
    ex.state.in_flight -= 1
    rec = ex.record
    rec.latency_ms = (time.perf_counter() - ex.t0) * 1000
    if not ex.state.settings.store_text:
        rec.redact()
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


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: it could not be forwarded as JSON
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_body(raw: bytes, endpoint: str) -> dict[str, Any]:
    """Decode, parse and shape-check a request body; errors are 400s in OpenAI format."""
    if not raw.strip():
        raise ProxyError(400, "invalid_request", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProxyError(400, "invalid_encoding", f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
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
