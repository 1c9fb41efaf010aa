"""The drop-in OpenAI-compatible proxy: an application changes only its `base_url`.

    app = create_app(load_settings(upstream="http://127.0.0.1:8000/v1"))

Stages per checked request (chat and completions): authenticate → read body
(size limit, UTF-8, JSON, shape) → segments → guard (inbound decision) →
block | sanitize | flag/allow → forward (pooled httpx, retries) → answer check
(non-streamed: whole answer; streamed: hold-back window) → [answer audit] →
audit record (queued, written off the request path). Every response carries
`x-promptguard-decision` and `x-promptguard-request-id`. No client header can
change a decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fnmatch
import itertools
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..guard import Guard, GuardResult
from ..policy import Action, DetectorConfig, Policy, load_policy
from ..sanitize import apply_to_text
from ..segments import Segment
from .errors import ProxyError, error_body, sse_error_event
from .logs import configure_logging
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .paths import path_problem, same_route
from .pipeline import (
    Checker,
    answer_segments,
    answer_texts,
    blocked_error,
    decision_dicts,
    parse_body,
    prompt_text,
    segments_for,
    sha256_text,
    worst,
)
from .settings import ApiKey, ProxySettings, load_settings
from .store import AuditRecord, Store, open_store
from .streaming import HoldBack, event_text, iter_sse, parse_data, upstream_bytes
from .upstream import Upstream, client_response_headers, forward_request_headers, upstream_error_from_response

__all__ = ["create_app", "app_from_env", "ProxyState"]

log = logging.getLogger("promptguard.proxy")

DECISION_HEADER = "x-promptguard-decision"
REQUEST_ID_HEADER = "x-promptguard-request-id"
# decision header values besides the policy's actions
NO_DECISION = "none"  # routes that are not checked (health, metrics, pass-through)
ERROR_DECISION = "error"  # the request was rejected before a decision (bad input, auth)
_OWN_HEADERS = (DECISION_HEADER.encode(), REQUEST_ID_HEADER.encode())


def _build_guard(policy_path: Path | None, baseline: Path | None) -> Guard:
    policy = load_policy(policy_path)
    if baseline is not None:  # as `promptguard scan --baseline`
        current = policy.detectors["baseline"].options if "baseline" in policy.detectors else {}
        policy.detectors["baseline"] = DetectorConfig(**{**current, "path": str(baseline), "enabled": True})
    return Guard(policy)


def _answer_guard(guard: Guard, settings: ProxySettings) -> Guard:
    """The guard for answers: the same detector instances, restricted to the ones named by
    the policy's `proxy: {answer_detectors: [...]}` or the `answer_detectors` setting."""
    names = (guard.policy.proxy or {}).get("answer_detectors", settings.answer_detectors)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("policy proxy.answer_detectors must be a list of detector names")
    if "*" in names:
        return guard
    return Guard(guard.policy, detectors=[d for d in guard.detectors if d.name in names])


def _make_auditor(policy: Policy, settings: ProxySettings) -> tuple[Any, Any]:
    """The answer audit of the policy's `audit:` section, or None when it is off or
    not installed. INTEGRATION POINT: promptguard.audit (Auditor, AuditConfig) and
    promptguard.backends.create_backend, as documented in docs/audit.md."""
    mode = str((policy.audit or {}).get("mode", "off")).lower()
    if mode == "off":
        return None, None
    try:
        from ..audit import AuditConfig, Auditor  # type: ignore[attr-defined]
        from ..backends import create_backend  # type: ignore[attr-defined]
    except ImportError as e:
        raise ValueError(f"the policy enables the answer audit (mode {mode!r}) but it is unavailable: {e}") from None
    cfg = AuditConfig.from_policy(policy)
    # the audit's own calls go to the same upstream, with the configured upstream key
    key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key is not None else None
    backend = create_backend(settings.upstream, api_key=key, timeout=settings.upstream_timeout,
                             connect_timeout=settings.upstream_connect_timeout)
    return Auditor(backend, cfg), cfg


@dataclass
class _Profile:
    """What one policy needs at run time: its guard and, when enabled, its answer audit."""

    checker: Checker
    answer_checker: Checker
    auditor: Any = None
    audit_cfg: Any = None


@dataclass
class KeyContext:
    name: str
    profile: _Profile
    upstream_auth: str | None

    @property
    def checker(self) -> Checker:
        return self.profile.checker

    @property
    def answer_checker(self) -> Checker:
        return self.profile.answer_checker

    @property
    def auditor(self) -> Any:
        return self.profile.auditor


@dataclass
class ProxyState:
    settings: ProxySettings
    metrics: Metrics
    profiles: dict[Path | None, _Profile]
    store: Store
    transport: httpx.AsyncBaseTransport | None = None
    upstream: Upstream | None = None
    warm: bool = False
    warm_errors: list[str] = field(default_factory=list)
    _ready_cache: tuple[float, bool, str] = (0.0, False, "")

    # -- who is calling --------------------------------------------------------------
    def authenticate(self, request: Request) -> KeyContext:
        s = self.settings
        configured = f"Bearer {s.upstream_api_key.get_secret_value()}" if s.upstream_api_key else None
        client_auth = request.headers.get("authorization")
        if not s.api_keys:
            p = self.profiles[s.policy]
            return KeyContext("", p, configured or client_auth)
        presented = request.headers.get("x-promptguard-api-key")
        via_own_header = presented is not None
        if presented is None and client_auth and client_auth.lower().startswith("bearer "):
            presented = client_auth[7:].strip()
        if not presented:
            raise ProxyError(401, "missing_api_key", "this proxy requires an API key: send it as "
                             "'Authorization: Bearer <key>' or 'x-promptguard-api-key'", kind="auth")
        key: ApiKey | None = next((k for k in s.api_keys if k.matches(presented)), None)
        if key is None:
            raise ProxyError(401, "invalid_api_key", "the API key is not valid for this proxy", kind="auth")
        p = self.profiles[key.policy if key.policy is not None else s.policy]
        # the proxy key itself never goes upstream
        upstream_auth = configured or (client_auth if via_own_header else None)
        return KeyContext(key.name, p, upstream_auth)

    # -- readiness ---------------------------------------------------------------------
    async def ready(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        t, ok, why = self._ready_cache
        if now - t > self.settings.ready_cache_seconds or not ok:
            assert self.upstream is not None
            ok, why = await self.upstream.ping(timeout=min(2.0, self.settings.upstream_timeout))
            self._ready_cache = (now, ok, why)
        info = {"models_loaded": self.warm and not self.warm_errors, "upstream_reachable": ok,
                "upstream": why, "errors": self.warm_errors}
        return (self.warm and not self.warm_errors and ok), info

    async def warm_up(self) -> None:
        """Run every guard once so lazily loaded models are in memory before traffic."""
        from ..parsing import segments_from_messages

        segs = segments_from_messages([{"role": "system", "content": "You are helpful."},
                                       {"role": "user", "content": "What is 2 + 3?"}])
        errors: list[str] = []
        for prof in self.profiles.values():
            res = await prof.checker.guard.acheck(segs)
            errors.extend(res.decision.errors)
            res = await prof.answer_checker.guard.acheck(answer_segments({0: "2 + 3 = 5. The answer is 5."}))
            errors.extend(res.decision.errors)
        self.warm_errors = errors
        self.warm = True
        if errors:
            log.error("warm-up check had errors: %s", "; ".join(errors))


class _Envelope:
    """ASGI middleware: request id, the decision headers on every response, request metrics."""

    def __init__(self, app: ASGIApp, state: ProxyState):
        self.app = app
        self.pg = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _next_request_id()
        st = scope.setdefault("state", {})
        st["request_id"] = rid
        st["decision"] = NO_DECISION
        path = scope.get("path", "")
        endpoint = path if path in _KNOWN else ("/v1/*" if path.startswith("/v1/") else "other")
        m = self.pg.metrics
        m.in_flight.inc()
        t0 = time.perf_counter()
        status = 500
        problem = path_problem(scope.get("raw_path"), path)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OWN_HEADERS]
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                headers.append((DECISION_HEADER.encode(), str(st.get("decision", NO_DECISION)).encode()))
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_wrapper(message)

        try:
            if problem is not None:
                # refused before routing: a path whose meaning could change on its way
                # to the upstream must not pick a route here (see paths.py)
                st["decision"] = ERROR_DECISION
                m.errors.labels("bad_path").inc()
                err = ProxyError(400, "invalid_path", f"invalid request path: {problem}", kind="bad_path")
                await _error_response(err, rid)(scope, receive, send_tracking)
                return
            await self.app(scope, receive, send_tracking)
        except Exception:  # a bug: answer in the OpenAI format, with the headers, and log it
            log.exception("unhandled error", extra={"fields": {"request_id": rid}})
            m.errors.labels("internal").inc()
            if not started:
                st["decision"] = ERROR_DECISION
                err = ProxyError(500, "internal_error", "promptguard internal error; see the proxy log "
                                 f"for request {rid}")
                await _error_response(err, rid)(scope, receive, send_tracking)
        finally:
            m.in_flight.dec()
            m.requests.labels(endpoint, str(status)).inc()
            m.request_seconds.labels(endpoint).observe(time.perf_counter() - t0)


# request ids: a random per-process prefix and a counter (unique across workers and
# replicas without a system call per request)
_RID_PREFIX = "pg-" + uuid.uuid4().hex[:12]
_rid_counter = itertools.count(1)


def _next_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):012x}"


_KNOWN = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz", "/readyz", "/metrics"}


def _error_response(err: ProxyError, request_id: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(err, request_id), status_code=err.status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
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


def _sanitized_body(body: dict[str, Any], result: GuardResult) -> dict[str, Any]:
    """The request with the guard's edits applied; every other field untouched."""
    out = dict(body)
    if "messages" in body:
        out["messages"] = result.sanitized_messages(body["messages"])
        return out
    prompt = body["prompt"]
    if isinstance(prompt, str):
        out["prompt"] = result.sanitized_text(prompt)
    else:
        out["prompt"] = [apply_to_text(p, [e for e in result.edits if e.segment.prompt == i])
                         for i, p in enumerate(prompt)]
    return out


def _sanitize_answers(data: dict[str, Any], result: GuardResult, endpoint: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for pos, ch in enumerate(data.get("choices") or []):
        if not isinstance(ch, dict):
            continue
        idx = ch.get("index") if isinstance(ch.get("index"), int) else pos
        edits = [e for e in result.edits if e.segment.prompt == idx]
        if not edits:
            continue
        if endpoint == "chat" and isinstance(ch.get("message"), dict) and isinstance(ch["message"].get("content"), str):
            ch["message"]["content"] = apply_to_text(ch["message"]["content"], edits)
        elif endpoint == "completions" and isinstance(ch.get("text"), str):
            ch["text"] = apply_to_text(ch["text"], edits)
    return data


def create_app(settings: ProxySettings | None = None, *,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the proxy. Policies, detectors, API keys and the store URL are validated
    here, so a bad configuration fails before the server listens. `transport`
    replaces the network to the upstream (tests)."""
    s = settings or load_settings()
    if not s.upstream:
        raise ValueError("no upstream configured: pass --upstream URL or set PROMPTGUARD_UPSTREAM")
    store = open_store(s.store, start=False)  # a bad store URL fails before any model loads
    configure_logging(s.log_level, s.log_json)
    metrics = Metrics()
    profiles: dict[Path | None, _Profile] = {}
    for p in s.policy_paths():
        guard = _build_guard(p, s.baseline)
        inline = frozenset(s.inline_detectors)
        profiles[p] = _Profile(Checker(guard, metrics, inline), Checker(_answer_guard(guard, s), metrics, inline),
                               *_make_auditor(guard.policy, s))
    state = ProxyState(s, metrics, profiles, store, transport)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.store.start()
        state.upstream = Upstream(s, transport=state.transport)
        await state.warm_up()
        log.info("promptguard proxy ready", extra={"fields": {
            "upstream": s.upstream, "store": getattr(state.store, "url", ""),
            "policies": [str(p) if p else "default" for p in profiles],
            "detectors": sorted({d.name for pr in profiles.values() for d in pr.checker.guard.detectors}),
        }})
        try:
            yield
        finally:
            await state.upstream.aclose()
            await asyncio.to_thread(state.store.close)
            log.info("promptguard proxy stopped", extra={"fields": {"records_written": state.store.written,
                                                                    "records_failed": state.store.failed}})

    app = FastAPI(title="promptguard proxy", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible firewall proxy: every request and answer is checked.")
    app.state.pg = state
    app.add_middleware(_Envelope, state=state)

    # -- errors in the OpenAI format ------------------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        err = ProxyError(exc.status_code, code, str(exc.detail))
        _set_decision(request, ERROR_DECISION)
        return _error_response(err, request.state.request_id)

    # -- operations ------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        ok, info = await state.ready()
        return JSONResponse({"status": "ready" if ok else "not ready", **info}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics_endpoint() -> Response:
        metrics.store_queue.set(state.store.queued)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- checked endpoints --------------------------------------------------------------------
    @app.post("/v1/chat/completions", tags=["openai"], openapi_extra=_body_schema("messages"))
    async def chat_completions(request: Request) -> Response:
        return await _checked(request, "chat")

    @app.post("/v1/completions", tags=["openai"], openapi_extra=_body_schema("prompt"))
    async def completions(request: Request) -> Response:
        return await _checked(request, "completions")

    @app.get("/v1/models", tags=["openai"])
    async def models(request: Request) -> Response:
        return await _passthrough(request, "models")

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], tags=["openai"])
    async def passthrough(request: Request, path: str) -> Response:
        return await _passthrough(request, path)

    # -- the pipeline ---------------------------------------------------------------------------
    async def _checked(request: Request, endpoint: str) -> Response:
        rid: str = request.state.request_id
        t0 = time.perf_counter()
        rec = AuditRecord(request_id=rid, ts=time.time(), endpoint=request.url.path, decision=ERROR_DECISION,
                          stage="request", client=request.client.host if request.client else "")
        _set_decision(request, ERROR_DECISION)
        streaming_started = False
        try:
            key = state.authenticate(request)
            rec.api_key = key.name
            raw = await _read_body(request, s.max_body_bytes)
            body = parse_body(raw, endpoint)
            rec.model = body.get("model") or ""
            rec.stream = body.get("stream") is True
            segments = segments_for(body)
            ptext = prompt_text(body)
            rec.prompt_sha256 = sha256_text(ptext)
            if s.store_text:
                rec.prompt_text = ptext

            # inbound check
            result = await key.checker.check(segments, "inbound")
            action = result.action
            _note(rec, result, "inbound")
            _set_decision(request, action.value)
            metrics.decisions.labels("inbound", action.value).inc()
            if action is Action.BLOCK:
                raise blocked_error(result, "inbound")
            out = raw
            sent_body = body
            if action is Action.SANITIZE:
                out, sent_body = await _apply_sanitize(key, body, result, rec)

            headers = forward_request_headers(request.headers, key.upstream_auth)
            headers["content-type"] = "application/json"
            upstream_path = "/chat/completions" if endpoint == "chat" else "/completions"
            assert state.upstream is not None
            tu = time.perf_counter()
            resp = await state.upstream.send("POST", upstream_path, query=request.url.query,
                                             headers=headers, content=out)
            ctype = resp.headers.get("content-type", "")
            if rec.stream and resp.status_code == 200 and "text/event-stream" in ctype:
                rec.upstream_ms = (time.perf_counter() - tu) * 1000  # to the response headers
                metrics.upstream_seconds.labels(request.url.path).observe(rec.upstream_ms / 1000)
                streaming_started = True
                return _stream(endpoint, key, resp, rec, segments, sent_body, action, t0, result.findings)

            data_bytes = await state.upstream.read(resp)
            rec.upstream_ms = (time.perf_counter() - tu) * 1000
            metrics.upstream_seconds.labels(request.url.path).observe(rec.upstream_ms / 1000)
            passthrough_headers = client_response_headers(resp.headers)
            if resp.status_code != 200:
                up_err = upstream_error_from_response(resp.status_code, data_bytes)
                if up_err is not None:
                    rec.stage = "upstream"
                    raise up_err
                # the upstream's own 4xx answer to the client's request: passed on as it is
                rec.status = resp.status_code
                return Response(data_bytes, status_code=resp.status_code, headers=passthrough_headers)
            if rec.stream:
                raise ProxyError(502, "upstream_invalid_response",
                                 f"asked for a stream but the upstream answered {ctype or 'no content type'}",
                                 kind="upstream_invalid")
            try:
                data = json.loads(data_bytes)
            except ValueError:
                raise ProxyError(502, "upstream_invalid_response", "upstream answered with invalid JSON",
                                 kind="upstream_invalid") from None
            if not isinstance(data, dict):
                raise ProxyError(502, "upstream_invalid_response", "upstream answered with JSON that is not an object",
                                 kind="upstream_invalid")

            texts = answer_texts(data, endpoint)
            rec.answer_sha256 = sha256_text("\n\n".join(texts[i] for i in sorted(texts)))
            if s.store_text:
                rec.answer_text = "\n\n".join(texts[i] for i in sorted(texts))
            changed = False
            if s.check_answers and any(texts.values()):
                out_res = await key.answer_checker.check(answer_segments(texts), "outbound")
                metrics.decisions.labels("outbound", out_res.action.value).inc()
                if out_res.action.rank > Action.ALLOW.rank:
                    _note(rec, out_res, "outbound", merge=True)
                if out_res.action is Action.BLOCK:
                    _set_decision(request, Action.BLOCK.value)
                    raise blocked_error(out_res, "outbound")
                if out_res.action is Action.SANITIZE:
                    data = _sanitize_answers(data, out_res, endpoint)
                    changed = True
                action = worst(action, out_res.action)
            if key.auditor is not None:
                data, audit_action, audit_changed = await _audit(key, sent_body, segments, result, data, endpoint, rec)
                changed = changed or audit_changed
                action = worst(action, audit_action)
                if audit_action is Action.BLOCK:
                    _set_decision(request, Action.BLOCK.value)
                    raise ProxyError(400, "answer_blocked", "Answer blocked by promptguard: the answer audit "
                                     "found a backdoor trigger in the request", type_="promptguard_blocked",
                                     details={"decision": {"action": "block", "audit": rec.summary}}, kind="blocked")
            rec.decision = action.value
            _set_decision(request, action.value)
            rec.status = 200
            content = json.dumps(data).encode() if changed else data_bytes
            return Response(content, status_code=200, headers=passthrough_headers, media_type="application/json")
        except ProxyError as e:
            rec.status = e.status
            if e.kind == "blocked":
                rec.decision = Action.BLOCK.value
            else:
                rec.errors = [*rec.errors, f"{e.code}: {e.message}"]
            metrics.errors.labels(e.kind).inc()
            return _error_response(e, rid)
        finally:
            if not streaming_started:
                _finish(rec, t0)

    async def _apply_sanitize(key: KeyContext, body: dict[str, Any], result: GuardResult,
                              rec: AuditRecord) -> tuple[bytes, dict[str, Any]]:
        """Rewrite the request, and re-check it: what the rewrite leaves must not block."""
        try:
            new_body = _sanitized_body(body, result)
            again = await key.checker.check(segments_for(new_body), "sanitized")
        except Exception as e:  # noqa: BLE001 - our own failure: the policy's on_error decides
            if key.checker.fails_open:
                rec.errors.append(f"sanitize failed, forwarded unchanged (on_error: allow): {e}")
                return json.dumps(body).encode(), body
            result.decision.escalate(Action.BLOCK, f"proxy: sanitize failed: {type(e).__name__}: {e}")
            raise blocked_error(result, "inbound") from None
        if again.action is Action.BLOCK:
            result.decision.escalate(Action.BLOCK, "the sanitized request still blocks: " + again.decision.summary())
            rec.decision = Action.BLOCK.value
            raise blocked_error(again if again.decision.reasons else result, "inbound")
        return json.dumps(new_body).encode(), new_body

    async def _audit(key: KeyContext, body: dict[str, Any], segments: list[Segment], result: GuardResult,
                     data: dict[str, Any], endpoint: str, rec: AuditRecord) -> tuple[dict[str, Any], Action, bool]:
        """The answer audit, inline (holds the response) or after the fact (logs only)."""
        auditor = key.auditor
        try:
            if not auditor.should_audit(segments, result.findings):
                return data, Action.ALLOW, False
            answer = answer_texts(data, endpoint).get(0)
            if not getattr(key.profile.audit_cfg, "inline", True):
                auditor.submit(body, segments, answer, result.findings)
                return data, Action.ALLOW, False
            report = await auditor.audit(body, segments, answer, result.findings)
        except Exception as e:  # noqa: BLE001 - decided like a detector error
            fail = Action(key.checker.guard.policy.on_error)
            rec.errors.append(f"audit: {type(e).__name__}: {e}")
            return data, fail, False
        rec.summary = (rec.summary + f"; audit: {report.status}, {report.extra_calls} extra calls"
                       + (f", trigger {report.trigger!r}" if report.trigger else "")).lstrip("; ")
        if not report.findings:
            return data, Action.ALLOW, False
        decision = key.checker.guard.policy.decide(report.findings)
        rec.findings.extend(f.to_dict() for f in report.findings)
        if report.trusted_answer and getattr(key.profile.audit_cfg, "return_trusted_answer", False):
            data = copy.deepcopy(data)
            ch = data["choices"][0]
            if endpoint == "chat":
                ch["message"]["content"] = report.trusted_answer
            else:
                ch["text"] = report.trusted_answer
            return data, worst(Action.FLAG, Action.SANITIZE if decision.action is Action.BLOCK else decision.action), True
        return data, decision.action, False

    def _stream(endpoint: str, key: KeyContext, resp: httpx.Response, rec: AuditRecord,
                segments: list[Segment], body: dict[str, Any], inbound: Action, t0: float,
                inbound_findings: list[Any]) -> StreamingResponse:
        rid = rec.request_id
        last: dict[str, Any] = {"result": None}

        async def check(texts: dict[int, str], final: bool) -> ProxyError | None:
            if not s.check_answers or not any(texts.values()):
                return None
            res = await key.answer_checker.check(answer_segments(texts), "outbound")
            last["result"] = res
            if res.action in (Action.BLOCK, Action.SANITIZE):
                # text already sent cannot be rewritten: a streamed answer that needs
                # sanitizing is cut like a blocked one
                if res.action is Action.SANITIZE:
                    res.decision.escalate(Action.BLOCK, "a streamed answer cannot be sanitized")
                return blocked_error(res, "outbound")
            return None

        hb = HoldBack(check, holdback=s.stream_holdback_chars, check_every=s.stream_check_every_chars)

        async def gen() -> AsyncIterator[bytes]:
            done = False
            try:
                try:
                    async for ev in iter_sse(upstream_bytes(resp, s.upstream_timeout)):
                        if ev.data is None:
                            for b in await hb.push(ev, 0):
                                yield b
                            continue
                        if ev.data.strip() == "[DONE]":
                            done = True
                            break
                        obj = parse_data(ev)
                        if isinstance(obj, dict) and obj.get("error") is not None:
                            # the upstream reports an error mid-stream: check what came
                            # before it, then pass it on
                            for b in await hb.finish():
                                yield b
                            rec.errors.append(f"upstream stream error: {str(obj.get('error'))[:300]}")
                            rec.stage = "upstream"
                            yield ev.encode()
                            return
                        n = hb.add_text(event_text(obj, endpoint))
                        for b in await hb.push(ev, n):
                            yield b
                    if not done:
                        raise ProxyError(502, "upstream_stream_cut", "upstream closed the stream before it was complete",
                                         kind="upstream_cut")
                    for b in await hb.finish():
                        yield b
                    yield b"data: [DONE]\n\n"
                except ProxyError as e:
                    if e.kind != "blocked":
                        # upstream trouble: release what was received, once checked, then the error
                        rec.errors.append(f"{e.code}: {e.message}")
                        rec.stage = "upstream"
                        metrics.errors.labels(e.kind).inc()
                        try:
                            for b in await hb.finish():
                                yield b
                        except ProxyError as blocked:
                            e = blocked
                    if e.kind == "blocked":
                        rec.decision = Action.BLOCK.value
                        rec.stage = "outbound"
                        metrics.errors.labels("blocked").inc()
                    rec.status = e.status
                    yield sse_error_event(e, rid)
            finally:
                res = last["result"]
                if res is not None:
                    metrics.decisions.labels("outbound", res.action.value).inc()
                    if res.action.rank > Action.ALLOW.rank:
                        _note(rec, res, "outbound", merge=True)
                    if rec.decision != Action.BLOCK.value:
                        rec.decision = worst(inbound, res.action if res.action is not Action.SANITIZE
                                             else Action.BLOCK).value
                answer = "\n\n".join(hb.texts[i] for i in sorted(hb.texts))
                rec.answer_sha256 = sha256_text(answer)
                if s.store_text:
                    rec.answer_text = answer
                if key.auditor is not None and done and rec.decision != Action.BLOCK.value:
                    try:
                        if key.auditor.should_audit(segments, inbound_findings):
                            key.auditor.submit(body, segments, hb.texts.get(0), inbound_findings)
                    except Exception as ex:  # noqa: BLE001
                        rec.errors.append(f"audit: {type(ex).__name__}: {ex}")
                _finish(rec, t0)
                with contextlib.suppress(Exception):
                    await resp.aclose()

        rec.status = 200
        rec.decision = inbound.value
        headers = client_response_headers(resp.headers)
        headers.pop("content-type", None)
        return StreamingResponse(gen(), status_code=200, headers=headers, media_type="text/event-stream")

    async def _passthrough(request: Request, path: str) -> Response:
        rid: str = request.state.request_id
        try:
            checked = next((c for c in ("chat/completions", "completions") if same_route(path, c)), None)
            if checked == path:
                raise ProxyError(405, "method_not_allowed", f"{request.method} is not allowed on /v1/{path}; use POST",
                                 kind="bad_request")
            if checked is not None:  # another spelling of a checked route never passes through
                raise ProxyError(400, "invalid_path", f"invalid request path /v1/{path}: routes are case-sensitive, "
                                 f"use /v1/{checked}", kind="bad_path")
            key = state.authenticate(request)
            if any(fnmatch.fnmatchcase(path.strip("/").lower(), pat.lower()) for pat in s.passthrough_deny):
                raise ProxyError(403, "route_not_checked", f"/v1/{path} carries prompts this proxy does not check, "
                                 "so it is refused (setting passthrough_deny)", kind="denied")
            raw = await _read_body(request, s.max_body_bytes)
            assert state.upstream is not None
            headers = forward_request_headers(request.headers, key.upstream_auth)
            resp = await state.upstream.send(request.method, "/" + path, query=request.url.query,
                                             headers=headers, content=raw or None)
        except ProxyError as e:
            metrics.errors.labels(e.kind).inc()
            _set_decision(request, ERROR_DECISION)
            return _error_response(e, rid)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream_bytes(resp, s.upstream_timeout):
                    yield chunk
            except ProxyError as e:
                metrics.errors.labels(e.kind).inc()
                log.warning("pass-through body broke: %s", e.message, extra={"fields": {"request_id": rid}})
            finally:
                await resp.aclose()

        return StreamingResponse(body(), status_code=resp.status_code, headers=client_response_headers(resp.headers))

    def _finish(rec: AuditRecord, t0: float) -> None:
        rec.latency_ms = (time.perf_counter() - t0) * 1000
        state.store.put(rec)
        log.info("request", extra={"fields": {
            "request_id": rec.request_id, "endpoint": rec.endpoint, "status": rec.status,
            "decision": rec.decision, "stage": rec.stage, "client": rec.client, "api_key": rec.api_key,
            "model": rec.model, "stream": rec.stream, "latency_ms": round(rec.latency_ms, 2),
            "summary": rec.summary, "errors": rec.errors[:3],
        }})

    return app


def _set_decision(request: Request, value: str) -> None:
    request.scope.setdefault("state", {})["decision"] = value


def _note(rec: AuditRecord, result: GuardResult, stage: str, merge: bool = False) -> None:
    d = result.decision
    found = decision_dicts(result)
    for f in found:
        f["stage"] = stage
    rec.checks = sorted(set(rec.checks) | set(d.checks))
    if merge:
        rec.findings.extend(found)
        rec.errors.extend(d.errors)
        rec.changes.extend(d.changes)
        if result.action.rank >= Action.FLAG.rank:
            rec.stage = stage
            rec.summary = (rec.summary + f"; {stage}: " + d.summary()).lstrip("; ")
    else:
        rec.findings = found
        rec.errors = list(d.errors)
        rec.changes = list(d.changes)
        rec.stage = stage
        rec.summary = d.summary()
    rec.decision = worst(Action(rec.decision) if rec.decision in {a.value for a in Action} else Action.ALLOW,
                         result.action).value


def _body_schema(required: str) -> dict[str, Any]:
    """A loose request-body schema for the OpenAPI document: the proxy forwards every
    field, so only what it reads is described."""
    props: dict[str, Any] = {
        "model": {"type": "string"},
        "stream": {"type": "boolean"},
    }
    if required == "messages":
        props["messages"] = {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["role"],
            "properties": {"role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                           "content": {"type": "string"}}}}
    else:
        props["prompt"] = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": [required], "properties": props, "additionalProperties": True}}}}}


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from
    $PROMPTGUARD_CONFIG and PROMPTGUARD_* variables."""
    return create_app(load_settings())

