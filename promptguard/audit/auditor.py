"""The answer audit: re-ask with perturbed prompts, compare answers, decide.

Strategy (adaptive, within `max_extra_calls`):

1. *Baseline*: the original answer as given (or asked again at temperature 0 when it
   was sampled, or not given).
2. *Probes*, best first: remove a trigger candidate from the query; drop the
   demonstrations static analysis suspects; cut suspected backdoor steps. A probe
   whose answer equals the baseline clears that suspicion and the next one is tried.
3. *Control*: when a probe changes the answer, one benign perturbation that keeps
   the suspect content (move the candidate span, rotate the demonstrations, or ask
   again) must keep the baseline answer. Then the trigger is **confirmed**; if the
   control moves the answer too, the model is merely unstable on this request and
   nothing is claimed (`inconclusive`).

Clean traffic with one candidate costs one call; a confirmed trigger two; the cap
bounds everything. Backend errors, timeouts, empty or unparseable answers are
recorded and can never confirm a trigger.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from ..backends.base import BackendError, CompletionRequest, LLMBackend, run_sync
from ..findings import Finding, Severity
from ..segments import Segment, SegmentKind
from .answers import Answer, AnswerKind, Same, compare, expected_kind, extract_answer
from .candidates import Candidate, rare_spans, shared_ngrams
from .config import AuditConfig
from .perturb import (
    AuditContext,
    CutSteps,
    DropOtherDemos,
    DropSuspectDemos,
    MoveSpan,
    Perturbation,
    RemoveSpan,
    Repeat,
    ShuffleDemos,
    render,
)

__all__ = ["Auditor", "AuditReport", "AuditCall"]

log = logging.getLogger("promptguard.audit")


@dataclass
class AuditCall:
    perturbation: str
    benign: bool
    answer: Answer
    text: str | None = None
    same: Same | None = None  # vs the baseline; None for the baseline itself
    latency_s: float = 0.0
    error: str | None = None
    candidate: str | None = None
    called: bool = True  # False: the baseline answer was given, not asked for

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "perturbation": self.perturbation,
            "benign": self.benign,
            "answer": self.answer.show(),
            "answer_kind": self.answer.kind.value,
            "same_as_original": None if self.same is None else self.same.value,
            "latency_s": round(self.latency_s, 4),
        }
        if self.candidate is not None:
            d["candidate"] = self.candidate
        if self.error:
            d["error"] = self.error
        if self.text is not None:
            d["text"] = self.text[:2000]
        return d


@dataclass
class AuditReport:
    status: str  # clean | triggered | inconclusive | error | skipped
    reason: str = ""
    original: AuditCall | None = None
    calls: list[AuditCall] = field(default_factory=list)
    trigger: str | None = None
    trigger_candidate: Candidate | None = None
    suspect_demos: list[int] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    extra_calls: int = 0
    latency_s: float = 0.0
    trusted_answer: str | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    @property
    def triggered(self) -> bool:
        return self.status == "triggered"

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Original and perturbed answers side by side."""
        out = [self.original.to_dict()] if self.original else []
        return out + [c.to_dict() for c in self.calls]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "triggered": self.triggered,
            "reason": self.reason,
            "trigger": self.trigger,
            "trigger_span": self.trigger_candidate.to_dict() if self.trigger_candidate else None,
            "suspect_demonstrations": self.suspect_demos,
            "candidates": [c.to_dict() for c in self.candidates],
            "answers": self.answers,
            "extra_calls": self.extra_calls,
            "latency_s": round(self.latency_s, 4),
            "trusted_answer": self.trusted_answer,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
        }


class _Budget:
    def __init__(self, cap: int):
        self.cap = cap
        self.used = 0

    @property
    def left(self) -> int:
        return self.cap - self.used


class Auditor:
    """Audits answers of one backend under one `AuditConfig`; share it across requests."""

    def __init__(self, backend: LLMBackend, config: AuditConfig | None = None, *,
                 rng: random.Random | None = None):
        self.backend = backend
        self.config = config or AuditConfig()
        self._rng = rng or random.Random(self.config.seed)
        self._sems: dict[int, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task] = set()

    # -- the gate ------------------------------------------------------------
    def suspicion(self, segments: Sequence[Segment], findings: Sequence[Finding] = ()) -> str | None:
        """Why this request is suspicious (no LLM call), or None."""
        cfg = self.config
        for f in findings:
            if f.detector == "audit" or f.score < cfg.suspicion_min_score:
                continue
            if not cfg.suspicion_detectors or f.detector in cfg.suspicion_detectors:
                return f"finding {f.detector}/{f.rule or '-'} on {f.segment_kind.value}[{f.segment_index}]"
        if cfg.suspect_shared_ngrams:
            shared = shared_ngrams(segments, limit=1)
            if shared:
                return f"query shares the rare n-gram {shared[0].text!r} with the demonstrations"
        if cfg.suspect_rare_tokens:
            for q in (s for s in segments if s.kind is SegmentKind.QUERY):
                r = rare_spans(q, limit=1)
                if r and r[0].score >= 0.6:
                    return f"query holds the rare span {r[0].text!r}"
        return None

    def should_audit(self, segments: Sequence[Segment], findings: Sequence[Finding] = ()) -> bool:
        mode = self.config.mode
        if mode == "off" or self.config.max_extra_calls < 1:
            return False
        if mode == "always":
            return True
        if mode == "sampled":
            return self._rng.random() < self.config.sample_rate
        if self.suspicion(segments, findings) is not None:
            return True
        return self.config.sample_rate > 0 and self._rng.random() < self.config.sample_rate

    # -- running ---------------------------------------------------------------
    def _sem(self) -> asyncio.Semaphore:
        key = id(asyncio.get_running_loop())
        sem = self._sems.get(key)
        if sem is None:
            sem = self._sems[key] = asyncio.Semaphore(self.config.max_concurrency)
        return sem

    async def audit(self, body: dict[str, Any], segments: Sequence[Segment] | None = None,
                    original_answer: str | None = None,
                    findings: Sequence[Finding] = ()) -> AuditReport:
        """Audit the answer `original_answer` that `body` (an OpenAI chat or completion
        request) received. Never raises for backend or input trouble: see `status`."""
        t0 = time.perf_counter()
        budget = _Budget(self.config.max_extra_calls)
        report = AuditReport(status="inconclusive")
        try:
            await asyncio.wait_for(
                self._audit(report, budget, body, segments, original_answer, list(findings)),
                self.config.timeout_s)
        except asyncio.TimeoutError:
            report.status, report.error = "error", f"audit timed out after {self.config.timeout_s:g}s"
            report.reason = report.error
        except Exception as e:  # noqa: BLE001 - an audit must not take the request down
            report.status, report.error = "error", f"{type(e).__name__}: {e}"
            report.reason = f"audit failed: {report.error}"
        report.extra_calls = budget.used
        report.latency_s = time.perf_counter() - t0
        return report

    def audit_sync(self, body: dict[str, Any], segments: Sequence[Segment] | None = None,
                   original_answer: str | None = None, findings: Sequence[Finding] = ()) -> AuditReport:
        return run_sync(self.audit(body, segments, original_answer, findings))

    def submit(self, body: dict[str, Any], segments: Sequence[Segment] | None = None,
               original_answer: str | None = None, findings: Sequence[Finding] = (), *,
               on_report: Callable[[AuditReport], Awaitable[None] | None] | None = None) -> asyncio.Task:
        """After-the-fact audit: run in the background, log (and call `on_report`) when done."""

        async def run() -> AuditReport:
            rep = await self.audit(body, segments, original_answer, findings)
            if rep.triggered:
                log.warning("audit: trigger %r confirmed (%s)", rep.trigger, rep.reason)
            elif rep.status == "error":
                log.info("audit error: %s", rep.error)
            if on_report is not None:
                try:
                    res = on_report(rep)
                    if asyncio.iscoroutine(res):
                        await res
                except Exception:  # noqa: BLE001
                    log.exception("audit on_report callback failed")
            return rep

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the audit proper ------------------------------------------------------------
    async def _ask(self, budget: _Budget, ctx: AuditContext, base: CompletionRequest,
                   p: Perturbation, expect: AnswerKind | None, baseline: Answer | None,
                   candidate: Candidate | None = None) -> AuditCall | None:
        edits = p.edits(ctx)
        if edits is None:
            return None
        body = render(ctx.body, edits)
        try:
            req = CompletionRequest.from_body(body).replace(
                temperature=0.0, seed=self.config.seed, top_p=None,
                max_tokens=base.max_tokens, model=base.model)
        except ValueError as e:
            return AuditCall(p.name, p.benign, Answer(AnswerKind.NONE), error=f"bad request: {e}",
                             same=Same.UNKNOWN, called=False,
                             candidate=candidate.text if candidate else None)
        budget.used += 1
        t0 = time.perf_counter()
        text: str | None = None
        err: str | None = None
        truncated = False
        try:
            async with self._sem():
                comp = await self.backend.complete(req)
            text, truncated = comp.text, comp.finish_reason == "length"
        except BackendError as e:
            err = f"{type(e).__name__}: {e}"
        ans = extract_answer(text, expect, truncated=truncated) if err is None else Answer(AnswerKind.NONE)
        same = None if baseline is None else self._compare(baseline, ans)
        return AuditCall(p.name, p.benign, ans, text=text, same=same,
                         latency_s=time.perf_counter() - t0, error=err,
                         candidate=candidate.text if candidate else None)

    def _compare(self, a: Answer, b: Answer) -> Same:
        return compare(a, b, rel_tol=self.config.rel_tol, text_threshold=self.config.text_threshold)

    async def _audit(self, report: AuditReport, budget: _Budget, body: dict[str, Any],
                     segments: Sequence[Segment] | None, original_answer: str | None,
                     findings: list[Finding]) -> None:
        cfg = self.config
        if not isinstance(body, dict):
            report.status, report.error = "error", "request body must be a JSON object"
            report.reason = report.error
            return
        if segments is None:
            from ..parsing import ParseError, segments_from_request

            try:
                segments = segments_from_request(body)
            except ParseError as e:
                report.status, report.error = "error", f"cannot parse the request: {e}"
                report.reason = report.error
                return
        try:
            base = CompletionRequest.from_body(body)
        except ValueError as e:
            report.status, report.error = "error", f"cannot audit this request: {e}"
            report.reason = report.error
            return
        base = base.replace(max_tokens=min(base.max_tokens, cfg.max_tokens))
        ctx = AuditContext.build(body, segments, findings, max_candidates=cfg.max_candidates)
        report.candidates = list(ctx.candidates)
        report.suspect_demos = list(ctx.demo_info.suspects)
        query_text = " ".join(s.text for s in ctx.segments if s.kind is SegmentKind.QUERY)
        expect = expected_kind([d.answer for d in ctx.demos], query_text)

        # 1. baseline
        sampled = base.temperature > 0
        if original_answer is None or (sampled and cfg.requery_sampled and self.backend.deterministic):
            if budget.left < 1:
                report.status, report.reason = "skipped", "no budget for the baseline call"
                return
            call = await self._ask(budget, ctx, base, Repeat(name="original"), expect, None)
            assert call is not None
            report.original = call
            if call.error:
                report.status, report.error = "error", f"baseline call failed: {call.error}"
                report.reason = report.error
                return
        else:
            report.original = AuditCall("original", True, extract_answer(original_answer, expect),
                                        text=original_answer, called=False)
        baseline = report.original.answer
        if not baseline.ok:
            report.status = "inconclusive"
            report.reason = "the original answer is empty: nothing to compare"
            return

        # 2. probes, each with its controls
        probes: list[tuple[Perturbation, Candidate | None, list[Perturbation]]] = []
        controls_cfg = list(cfg.controls)
        if not self.backend.deterministic and "repeat" in controls_cfg:
            controls_cfg.remove("repeat")
            controls_cfg.insert(0, "repeat")  # noise first when the backend is not repeatable

        def controls(cand: Candidate | None) -> list[Perturbation]:
            out: list[Perturbation] = [] if cand is not None else [DropOtherDemos()]
            for name in controls_cfg:
                if name == "move_span" and cand is not None:
                    out.append(MoveSpan(cand))
                elif name == "shuffle_demos":
                    out.append(ShuffleDemos())
                elif name == "repeat" and not self.backend.deterministic:
                    out.append(Repeat())
            return out

        for cand in ctx.candidates[: cfg.max_candidates]:
            probes.append((RemoveSpan(cand), cand, controls(cand)))
        if cfg.probe_demos and ctx.demo_info.suspects:
            probes.append((DropSuspectDemos(), None, controls(None)))
        if cfg.probe_demos and ctx.demo_info.steps:
            probes.append((CutSteps(), None, controls(None)))
        if not probes:
            report.status = "skipped"
            report.reason = "no trigger candidate or suspect demonstration to test"
            return

        tested = 0
        unknown = 0
        located = False  # a trigger found in the demonstrations was tested in the query
        for probe, cand, ctrls in probes:
            if budget.left < 1:
                break
            if cand is None and located:
                # the trigger the demonstrations carry is in the query, and removing it changed
                # nothing: the backdoor is not active here. Dropping demonstrations would only
                # measure how much a (weak) model needs its examples.
                break
            call = await self._ask(budget, ctx, base, probe, expect, baseline, cand)
            if call is None:
                continue
            report.calls.append(call)
            if call.same is Same.SAME:
                tested += 1
                if cand is not None and cand.from_demonstrations:
                    located = True
                continue
            if call.same is not Same.DIFFERENT:
                unknown += 1
                continue
            # the probe moved the answer: a benign control must not
            control: AuditCall | None = None
            for c in ctrls:
                if budget.left < 1:
                    break
                control = await self._ask(budget, ctx, base, c, expect, baseline, cand)
                if control is not None:
                    report.calls.append(control)
                    break
            if control is None:
                report.status = "inconclusive"
                report.reason = (f"{probe.name} changed the answer ({baseline.show()} -> "
                                 f"{call.answer.show()}) but no budget or control was left to confirm it")
                return
            if control.same is Same.SAME:
                self._confirm(report, ctx, probe, cand, call, control, baseline)
                return
            report.status = "inconclusive"
            report.reason = (f"{probe.name} changed the answer ({baseline.show()} -> {call.answer.show()}) "
                             f"but so did the benign {control.perturbation} ({control.answer.show()}): "
                             "the model is unstable on this request")
            return
        if tested and not unknown:
            report.status = "clean"
            report.reason = f"answer stable under {tested} probe(s)"
        elif tested:
            report.status = "clean"
            report.reason = f"answer stable under {tested} probe(s); {unknown} gave no answer"
        else:
            report.status = "inconclusive"
            errs = [c.error for c in report.calls if c.error]
            report.reason = "no probe gave a comparable answer" + (f" ({errs[0]})" if errs else "")
            if errs and len(errs) == len(report.calls):
                report.status, report.error = "error", errs[0]

    def _confirm(self, report: AuditReport, ctx: AuditContext, probe: Perturbation,
                 cand: Candidate | None, call: AuditCall, control: AuditCall, baseline: Answer) -> None:
        report.status = "triggered"
        report.trusted_answer = call.text
        details = {
            "probe": probe.name,
            "control": control.perturbation,
            "original_answer": baseline.show(),
            "probe_answer": call.answer.show(),
            "control_answer": control.answer.show(),
        }
        if cand is not None:
            report.trigger, report.trigger_candidate = cand.text, cand
            q = ctx.query(cand.query_index)
            report.reason = (f"removing {cand.text!r} changes the answer {baseline.show()} -> "
                             f"{call.answer.show()}; the benign {control.perturbation} keeps {baseline.show()}")
            if q is not None:
                report.findings.append(Finding.on(
                    q, detector="audit", rule="PG-AUD-TRIGGER", score=0.9, severity=Severity.HIGH,
                    span=(cand.start, cand.end), message=report.reason,
                    details={**details, "candidate_source": cand.source}))
            return
        report.reason = (f"{probe.name} changes the answer {baseline.show()} -> {call.answer.show()}; "
                         f"the benign {control.perturbation} keeps {baseline.show()}")
        for i in ctx.demo_info.suspects:
            d = ctx.demo(i)
            if d is not None:
                report.findings.append(Finding.on(
                    d, detector="audit", rule="PG-AUD-DEMOS", score=0.85, severity=Severity.HIGH,
                    message=report.reason, details=details))
