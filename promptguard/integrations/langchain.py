"""LangChain integration: a callback handler that checks what flows through a chain,
and a Runnable that can rewrite prompts before the model.

- `PromptGuardCallbackHandler` (sync; also works in async chains, where LangChain runs
  it on its executor) checks chat messages / prompts when a model starts (few-shot and
  chain-of-thought demonstrations included), retrieved documents and tool output as
  `context`, and the model's answer (plus the answer audit when configured). A `block`
  decision raises `PromptBlocked`, which really stops the run: the handler sets
  `raise_error = True`, without which LangChain logs and swallows callback errors.
- `AsyncPromptGuardCallbackHandler` does the same with `await guard.acheck(...)`, for
  async chains only (LangChain drops exceptions from async handlers in sync runs; the
  handler notices and warns).
- `PromptGuardRunnable` (`guard | model`, `retriever | guard`) applies `sanitize`
  decisions, which a callback cannot: it returns the rewritten prompt, messages or
  documents, passes clean input through unchanged (the same object) and raises
  `PromptBlocked` on `block`.

Every check goes through the same `Guard` and policy file as the proxy and the
scanner; every decision becomes a `GuardEvent` that is kept on the handler (per run
id, with the run's tags and metadata), handed to an optional `recorder` callable, and
written to the proxy's audit store when one is given (`store=` a path/URL or a store).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import threading
import time
import uuid
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue
from langchain_core.runnables import Runnable, RunnableConfig

from ..findings import Finding
from ..guard import Guard, GuardResult
from ..parsing import ParseError, segments_from_prompt
from ..parsing.openai import parse_messages
from ..policy import Action, Decision, Policy, load_policy
from ..sanitize import apply_to_messages, message_text
from ..segments import Segment, SegmentBuilder, SegmentKind

__all__ = [
    "AsyncPromptGuardCallbackHandler",
    "GuardEvent",
    "LocalEmbeddings",
    "PromptBlocked",
    "PromptGuardCallbackHandler",
    "PromptGuardRunnable",
    "segments_for_answers",
    "segments_for_documents",
    "segments_for_messages",
    "segments_for_tool_output",
]

log = logging.getLogger("promptguard.langchain")

Recorder = Callable[["GuardEvent"], None]


# -----------------------------------------------------------------------------
# results


@dataclass
class GuardEvent:
    """One check the integration made: what was checked, what was decided, what was done."""

    event: str  # chat_model_start | llm_start | retriever_end | tool_end | llm_end | runnable
    decision: Decision
    action: Action  # what the integration did (sanitize becomes block inside a callback)
    run_id: uuid.UUID | None = None
    parent_run_id: uuid.UUID | None = None
    name: str = ""  # model, retriever or tool name
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    result: GuardResult | None = None
    elapsed_ms: float = 0.0
    ts: float = field(default_factory=time.time)
    text: str = ""  # what was checked, joined (hashed for the store; kept only in memory)
    audit: dict[str, Any] | None = None
    enforced: bool = True  # False when a block could not stop the run (see the async handler)

    @property
    def findings(self) -> list[Finding]:
        return self.decision.findings

    @property
    def reasons(self) -> list[Finding]:
        return self.decision.reasons

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    @property
    def stage(self) -> str:
        return "outbound" if self.event == "llm_end" else "inbound"

    def _segment_for(self, f: Finding) -> Segment | None:
        for s in self.segments:
            if s.kind is f.segment_kind and s.index == f.segment_index and s.prompt == f.prompt:
                return s
        return None

    def findings_dicts(self) -> list[dict[str, Any]]:
        return [f.to_dict(self._segment_for(f)) for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "event": self.event,
            "action": self.action.value,
            "decision": self.decision.to_dict(),
            "summary": self.decision.summary(),
            "findings": self.findings_dicts(),
            "run_id": str(self.run_id) if self.run_id else None,
            "parent_run_id": str(self.parent_run_id) if self.parent_run_id else None,
            "name": self.name,
            "tags": list(self.tags),
            "elapsed_ms": round(self.elapsed_ms, 3),
            "ts": self.ts,
        }
        if self.audit is not None:
            d["audit"] = self.audit
        if not self.enforced:
            d["enforced"] = False
        return d


class PromptBlocked(RuntimeError):
    """The policy blocked a LangChain run. Carries the decision and its findings."""

    def __init__(self, event: GuardEvent):
        self.event = event
        self.decision: Decision = event.decision
        self.findings: list[Finding] = list(event.decision.findings)
        self.reasons: list[Finding] = list(event.decision.reasons)
        self.run_id = event.run_id
        where = {
            "chat_model_start": "the prompt",
            "llm_start": "the prompt",
            "retriever_end": "a retrieved document",
            "tool_end": f"the output of tool {event.name!r}" if event.name else "tool output",
            "llm_end": "the model's answer",
            "runnable": "the input",
        }.get(event.event, event.event)
        msg = f"promptguard blocked {where}: {event.decision.summary()}"
        if event.decision.errors:
            msg += f" ({'; '.join(event.decision.errors[:2])})"
        super().__init__(msg)


# -----------------------------------------------------------------------------
# LangChain objects -> segments

_ROLE = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant",
         "system": "system", "developer": "developer", "tool": "tool", "function": "function"}


def _content(content: Any) -> Any:
    """LangChain content (str, or a list of str / content blocks) → OpenAI content."""
    if isinstance(content, str) or content is None:
        return content or ""
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append({"type": "text", "text": p})
            elif isinstance(p, dict) and "type" in p:
                parts.append(p)
            else:
                raise ParseError(f"unsupported content block {type(p).__name__}")
        return parts
    raise ParseError(f"unsupported message content {type(content).__name__}")


def messages_to_openai(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """BaseMessages (or message-likes: tuples, dicts, strings) → OpenAI message dicts.

    Each dict keeps the original position under `_pg_index` so that rewritten
    messages can be mapped back onto the original objects."""
    out = []
    msgs = list(messages)
    if msgs and not all(isinstance(m, BaseMessage) for m in msgs):
        try:
            msgs = convert_to_messages(msgs)
        except Exception as e:  # noqa: BLE001 - LangChain raises several types here
            raise ParseError(f"cannot read messages: {e}") from None
    for i, m in enumerate(msgs):
        mtype = str(getattr(m, "type", "")).lower()
        role = getattr(m, "role", None) if mtype == "chat" else mtype
        role = _ROLE.get(str(role).lower()) if role else None
        if role is None:
            raise ParseError(f"message {i} ({type(m).__name__}) has no known role")
        d: dict[str, Any] = {"role": role, "content": _content(m.content), "_pg_index": i}
        if role in ("tool", "function"):
            d["name"] = getattr(m, "name", None) or getattr(m, "tool_call_id", None) or role
        out.append(d)
    return out


def segments_for_messages(batch: Sequence[Sequence[Any]]) -> tuple[list[Segment], list[list[dict[str, Any]]]]:
    """One chat prompt per item of `batch` (one `prompt` group each)."""
    b = SegmentBuilder()
    converted = []
    for i, messages in enumerate(batch):
        msgs = messages_to_openai(messages)
        converted.append(msgs)
        if msgs:
            parse_messages(msgs, b, prompt=i)
    return b.segments, converted


def _doc_text(d: Any) -> str:
    if isinstance(d, Document):
        return d.page_content
    if isinstance(d, str):
        return d
    raise ParseError(f"expected Document objects, got {type(d).__name__}")


def segments_for_documents(documents: Sequence[Any], source: str = "retriever") -> list[Segment]:
    """Retrieved documents → one `context` segment each (message_index = position)."""
    b = SegmentBuilder()
    for i, d in enumerate(documents):
        text = _doc_text(d)
        src = source
        meta = getattr(d, "metadata", None) or {}
        if isinstance(meta, dict) and meta.get("source"):
            src = f"{source}:{meta['source']}"
        b.add(SegmentKind.CONTEXT, text, message_index=i, source=src)
    return b.segments


def tool_output_text(output: Any) -> str:
    """Text of whatever a tool returned: a string, a ToolMessage, documents, JSON-able data."""
    if isinstance(output, str):
        return output
    if isinstance(output, BaseMessage):
        return message_text({"content": _content(output.content)})
    if isinstance(output, Document):
        return output.page_content
    if isinstance(output, (list, tuple)) and output and all(isinstance(d, Document) for d in output):
        return "\n\n".join(d.page_content for d in output)
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(output)


def segments_for_tool_output(output: Any, name: str = "tool") -> list[Segment]:
    b = SegmentBuilder()
    b.add(SegmentKind.CONTEXT, tool_output_text(output), message_index=0, source=f"tool:{name}")
    return b.segments


def segments_for_answers(generations: Sequence[Sequence[Any]]) -> list[Segment]:
    """Model outputs (`LLMResult.generations`) → `answer` segments, one prompt group per prompt."""
    b = SegmentBuilder()
    for i, gens in enumerate(generations):
        for j, g in enumerate(gens):
            text = g.text if hasattr(g, "text") else str(g)
            if isinstance(g, ChatGeneration) and not text:
                text = message_text({"content": _content(g.message.content)})
            b.add(SegmentKind.ANSWER, text, message_index=j, prompt=i, source="llm")
    return b.segments


def _joined(segments: Sequence[Segment]) -> str:
    return "\n\n".join(s.text for s in segments)


# -----------------------------------------------------------------------------
# the shared core


def _build_guard(guard: Guard | None, policy: Policy | str | Path | None) -> Guard:
    if guard is not None:
        if policy is not None:
            raise ValueError("pass either guard= or policy=, not both")
        return guard
    if isinstance(policy, Policy):
        return Guard(policy)
    return Guard(load_policy(policy))


def _open_store(store: Any) -> tuple[Any, bool]:
    """A store object (anything with `put`) or a path/URL for the proxy's audit store."""
    if store is None:
        return None, False
    if hasattr(store, "put"):
        return store, False
    try:
        from ..proxy.store import open_store
    except ImportError as e:  # pragma: no cover - the proxy ships with the package
        raise RuntimeError(f"store={store!r} needs promptguard.proxy.store: {e}") from None
    return open_store(str(store)), True


def _audit_record(ev: GuardEvent, record_text: bool) -> Any:
    from ..proxy.store import AuditRecord

    sha = hashlib.sha256(ev.text.encode("utf-8", "surrogatepass")).hexdigest() if ev.text else ""
    answer = ev.event == "llm_end"
    return AuditRecord(
        request_id=f"langchain:{ev.run_id or uuid.uuid4()}:{ev.event}",
        ts=ev.ts,
        endpoint=f"langchain/{ev.event}",
        decision=ev.action.value,
        stage=ev.stage,
        status=403 if ev.blocked else 200,
        client="langchain",
        model=ev.name,
        summary=ev.decision.summary(),
        findings=ev.findings_dicts(),
        errors=list(ev.decision.errors),
        changes=list(ev.decision.changes),
        prompt_sha256="" if answer else sha,
        answer_sha256=sha if answer else "",
        prompt_text=(ev.text if record_text and not answer else None),
        answer_text=(ev.text if record_text and answer else None),
        latency_ms=ev.elapsed_ms,
    )


@dataclass
class _RunState:
    """What a model run's start left for its end (output checks, the audit)."""

    segments: list[Segment]
    findings: list[Finding]
    body: dict[str, Any]
    name: str
    tags: list[str]
    metadata: dict[str, Any]


class _Core:
    """State and logic shared by the sync and async handlers and the Runnable."""

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        policy: Policy | str | Path | None = None,
        check_prompts: bool = True,
        check_documents: bool = True,
        check_tools: bool = True,
        check_outputs: bool = True,
        on_sanitize: str = "block",
        auditor: Any = None,
        audit_backend: str | None = None,
        store: Any = None,
        recorder: Recorder | None = None,
        record_text: bool = False,
        annotate: bool = True,
        annotate_messages: bool = False,
        max_events: int = 1000,
        max_runs: int = 1000,
    ) -> None:
        if on_sanitize not in ("block", "flag"):
            raise ValueError("on_sanitize must be 'block' or 'flag'")
        self.guard = _build_guard(guard, policy)
        self.policy = self.guard.policy
        self.check_prompts = check_prompts
        self.check_documents = check_documents
        self.check_tools = check_tools
        self.check_outputs = check_outputs
        self.on_sanitize = Action(on_sanitize)
        self.auditor = auditor if auditor is not None else self._make_auditor(audit_backend)
        self.store, self._owns_store = _open_store(store)
        self.recorder = recorder
        self.record_text = record_text
        self.annotate = annotate
        self.annotate_messages = annotate_messages
        self.events: deque[GuardEvent] = deque(maxlen=max_events)
        self._by_run: OrderedDict[uuid.UUID, list[GuardEvent]] = OrderedDict()
        self._runs: OrderedDict[uuid.UUID, _RunState] = OrderedDict()
        self._max_runs = max_runs
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------
    def _make_auditor(self, spec: str | None) -> Any:
        if not spec:
            return None
        try:
            from ..audit import AuditConfig, Auditor
            from ..backends import create_backend
        except ImportError as e:
            raise RuntimeError(f"audit_backend={spec!r} needs promptguard.audit: {e}") from None
        return Auditor(create_backend(spec), AuditConfig.from_policy(self.policy))

    # -- reading results ----------------------------------------------------------
    def events_for(self, run_id: uuid.UUID | str) -> list[GuardEvent]:
        """The checks made for one run (a model, retriever or tool run id)."""
        rid = uuid.UUID(str(run_id))
        with self._lock:
            return list(self._by_run.get(rid, ()))

    @property
    def last_event(self) -> GuardEvent | None:
        with self._lock:
            return self.events[-1] if self.events else None

    def close(self) -> None:
        """Flush and close a store the handler opened itself."""
        if self.store is not None and self._owns_store:
            self.store.close()

    # -- deciding -----------------------------------------------------------------
    def _start(self) -> float:
        return time.perf_counter()

    def _error_decision(self, why: str) -> Decision:
        """Input that cannot be read is decided by the policy's on_error (fail closed by default)."""
        return Decision(action=Action(self.policy.on_error), errors=[why], checks=[])

    def _callback_action(self, decision: Decision) -> Action:
        """A callback cannot rewrite what it saw: sanitize becomes `on_sanitize`."""
        if decision.action is not Action.SANITIZE:
            return decision.action
        if self.on_sanitize is Action.BLOCK:
            decision.escalate(Action.BLOCK, "sanitize requested but a callback cannot rewrite "
                              "the input (use PromptGuardRunnable to sanitize)")
        return self.on_sanitize

    def _event(self, name: str, decision: Decision, result: GuardResult | None, segments: list[Segment],
               t0: float, kw: dict[str, Any], *, tool_or_model: str = "", in_callback: bool = True) -> GuardEvent:
        action = self._callback_action(decision) if in_callback else decision.action
        return GuardEvent(
            event=name,
            decision=decision,
            action=action,
            run_id=kw.get("run_id"),
            parent_run_id=kw.get("parent_run_id"),
            name=tool_or_model,
            tags=list(kw.get("tags") or []),
            metadata=dict(kw.get("metadata") or {}),
            segments=segments,
            result=result,
            elapsed_ms=(time.perf_counter() - t0) * 1000.0,
            text=_joined(segments),
        )

    def _check(self, name: str, make: Callable[[], list[Segment]], kw: dict[str, Any], who: str = "",
               in_callback: bool = True) -> GuardEvent:
        t0 = self._start()
        segments: list[Segment] = []
        try:
            segments = make()
            if segments:
                result: GuardResult | None = self.guard.check(segments)
                decision = result.decision
            else:
                result, decision = None, Decision(action=Action.ALLOW, checks=[d.name for d in self.guard.detectors])
        except ParseError as e:
            result, decision = None, self._error_decision(f"cannot read {name} input: {e}")
        except Exception as e:  # never crash the chain; the policy decides
            log.exception("promptguard check failed in %s", name)
            result, decision = None, self._error_decision(f"{type(e).__name__}: {e}")
        return self._event(name, decision, result, segments, t0, kw, tool_or_model=who, in_callback=in_callback)

    async def _acheck(self, name: str, make: Callable[[], list[Segment]], kw: dict[str, Any], who: str = "",
                      in_callback: bool = True) -> GuardEvent:
        t0 = self._start()
        segments: list[Segment] = []
        try:
            segments = make()
            if segments:
                result: GuardResult | None = await self.guard.acheck(segments)
                decision = result.decision
            else:
                result, decision = None, Decision(action=Action.ALLOW, checks=[d.name for d in self.guard.detectors])
        except ParseError as e:
            result, decision = None, self._error_decision(f"cannot read {name} input: {e}")
        except Exception as e:
            log.exception("promptguard check failed in %s", name)
            result, decision = None, self._error_decision(f"{type(e).__name__}: {e}")
        return self._event(name, decision, result, segments, t0, kw, tool_or_model=who, in_callback=in_callback)

    # -- recording ------------------------------------------------------------------
    def _record(self, ev: GuardEvent) -> None:
        with self._lock:
            self.events.append(ev)
            if ev.run_id is not None:
                self._by_run.setdefault(ev.run_id, []).append(ev)
                self._by_run.move_to_end(ev.run_id)
                while len(self._by_run) > self._max_runs:
                    self._by_run.popitem(last=False)
        if ev.action is not Action.ALLOW:
            log.log(logging.WARNING if ev.blocked else logging.INFO, "promptguard %s %s: %s",
                    ev.event, ev.action.value, ev.decision.summary())
        if self.recorder is not None:
            try:
                self.recorder(ev)
            except Exception:  # a broken sink must not break the chain
                log.exception("promptguard recorder failed")
        if self.store is not None:
            try:
                self.store.put(_audit_record(ev, self.record_text))
            except Exception:
                log.exception("promptguard: writing to the audit store failed")

    def _finish(self, ev: GuardEvent) -> GuardEvent:
        self._record(ev)
        if ev.blocked and ev.enforced:
            raise PromptBlocked(ev)
        return ev

    # -- run state ------------------------------------------------------------------
    def _remember(self, run_id: uuid.UUID | None, state: _RunState) -> None:
        if run_id is None:
            return
        with self._lock:
            self._runs[run_id] = state
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)

    def _forget(self, run_id: uuid.UUID | None) -> _RunState | None:
        if run_id is None:
            return None
        with self._lock:
            return self._runs.pop(run_id, None)

    @staticmethod
    def _model_name(serialized: dict[str, Any] | None, kw: dict[str, Any]) -> str:
        params = kw.get("invocation_params") or {}
        name = params.get("model_name") or params.get("model") or kw.get("name")
        if not name and serialized:
            ident = serialized.get("id") or []
            name = ident[-1] if ident else serialized.get("name", "")
        return str(name or "")

    @staticmethod
    def _body(kw: dict[str, Any], model: str, **payload: Any) -> dict[str, Any]:
        params = kw.get("invocation_params") or {}
        body: dict[str, Any] = {"model": model, **payload}
        for k in ("temperature", "max_tokens", "max_completion_tokens", "top_p", "seed", "stop"):
            if params.get(k) is not None:
                body[k] = params[k]
        return body

    # -- the events, as plain functions of their arguments -------------------------------
    def _state_for_chat(self, serialized: Any, messages: Any, kw: dict[str, Any]) -> tuple[Callable[[], list[Segment]], Callable[[GuardEvent | None, list[Segment]], None], str]:
        model = self._model_name(serialized, kw)
        holder: dict[str, Any] = {}

        def make() -> list[Segment]:
            segs, converted = segments_for_messages(messages)
            holder["messages"] = [
                {k: v for k, v in m.items() if k != "_pg_index"} for m in (converted[0] if converted else [])
            ]
            return segs

        def keep(ev: GuardEvent | None, segs: list[Segment]) -> None:
            body = self._body(kw, model, messages=holder.get("messages", []))
            self._remember(kw.get("run_id"), _RunState(
                segs, list(ev.findings) if ev else [], body, model,
                list(kw.get("tags") or []), dict(kw.get("metadata") or {})))

        return make, keep, model

    def _state_for_llm(self, serialized: Any, prompts: list[str], kw: dict[str, Any]) -> tuple[Callable[[], list[Segment]], Callable[[GuardEvent | None, list[Segment]], None], str]:
        model = self._model_name(serialized, kw)

        def make() -> list[Segment]:
            if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
                raise ParseError("prompts must be a list of strings")
            return segments_from_prompt(prompts)

        def keep(ev: GuardEvent | None, segs: list[Segment]) -> None:
            body = self._body(kw, model, prompt=prompts[0] if len(prompts) == 1 else prompts)
            self._remember(kw.get("run_id"), _RunState(
                segs, list(ev.findings) if ev else [], body, model,
                list(kw.get("tags") or []), dict(kw.get("metadata") or {})))

        return make, keep, model

    def _annotate(self, response: LLMResult, events: list[GuardEvent]) -> None:
        if not self.annotate:
            return
        summary = {
            "action": max((e.action for e in events), key=lambda a: a.rank, default=Action.ALLOW).value,
            "checks": [e.to_dict() for e in events],
        }
        try:
            # a new dict: the caller's combined llm_output is a different object and stays as it was
            response.llm_output = {**(response.llm_output or {}), "promptguard": summary}
            if self.annotate_messages:
                for gens in response.generations:
                    for g in gens:
                        if isinstance(g, ChatGeneration):
                            g.message.response_metadata["promptguard"] = summary
        except Exception:  # annotation is best effort
            log.debug("could not annotate the LLM result", exc_info=True)

    def _output_decision(self, ev: GuardEvent, report: Any) -> GuardEvent:
        """Fold the audit's findings into the output decision."""
        if report is None:
            return ev
        try:
            ev.audit = report.to_dict()
        except Exception:  # noqa: BLE001 - the report is optional
            ev.audit = {"status": getattr(report, "status", "unknown")}
        extra = list(getattr(report, "findings", None) or [])
        if extra:
            decision = self.policy.decide(ev.findings + extra, errors=ev.decision.errors,
                                          checks=ev.decision.checks + ["audit"])
            ev.decision = decision
            ev.action = self._callback_action(decision)
        elif "audit" not in ev.decision.checks:
            ev.decision.checks.append("audit")
        return ev

    def _audit_args(self, state: _RunState | None, response: LLMResult) -> tuple[Any, ...] | None:
        if self.auditor is None or state is None or not response.generations or not response.generations[0]:
            return None
        try:
            if not self.auditor.should_audit(state.segments, state.findings):
                return None
        except Exception:
            log.exception("promptguard: should_audit failed")
            return None
        return (state.body, state.segments, response.generations[0][0].text, state.findings)

    def _audit_inline(self) -> bool:
        cfg = getattr(self.auditor, "cfg", None) or getattr(self.auditor, "config", None)
        return bool(getattr(cfg, "inline", True))

    def _audited_later(self, ev: GuardEvent, report: Any) -> None:
        """An after-the-fact audit finished: record what it found (it cannot stop the run)."""
        later = self._output_decision(
            GuardEvent(event="llm_end", decision=Decision(action=Action.ALLOW, checks=[]), action=Action.ALLOW,
                       run_id=ev.run_id, parent_run_id=ev.parent_run_id, name=ev.name, tags=ev.tags,
                       metadata=ev.metadata, segments=ev.segments, text=ev.text),
            report,
        )
        later.event = "llm_end"
        later.enforced = False
        self._record(later)


# -----------------------------------------------------------------------------
# the sync handler (works in sync and async chains)


class PromptGuardCallbackHandler(_Core, BaseCallbackHandler):
    """Checks prompts, retrieved documents, tool output and answers against a policy.

    `block` raises `PromptBlocked` and stops the run. A `sanitize` decision cannot be
    applied from a callback: by default it blocks (`on_sanitize="block"`), or it is only
    recorded (`on_sanitize="flag"`); put a `PromptGuardRunnable` before the model to
    rewrite instead. In async chains LangChain runs this handler on its thread pool, so
    it never blocks the event loop (use `AsyncPromptGuardCallbackHandler` to await the
    guard's async checks instead).
    """

    raise_error: bool = True  # LangChain swallows callback errors otherwise
    run_inline: bool = False

    # LangChain asks these before each event; chain/agent-action events are never needed
    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return not self.check_documents

    @property
    def ignore_agent(self) -> bool:  # tool events are gated by ignore_agent in LangChain
        return not self.check_tools

    @property
    def ignore_llm(self) -> bool:
        return not (self.check_prompts or self.check_outputs or self.auditor is not None)

    @property
    def ignore_chat_model(self) -> bool:
        return self.ignore_llm

    # -- prompts ------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kw: Any) -> None:
        make, keep, model = self._state_for_chat(serialized, messages, kw)
        self._prompt(make, keep, model, "chat_model_start", kw)

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kw: Any) -> None:
        make, keep, model = self._state_for_llm(serialized, prompts, kw)
        self._prompt(make, keep, model, "llm_start", kw)

    def _prompt(self, make: Callable[[], list[Segment]], keep: Callable[..., None], model: str, name: str,
                kw: dict[str, Any]) -> None:
        if not self.check_prompts:
            try:
                keep(None, make())
            except Exception:  # only needed for the answer audit
                log.debug("promptguard: cannot keep the prompt for the audit", exc_info=True)
            return
        ev = self._check(name, make, kw, model)
        if not ev.blocked:
            keep(ev, ev.segments)
        self._finish(ev)

    # -- context ------------------------------------------------------------------------
    def on_retriever_end(self, documents: Sequence[Document], **kw: Any) -> None:
        if self.check_documents:
            self._finish(self._check("retriever_end", lambda: segments_for_documents(documents), kw,
                                     str(kw.get("name") or "retriever")))

    def on_tool_end(self, output: Any, **kw: Any) -> None:
        if self.check_tools:
            name = str(kw.get("name") or "tool")
            self._finish(self._check("tool_end", lambda: segments_for_tool_output(output, name), kw, name))

    # -- answers ------------------------------------------------------------------------
    def on_llm_end(self, response: LLMResult, **kw: Any) -> None:
        state = self._forget(kw.get("run_id"))
        if state is not None:
            kw = {**kw, "tags": kw.get("tags") or state.tags, "metadata": state.metadata}
        who = state.name if state else ""
        if self.check_outputs:
            ev = self._check("llm_end", lambda: segments_for_answers(response.generations), kw, who)
        else:
            ev = self._event("llm_end", Decision(action=Action.ALLOW, checks=[]), None,
                             segments_for_answers(response.generations), self._start(), kw, tool_or_model=who)
        args = self._audit_args(state, response)
        if args is not None:
            if self._audit_inline():
                try:
                    report = self.auditor.audit_sync(*args)
                except Exception as e:  # the audit never takes the chain down
                    log.exception("promptguard: answer audit failed")
                    report = None
                    ev.decision.errors.append(f"audit: {type(e).__name__}: {e}")
                ev = self._output_decision(ev, report)
            else:
                self._audit_in_background(ev, args)
        prior = self.events_for(kw["run_id"]) if kw.get("run_id") else []
        self._annotate(response, prior + [ev])
        if self.check_outputs or ev.audit is not None:
            self._finish(ev)

    def on_llm_error(self, error: BaseException, **kw: Any) -> None:
        self._forget(kw.get("run_id"))

    def _audit_in_background(self, ev: GuardEvent, args: tuple[Any, ...]) -> None:
        def work() -> None:
            try:
                self._audited_later(ev, self.auditor.audit_sync(*args))
            except Exception:
                log.exception("promptguard: background answer audit failed")

        threading.Thread(target=work, name="promptguard-audit", daemon=True).start()


# -----------------------------------------------------------------------------
# the async handler


def _driven_by_sync_manager() -> bool:
    """Is this coroutine being run by LangChain's sync callback manager (which swallows
    every exception an async handler raises)?"""
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "_run_coros" and f.f_globals.get("__name__") == "langchain_core.callbacks.manager":
            return True
        f = f.f_back
    return False


class AsyncPromptGuardCallbackHandler(_Core, AsyncCallbackHandler):
    """The async twin: awaits `guard.acheck` (async detectors natively, sync ones in threads).

    For async chains (`ainvoke`, `astream`, ...). In a sync run LangChain would swallow the
    exception this handler raises, so a block could not stop the run: the handler detects
    that, records the event with `enforced=False`, logs an error and warns. Use
    `PromptGuardCallbackHandler` for code that runs chains synchronously.
    """

    raise_error: bool = True
    run_inline: bool = False

    ignore_chain = PromptGuardCallbackHandler.ignore_chain
    ignore_retry = PromptGuardCallbackHandler.ignore_retry
    ignore_custom_event = PromptGuardCallbackHandler.ignore_custom_event
    ignore_retriever = PromptGuardCallbackHandler.ignore_retriever
    ignore_agent = PromptGuardCallbackHandler.ignore_agent
    ignore_llm = PromptGuardCallbackHandler.ignore_llm
    ignore_chat_model = PromptGuardCallbackHandler.ignore_chat_model

    def _afinish(self, ev: GuardEvent, in_sync_run: bool) -> GuardEvent:
        if ev.blocked and in_sync_run:
            ev.enforced = False
            msg = ("AsyncPromptGuardCallbackHandler ran in a synchronous LangChain run, where LangChain "
                   "drops exceptions from async callbacks: the run was NOT stopped "
                   f"({ev.decision.summary()}). Use PromptGuardCallbackHandler for sync runs.")
            log.error(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return self._finish(ev)

    async def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]],
                                  **kw: Any) -> None:
        sync_run = _driven_by_sync_manager()
        make, keep, model = self._state_for_chat(serialized, messages, kw)
        await self._aprompt(make, keep, model, "chat_model_start", kw, sync_run)

    async def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kw: Any) -> None:
        sync_run = _driven_by_sync_manager()
        make, keep, model = self._state_for_llm(serialized, prompts, kw)
        await self._aprompt(make, keep, model, "llm_start", kw, sync_run)

    async def _aprompt(self, make: Callable[[], list[Segment]], keep: Callable[..., None], model: str, name: str,
                       kw: dict[str, Any], sync_run: bool) -> None:
        if not self.check_prompts:
            try:
                keep(None, make())
            except Exception:  # only needed for the answer audit
                log.debug("promptguard: cannot keep the prompt for the audit", exc_info=True)
            return
        ev = await self._acheck(name, make, kw, model)
        if not ev.blocked or sync_run:
            keep(ev, ev.segments)
        self._afinish(ev, sync_run)

    async def on_retriever_end(self, documents: Sequence[Document], **kw: Any) -> None:
        sync_run = _driven_by_sync_manager()
        if self.check_documents:
            ev = await self._acheck("retriever_end", lambda: segments_for_documents(documents), kw,
                                    str(kw.get("name") or "retriever"))
            self._afinish(ev, sync_run)

    async def on_tool_end(self, output: Any, **kw: Any) -> None:
        sync_run = _driven_by_sync_manager()
        if self.check_tools:
            name = str(kw.get("name") or "tool")
            ev = await self._acheck("tool_end", lambda: segments_for_tool_output(output, name), kw, name)
            self._afinish(ev, sync_run)

    async def on_llm_end(self, response: LLMResult, **kw: Any) -> None:
        sync_run = _driven_by_sync_manager()
        state = self._forget(kw.get("run_id"))
        if state is not None:
            kw = {**kw, "tags": kw.get("tags") or state.tags, "metadata": state.metadata}
        who = state.name if state else ""
        if self.check_outputs:
            ev = await self._acheck("llm_end", lambda: segments_for_answers(response.generations), kw, who)
        else:
            ev = self._event("llm_end", Decision(action=Action.ALLOW, checks=[]), None,
                             segments_for_answers(response.generations), self._start(), kw, tool_or_model=who)
        args = self._audit_args(state, response)
        if args is not None:
            if self._audit_inline():
                try:
                    report = await self.auditor.audit(*args)
                except Exception as e:
                    log.exception("promptguard: answer audit failed")
                    report = None
                    ev.decision.errors.append(f"audit: {type(e).__name__}: {e}")
                ev = self._output_decision(ev, report)
            else:
                self._schedule_audit(ev, args)
        prior = self.events_for(kw["run_id"]) if kw.get("run_id") else []
        self._annotate(response, prior + [ev])
        if self.check_outputs or ev.audit is not None:
            self._afinish(ev, sync_run)

    async def on_llm_error(self, error: BaseException, **kw: Any) -> None:
        self._forget(kw.get("run_id"))

    def _schedule_audit(self, ev: GuardEvent, args: tuple[Any, ...]) -> None:
        async def work() -> None:
            try:
                self._audited_later(ev, await self.auditor.audit(*args))
            except Exception:
                log.exception("promptguard: background answer audit failed")

        task = asyncio.get_running_loop().create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _tasks(self) -> set[asyncio.Task[Any]]:
        tasks = self.__dict__.get("_pg_tasks")
        if tasks is None:
            tasks = self.__dict__["_pg_tasks"] = set()
        return tasks


# -----------------------------------------------------------------------------
# the Runnable: sanitize (rewrite) before the model


class PromptGuardRunnable(Runnable[Any, Any]):
    """Check what passes through and rewrite it when the policy says `sanitize`.

    Put it where the callback cannot act: `prompt | PromptGuardRunnable(...) | model`
    (a `ChatPromptValue`, `StringPromptValue`, message list or string) or
    `retriever | PromptGuardRunnable(...)` (a list of `Document`s, checked as context).
    The output has the input's type: unchanged (the same object) on allow/flag, rewritten
    on sanitize (dropped messages/documents or edited text); `block` raises `PromptBlocked`.
    """

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        policy: Policy | str | Path | None = None,
        store: Any = None,
        recorder: Recorder | None = None,
        record_text: bool = False,
        name: str | None = None,
    ) -> None:
        self._core = _Core(guard, policy=policy, store=store, recorder=recorder, record_text=record_text)
        self.guard = self._core.guard
        self.name = name or "PromptGuard"

    @property
    def events(self) -> deque[GuardEvent]:
        return self._core.events

    @property
    def last_event(self) -> GuardEvent | None:
        return self._core.last_event

    def close(self) -> None:
        self._core.close()

    # -- input shapes --------------------------------------------------------------------
    def _plan(self, value: Any) -> tuple[Callable[[], list[Segment]], Callable[[GuardResult], Any]]:
        """(make segments, rebuild the value from a sanitize result) for one input."""
        if isinstance(value, ChatPromptValue):
            make, rebuild = self._plan_messages(value.messages)
            return make, lambda r: ChatPromptValue(messages=rebuild(r))
        if isinstance(value, StringPromptValue):
            text = value.text
            return (lambda: segments_from_prompt(text)), (lambda r: StringPromptValue(text=r.sanitized_text(text)))
        if isinstance(value, PromptValue):
            make, rebuild = self._plan_messages(value.to_messages())
            return make, lambda r: ChatPromptValue(messages=rebuild(r))
        if isinstance(value, str):
            return (lambda: segments_from_prompt(value)), (lambda r: r.sanitized_text(value))
        if isinstance(value, Document):
            make, rebuild = self._plan_documents([value])
            return make, lambda r: (rebuild(r) or [Document(page_content="", metadata=dict(value.metadata))])[0]
        if isinstance(value, (list, tuple)):
            items = list(value)
            if items and all(isinstance(d, Document) for d in items):
                return self._plan_documents(items)
            return self._plan_messages(items)
        raise ParseError(
            f"PromptGuardRunnable takes a prompt value, messages, a string or documents, "
            f"not {type(value).__name__}"
        )

    @staticmethod
    def _plan_messages(messages: list[Any]) -> tuple[Callable[[], list[Segment]], Callable[[GuardResult], list[BaseMessage]]]:
        holder: dict[str, Any] = {}

        def make() -> list[Segment]:
            msgs = messages if all(isinstance(m, BaseMessage) for m in messages) else convert_to_messages(messages)
            holder["orig"] = list(msgs)
            segs, converted = segments_for_messages([msgs])
            holder["dicts"] = converted[0]
            return segs

        def rebuild(r: GuardResult) -> list[BaseMessage]:
            out = []
            orig = holder["orig"]
            for d in r.sanitized_messages(holder["dicts"]):
                m = orig[d["_pg_index"]]
                new = d["content"]
                out.append(m if new == _content(m.content) else m.model_copy(update={"content": new}))
            return out

        return make, rebuild

    @staticmethod
    def _plan_documents(docs: list[Document]) -> tuple[Callable[[], list[Segment]], Callable[[GuardResult], list[Document]]]:
        dicts = [{"role": "tool", "content": d.page_content, "_pg_index": i} for i, d in enumerate(docs)]

        def rebuild(r: GuardResult) -> list[Document]:
            out = []
            for d in apply_to_messages(dicts, r.edits):
                doc = docs[d["_pg_index"]]
                new = d["content"]
                out.append(doc if new == doc.page_content else
                           Document(page_content=new, metadata=dict(doc.metadata), id=doc.id))
            return out

        return (lambda: segments_for_documents(docs)), rebuild

    def _safe_plan(self, value: Any) -> tuple[Callable[[], list[Segment]], Callable[[GuardResult], Any]]:
        try:
            return self._plan(value)
        except ParseError as e:
            err = e

            def fail() -> list[Segment]:
                raise err

            return fail, (lambda r: value)

    # -- running -------------------------------------------------------------------------
    def _apply(self, ev: GuardEvent, rebuild: Callable[[GuardResult], Any], value: Any) -> Any:
        if ev.action is Action.SANITIZE and ev.result is not None and ev.result.edits:
            try:
                return rebuild(ev.result)
            except Exception as e:  # noqa: BLE001 - a rewrite that fails must not pass the input on
                ev.decision.escalate(Action.BLOCK, f"sanitize could not be applied: {e}")
                ev.action = Action.BLOCK
        return value

    def _kw(self, run_manager: Any) -> dict[str, Any]:
        if run_manager is None:
            return {}
        return {"run_id": run_manager.run_id, "parent_run_id": run_manager.parent_run_id,
                "tags": run_manager.tags, "metadata": run_manager.metadata}

    def _run(self, value: Any, run_manager: Any = None) -> Any:
        core = self._core
        make, rebuild = self._safe_plan(value)
        ev = core._check("runnable", make, self._kw(run_manager), self.name, in_callback=False)
        out = self._apply(ev, rebuild, value)
        core._finish(ev)
        return out

    async def _arun(self, value: Any, run_manager: Any = None) -> Any:
        core = self._core
        make, rebuild = self._safe_plan(value)
        ev = await core._acheck("runnable", make, self._kw(run_manager), self.name, in_callback=False)
        out = self._apply(ev, rebuild, value)
        core._finish(ev)
        return out

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._run, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._arun, input, config, run_type="chain")


# -----------------------------------------------------------------------------
# embeddings for RAG chains, over the bundled local model


class LocalEmbeddings(Embeddings):
    """LangChain `Embeddings` over the bundled all-MiniLM-L6-v2 (offline, shared model).

    Uses promptguard's shared embedder (one model load per process, cached by text);
    falls back to sentence-transformers directly when that module is unavailable.
    """

    def __init__(self, model: str | Path | None = None) -> None:
        self._model = model
        self._fn: Callable[[list[str]], Any] | None = None
        self._lock = threading.Lock()

    def _encoder(self) -> Callable[[list[str]], Any]:
        with self._lock:
            if self._fn is None:
                try:
                    from ..embeddings import get_embedder
                except ImportError:
                    from sentence_transformers import SentenceTransformer

                    from ..models import embedding_model_path

                    st = SentenceTransformer(str(self._model or embedding_model_path()), device="cpu")
                    self._fn = lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
                else:
                    emb = get_embedder(self._model)
                    self._fn = emb.embed
            return self._fn

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return [list(map(float, v)) for v in self._encoder()(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

