"""The integration's core, without I/O: what each LangChain event means for the guard.

Every event becomes a *flow*: a generator that yields what it needs done — `Inspect`
(run the inspection step) or `Audit` (run the answer audit) — receives the result, and
returns the `GuardEvent` to record. The sync handler drives the flows with sync calls,
the async handler with awaits (`handlers.py`); the flows themselves are written once, so
the two handlers cannot drift.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.outputs import ChatGeneration, LLMResult

from ...findings import Finding
from ...guard import Guard, GuardResult, load_guard
from ...inspection import (
    INBOUND,
    OUTBOUND,
    Inspection,
    Inspector,
    Shape,
    audit_failed,
    fold_audit,
    reference_segments,
)
from ...policy import DEFAULT_ANSWER_DETECTORS, Action, Decision, Policy, answer_detector_names
from ...records import BLOCKED_STATUS, Record
from ...segments import Segment
from .shapes import GENERATIONS, MESSAGE_BATCH, MESSAGES, PROMPTS, generation_texts

__all__ = ["Audit", "Background", "Core", "GuardEvent", "Inspect", "PromptBlocked", "Recorder"]

log = logging.getLogger("promptguard.langchain")

Recorder = Callable[["GuardEvent"], None]


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
    audit: dict[str, Any] | None = None
    enforced: bool = True  # False when a block could not stop the run (see the async handler)
    inspection: Inspection | None = None
    _text: str | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """What was checked, as records hash it (kept only in memory; made when asked)."""
        if self._text is None:
            self._text = self.inspection.text if self.inspection is not None else ""
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._text = value

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
        return OUTBOUND if self.event == "llm_end" else INBOUND

    def findings_dicts(self) -> list[dict[str, Any]]:
        """The findings JSON of the inspection step (the same in every face)."""
        return self.inspection.findings_json() if self.inspection is not None else []

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

    def to_record(self, keep_text: bool = False) -> Record:
        """The record of this check, in the shape every face writes."""
        rec = Record(request_id=f"langchain:{self.run_id or uuid.uuid4()}:{self.event}", ts=self.ts,
                     endpoint=f"langchain/{self.event}", client="langchain", model=self.name,
                     latency_ms=self.elapsed_ms)
        if self.inspection is not None:
            rec.note(self.inspection)
        rec.decision = self.action.value
        rec.stage = self.stage
        rec.status = BLOCKED_STATUS if self.blocked else 200
        if self.stage == OUTBOUND:
            rec.hash_texts(answer=self.text, keep=keep_text)
        else:
            rec.hash_texts(prompt=self.text, keep=keep_text)
        if not keep_text:  # no prompt or answer text anywhere in the record, evidence included
            rec.redact()
        return rec


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


# -- what a flow asks its driver for -------------------------------------------------------


@dataclass
class Inspect:
    shape: Shape
    value: Any
    stage: str = INBOUND
    answers: bool = False  # with the answer detectors
    reference: list[Segment] = field(default_factory=list)  # read, not checked (the prompt an answer replies to)


@dataclass
class Audit:
    args: tuple[Any, ...]  # (request body, segments, answer, findings) for `Auditor.audit`


@dataclass
class Background:
    """An after-the-fact audit: start it, do not wait (it records what it finds)."""

    event: GuardEvent
    args: tuple[Any, ...]


Flow = Generator[Any, Any, "GuardEvent | None"]


@dataclass
class _RunState:
    """What a model run's start left for its end (output checks, the audit)."""

    segments: list[Segment]
    findings: list[Finding]
    body: dict[str, Any]
    name: str
    tags: list[str]
    metadata: dict[str, Any]


_SAMPLING = ("temperature", "max_tokens", "max_completion_tokens", "top_p", "seed", "stop")


class Core:
    """State and flows shared by the sync and async handlers and the Runnable."""

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
        answer_detectors: list[str] | None = None,
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
        if guard is not None and policy is not None:
            raise ValueError("pass either guard= or policy=, not both")
        self.guard = load_guard(guard if guard is not None else policy, face="langchain")
        self.policy = self.guard.policy
        self.inspector = Inspector(self.guard)
        # answers are checked by the policy's answer detectors, as in the proxy
        self.answer_inspector = self.inspector.restricted(
            answer_detector_names(self.policy, answer_detectors or DEFAULT_ANSWER_DETECTORS))
        self.check_prompts = check_prompts
        self.check_documents = check_documents
        self.check_tools = check_tools
        self.check_outputs = check_outputs
        self.on_sanitize = Action(on_sanitize)
        if auditor is None and audit_backend:
            from ...audit import build_auditor

            auditor = build_auditor(self.policy, audit_backend)
        self.auditor = auditor
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

    # -- reading results ----------------------------------------------------------------
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

    # -- deciding -------------------------------------------------------------------------
    def callback_action(self, decision: Decision) -> Action:
        """A callback cannot rewrite what it saw: sanitize becomes `on_sanitize`."""
        if decision.action is not Action.SANITIZE:
            return decision.action
        if self.on_sanitize is Action.BLOCK:
            decision.escalate(Action.BLOCK, "sanitize requested but a callback cannot rewrite "
                              "the input (use PromptGuardRunnable to sanitize)")
        return self.on_sanitize

    def event(self, name: str, insp: Inspection, kw: dict[str, Any], who: str = "",
              in_callback: bool = True) -> GuardEvent:
        action = self.callback_action(insp.decision) if in_callback else insp.action
        insp.refresh()
        return GuardEvent(
            event=name, decision=insp.decision, action=action, run_id=kw.get("run_id"),
            parent_run_id=kw.get("parent_run_id"), name=who, tags=list(kw.get("tags") or []),
            metadata=dict(kw.get("metadata") or {}), segments=insp.segments, result=insp.result,
            elapsed_ms=insp.seconds * 1000.0, inspection=insp)

    # -- the flows ------------------------------------------------------------------------
    def check_flow(self, name: str, shape: Shape, value: Any, kw: dict[str, Any], who: str = "",
                   in_callback: bool = True) -> Flow:
        """One inspection (documents, tool output, the Runnable's input)."""
        insp = yield Inspect(shape, value)
        return self.event(name, insp, kw, who, in_callback)

    def prompt_flow(self, name: str, shape: Shape, value: Any, kw: dict[str, Any], model: str,
                    body: Callable[[], dict[str, Any]], keep_blocked: bool = False) -> Flow:
        """A model starts: check its prompt, and keep what its end needs (the request
        `body` is made only for the answer audit)."""
        if not self.check_prompts:
            try:  # the segments: the answer audit's input and the answer check's reference
                audited = self.auditor is not None
                keep = audited or self.check_outputs
                self._remember(kw, _RunState(shape.read(value) if keep else [], [], body() if audited else {},
                                             model, list(kw.get("tags") or []), dict(kw.get("metadata") or {})))
            except Exception:
                log.debug("promptguard: cannot keep the prompt for the audit", exc_info=True)
            return None
        insp = yield Inspect(shape, value)
        ev = self.event(name, insp, kw, model)
        if not ev.blocked or keep_blocked:
            self._remember(kw, _RunState(ev.segments, list(ev.findings), body() if self.auditor is not None else {},
                                         model, ev.tags, ev.metadata))
        return ev

    def chat_start_flow(self, serialized: Any, messages: Any, kw: dict[str, Any], keep_blocked: bool = False) -> Flow:
        model = _model_name(serialized, kw)

        def body() -> dict[str, Any]:
            try:
                first = MESSAGES.openai(messages[0]) if messages else []
            except Exception:  # noqa: BLE001 - the inspection reports what cannot be read
                first = []
            return _body(kw, model, messages=first)

        return (yield from self.prompt_flow("chat_model_start", MESSAGE_BATCH, messages, kw, model, body,
                                            keep_blocked))

    def llm_start_flow(self, serialized: Any, prompts: Any, kw: dict[str, Any], keep_blocked: bool = False) -> Flow:
        model = _model_name(serialized, kw)
        prompt = prompts[0] if isinstance(prompts, list) and len(prompts) == 1 else prompts
        return (yield from self.prompt_flow("llm_start", PROMPTS, prompts, kw, model,
                                            lambda: _body(kw, model, prompt=prompt), keep_blocked))

    def answer_flow(self, response: LLMResult, kw: dict[str, Any]) -> Flow:
        """A model ended: check its answer, [audit it], annotate the result."""
        state = self._forget(kw.get("run_id"))
        if state is not None:
            kw = {**kw, "tags": kw.get("tags") or state.tags, "metadata": state.metadata}
        who = state.name if state else ""
        gens = response.generations
        if self.check_outputs:
            reference = reference_segments(state.segments) if state is not None else []
            insp = yield Inspect(GENERATIONS, gens, OUTBOUND, answers=True, reference=reference)
        else:
            insp = Inspection(GENERATIONS, gens, OUTBOUND, Decision(action=Action.ALLOW, checks=[]),
                              segments=GENERATIONS.read(gens), output=gens)
        args = self._audit_args(state, response)
        if args is not None and self._audit_inline():
            try:
                report = yield Audit(args)
            except Exception as e:  # noqa: BLE001 - decided like a detector error
                log.exception("promptguard: answer audit failed")
                audit_failed(insp, e, self.policy)
                report = None
            if report is not None:
                fold_audit(insp, report, self.policy)
        ev = self.event("llm_end", insp, kw, who)
        if args is not None and self._audit_inline():
            ev.audit = _report_dict(report) if report is not None else None
        elif args is not None:
            yield Background(ev, args)
        prior = self.events_for(kw["run_id"]) if kw.get("run_id") else []
        self._annotate(response, prior + [ev])
        return ev if (self.check_outputs or ev.audit is not None) else None

    def inspector_for(self, step: Inspect) -> Inspector:
        return self.answer_inspector if step.answers else self.inspector

    async def audit_later(self, step: Background) -> None:
        """Run an after-the-fact audit and record what it found."""
        try:
            self.audited_later(step.event, await self.auditor.audit(*step.args))
        except Exception:
            log.exception("promptguard: background answer audit failed")

    def audited_later(self, ev: GuardEvent, report: Any) -> None:
        """An after-the-fact audit finished: record what it found (it cannot stop the run)."""
        insp = Inspection(GENERATIONS, None, OUTBOUND, Decision(action=Action.ALLOW, checks=[]),
                          segments=ev.segments, output=None)
        fold_audit(insp, report, self.policy)
        later = self.event("llm_end", insp, {"run_id": ev.run_id, "parent_run_id": ev.parent_run_id,
                                             "tags": ev.tags, "metadata": ev.metadata}, ev.name)
        later.text, later.audit, later.enforced = ev.text, _report_dict(report), False
        self.record(later)

    # -- recording ------------------------------------------------------------------------
    def record(self, ev: GuardEvent) -> None:
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
                self.store.put(ev.to_record(self.record_text))
            except Exception:
                log.exception("promptguard: writing to the record store failed")

    def finish(self, ev: GuardEvent | None) -> GuardEvent | None:
        """Record the event; a block that can stop the run raises `PromptBlocked`."""
        if ev is None:
            return None
        self.record(ev)
        if ev.blocked and ev.enforced:
            raise PromptBlocked(ev)
        return ev

    # -- run state ------------------------------------------------------------------------
    def _remember(self, kw: dict[str, Any], state: _RunState) -> None:
        run_id = kw.get("run_id")
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

    def _audit_args(self, state: _RunState | None, response: LLMResult) -> tuple[Any, ...] | None:
        if self.auditor is None or state is None or not response.generations or not response.generations[0]:
            return None
        answer = generation_texts(response.generations)[0][0]
        try:  # with the answer, suspicion mode also sees answer echo
            if not self.auditor.should_audit(state.segments, state.findings, answer=answer):
                return None
        except Exception:
            log.exception("promptguard: should_audit failed")
            return None
        return (state.body, state.segments, answer, state.findings)

    def _audit_inline(self) -> bool:
        cfg = getattr(self.auditor, "config", None) or getattr(self.auditor, "cfg", None)
        return bool(getattr(cfg, "inline", True))


def _report_dict(report: Any) -> dict[str, Any]:
    try:
        return report.to_dict()
    except Exception:  # noqa: BLE001 - the report is optional
        return {"status": getattr(report, "status", "unknown")}


def _model_name(serialized: dict[str, Any] | None, kw: dict[str, Any]) -> str:
    params = kw.get("invocation_params") or {}
    name = params.get("model_name") or params.get("model") or kw.get("name")
    if not name and serialized:
        ident = serialized.get("id") or []
        name = ident[-1] if ident else serialized.get("name", "")
    return str(name or "")


def _body(kw: dict[str, Any], model: str, **payload: Any) -> dict[str, Any]:
    """The OpenAI request body a model run amounts to (what the audit re-asks)."""
    params = kw.get("invocation_params") or {}
    body: dict[str, Any] = {"model": model, **payload}
    for k in _SAMPLING:
        if params.get(k) is not None:
            body[k] = params[k]
    return body


def _open_store(store: Any) -> tuple[Any, bool]:
    """A store object (anything with `put`) or a path/URL for a record store."""
    if store is None:
        return None, False
    if hasattr(store, "put"):
        return store, False
    from ...records import open_store

    return open_store(str(store)), True
