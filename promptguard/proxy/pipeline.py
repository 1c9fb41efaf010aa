"""The request pipeline's stages, independent of HTTP:

read body → parse → segments → guard (inbound) → forward → answer segments →
guard (outbound) → [answer audit] → record.

Every stage that fails on its own (not a detector: the guard already records
those) fails closed: the policy's `on_error` decides, never the client.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from ..guard import Guard, GuardResult
from ..parsing import ParseError, segments_from_request
from ..policy import Action
from ..segments import Anchor, Segment, SegmentKind
from .errors import BLOCKED_TYPE, ProxyError
from .metrics import Metrics

__all__ = ["Checker", "parse_body", "answer_segments", "answer_texts", "sha256_text", "blocked_error",
           "ENDPOINT_KEYS"]

log = logging.getLogger("promptguard.proxy")

# which body field each checked endpoint requires
ENDPOINT_KEYS = {"chat": "messages", "completions": "prompt"}


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


def segments_for(body: dict[str, Any]) -> list[Segment]:
    try:
        return segments_from_request(body)
    except ParseError as e:
        raise ProxyError(400, "invalid_request", str(e)) from None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() if text else ""


def prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        from ..sanitize import message_text

        return "\n\n".join(f"[{m.get('role')}] {message_text(m)}" for m in body["messages"] if isinstance(m, dict))
    p = body.get("prompt")
    return p if isinstance(p, str) else "\n\n".join(x for x in p or [] if isinstance(x, str))


def answer_texts(resp: Any, endpoint: str) -> dict[int, str]:
    """choice index → answer text of a non-streamed chat or completion response."""
    out: dict[int, str] = {}
    if not isinstance(resp, dict) or not isinstance(resp.get("choices"), list):
        return out
    for pos, ch in enumerate(resp["choices"]):
        if not isinstance(ch, dict):
            continue
        idx = ch.get("index") if isinstance(ch.get("index"), int) else pos
        if endpoint == "chat":
            msg = ch.get("message")
            content = msg.get("content") if isinstance(msg, dict) else None
            if isinstance(content, list):
                content = "\n\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            text = content if isinstance(content, str) else ""
        else:
            text = ch.get("text") if isinstance(ch.get("text"), str) else ""
        out[idx] = text
    return out


def answer_segments(texts: dict[int, str]) -> list[Segment]:
    """One `answer` segment per choice (index = choice index, its own prompt group)."""
    return [
        Segment(kind=SegmentKind.ANSWER, index=i, text=t, anchors=(Anchor(0, len(t), None, 0),),
                role="assistant", prompt=i, source="upstream")
        for i, t in sorted(texts.items()) if t
    ]


def blocked_error(result: GuardResult, stage: str) -> ProxyError:
    d = result.decision
    if d.reasons:
        f = d.reasons[0]
        who = f"rule {f.rule} of detector {f.detector}" if f.rule else f"detector {f.detector}"
        where = f"{f.segment_kind.value}[{f.segment_index}]"
        msg = f"{'Request' if stage == 'inbound' else 'Answer'} blocked by promptguard: {who} on {where}: {f.message}"
    elif d.errors:
        msg = f"{'Request' if stage == 'inbound' else 'Answer'} blocked by promptguard: a check failed and the policy fails closed ({d.errors[0]})"
    else:
        msg = f"{'Request' if stage == 'inbound' else 'Answer'} blocked by promptguard"
    code = ("prompt_blocked" if stage == "inbound" else "answer_blocked") if d.reasons else "check_failed"
    return ProxyError(
        400, code, msg[:1000], type_=BLOCKED_TYPE,
        details={"decision": d.to_dict()},
        kind="blocked",
    )


@dataclass
class Checker:
    """Runs a guard and records its metrics; a failure of the pipeline itself fails closed."""

    guard: Guard
    metrics: Metrics | None = None
    # detectors cheap enough to run on the event loop (no thread hand-off) for small inputs
    inline_detectors: frozenset[str] = frozenset()
    inline_max_chars: int = 20_000

    def _inline(self, segments: Sequence[Segment]) -> bool:
        return (all(d.name in self.inline_detectors for d in self.guard.detectors)
                and sum(len(s.text) for s in segments) <= self.inline_max_chars)

    async def check(self, segments: Sequence[Segment], stage: str) -> GuardResult:
        import time

        t0 = time.perf_counter()
        try:
            if self._inline(segments):
                result = self.guard.check(segments)
            else:
                result = await self.guard.acheck(segments)
        except Exception as e:  # noqa: BLE001 - decided by the policy's on_error
            log.exception("check failed")
            decision = self.guard.policy.decide([], errors=[f"proxy: {type(e).__name__}: {e}"])
            result = GuardResult(list(segments), decision)
        if self.metrics is not None:
            m = self.metrics
            m.check_seconds.labels(stage).observe(time.perf_counter() - t0)
            for name, secs in result.timings.items():
                m.detector_seconds.labels(name, stage).observe(secs)
            for f in result.decision.reasons:
                m.findings.labels(f.detector, stage).inc()
            if result.decision.errors:
                m.detector_errors.labels(stage).inc(len(result.decision.errors))
        return result

    @property
    def fails_open(self) -> bool:
        return self.guard.policy.on_error == "allow"


def decision_dicts(result: GuardResult | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    out = []
    for f, a in zip(result.decision.reasons, result.decision.actions):
        d = f.to_dict(result.segment_for(f))
        d["action"] = a.value
        out.append(d)
    return out


def worst(*actions: Action) -> Action:
    return max(actions, key=lambda a: a.rank)


__all__ += ["decision_dicts", "worst", "segments_for", "prompt_text"]
