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
from .candidates import Candidate, phrase_candidates, rare_spans, shared_ngrams
from .config import AuditConfig
from .grouptest import GroupResult, Outcome, group_test
from .perturb import (
    AuditContext,
    CutSteps,
    DropOtherDemos,
    DropSuspectDemos,
    MatchedSpan,
    MoveSpan,
    Perturbation,
    RemoveSpan,
    RemoveSpans,
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
    removed: list[str] | None = None  # spans a (group) probe removed
    echo_kept: bool | None = None  # a control whose answer still cites the candidate in an ungrounded step

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
        if self.removed is not None:
            d["removed"] = self.removed
        if self.echo_kept is not None:
            d["echo_kept"] = self.echo_kept
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
    tested: list[dict[str, Any]] = field(default_factory=list)  # candidate spans the probes covered
    echo: dict[str, Any] | None = None  # the span the answer echoes, when it does
    suspicion: str | None = None  # why the gate audited this request (suspicion mode)

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
            "tested": self.tested,
            "echo": self.echo,
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
    def suspicion(self, segments: Sequence[Segment], findings: Sequence[Finding] = (),
                  answer: str | None = None) -> str | None:
        """Why this request is suspicious (no LLM call), or None.

        `answer` (the answer being audited, when the caller has it) enables the signal a weight
        backdoor leaves in reasoning: the answer echoes an odd span of the query in a step that
        does not follow from the problem."""
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
        if cfg.suspect_echo or cfg.suspect_odd_phrases:
            cands = phrase_candidates(segments, answer)
            if cfg.suspect_echo and answer:
                echo = max(cands, key=lambda c: c.echo, default=None)
                if echo is not None and echo.echo >= cfg.echo_min:
                    return f"the answer echoes the query's {echo.text!r} in a step that does not follow from the problem"
            if cfg.suspect_odd_phrases:
                odd = [c for c in cands if c.score >= cfg.odd_phrase_min * 0.8 and c.source.startswith("phrase:")
                       and c.kind in ("code", "odd-word", "parenthetical", "fragment", "lead-in", "attached", "quoted")
                       and _coded(c.text)]
                if odd and not (cfg.echo_clears_reasoned and answer and _reasoned(answer)
                                and not any(c.echo for c in odd)):
                    return f"query holds the code-like phrase {odd[0].text!r}"
        if cfg.suspect_rare_tokens:
            for q in (s for s in segments if s.kind is SegmentKind.QUERY):
                r = rare_spans(q, limit=1)
                if r and r[0].score >= 0.6:
                    return f"query holds the rare span {r[0].text!r}"
        return None

    def should_audit(self, segments: Sequence[Segment], findings: Sequence[Finding] = (),
                     answer: str | None = None) -> bool:
        mode = self.config.mode
        if mode == "off" or self.config.max_extra_calls < 1:
            return False
        if mode == "always":
            return True
        if mode == "sampled":
            return self._rng.random() < self.config.sample_rate
        if self.suspicion(segments, findings, answer) is not None:
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

        # 2. candidates, now that the answer is known (its echo, the numbers it uses)
        ctx.with_answer(report.original.text, max_candidates=cfg.max_candidates)
        report.candidates = list(ctx.candidates)
        report.echo = next(({"span": c.text, "strength": round(c.echo, 3)} for c in ctx.candidates if c.echo), None)
        demo_probes = bool(cfg.probe_demos and (ctx.demo_info.suspects or ctx.demo_info.steps))
        if not ctx.candidates and not demo_probes:
            report.status = "skipped"
            report.reason = "no trigger candidate or suspect demonstration to test"
            return

        # 3. the query's candidates: group testing (one probe removes them all; bisect on a change)
        located = False  # a trigger found in the demonstrations was tested in the query and held
        if ctx.candidates and budget.left >= 1:
            result = await self._group_test(report, budget, ctx, base, expect, baseline)
            report.tested = [c.to_dict() for c in ctx.candidates if c in result.cleared or c in result.suspects]
            if result.verdict == "localized":
                cand = result.culprit
                self._confirm(report, ctx, result.changed_by.call, cand, result.controlled_by.call, baseline,
                              result.changed_by.call.perturbation)
                return
            if result.verdict == "inconclusive":
                report.status = "inconclusive"
                report.reason = result.reason + self._changed_note(result, baseline)
                errs = [c.error for c in report.calls if c.error]
                if errs and len(errs) == len(report.calls):
                    report.status, report.error = "error", errs[0]
                    report.reason = f"no probe gave an answer ({errs[0]})"
                return
            located = any(c.from_demonstrations for c in result.cleared)
            if result.verdict == "clean" and not demo_probes:
                report.status = "clean"
                report.reason = f"answer stable with {len(result.cleared)} candidate span(s) removed ({result.calls} probe(s))"
                return

        # 4. the demonstrations: drop the suspect ones (matched control), cut suspect steps
        probes: list[tuple[Perturbation, list[Perturbation]]] = []
        if demo_probes and not located:
            if ctx.demo_info.suspects:
                probes.append((DropSuspectDemos(), self._controls(None)))
            if ctx.demo_info.steps:
                probes.append((CutSteps(), self._controls(None)))
        tested = sum(1 for c in report.calls if c.same is Same.SAME)
        unknown = 0
        for probe, ctrls in probes:
            if budget.left < 1:
                break
            call = await self._ask(budget, ctx, base, probe, expect, baseline)
            if call is None:
                continue
            report.calls.append(call)
            if call.same is Same.SAME:
                tested += 1
                continue
            if call.same is not Same.DIFFERENT:
                unknown += 1
                continue
            control: AuditCall | None = None
            for c in ctrls:
                if budget.left < 1:
                    break
                control = await self._ask(budget, ctx, base, c, expect, baseline)
                if control is not None:
                    report.calls.append(control)
                    break
            if control is None:
                report.status = "inconclusive"
                report.reason = (f"{probe.name} changed the answer ({baseline.show()} -> "
                                 f"{call.answer.show()}) but no budget or control was left to confirm it")
                return
            if control.same is Same.SAME:
                self._confirm(report, ctx, call, None, control, baseline, probe.name)
                return
            report.status = "inconclusive"
            report.reason = (f"{probe.name} changed the answer ({baseline.show()} -> {call.answer.show()}) "
                             f"but so did the benign {control.perturbation} ({control.answer.show()}): "
                             "the model is unstable on this request")
            return
        if tested:
            report.status = "clean"
            report.reason = f"answer stable under {tested} probe(s)" + (f"; {unknown} gave no answer" if unknown else "")
        else:
            report.status = "inconclusive"
            errs = [c.error for c in report.calls if c.error]
            report.reason = "no probe gave a comparable answer" + (f" ({errs[0]})" if errs else "")
            if errs and len(errs) == len(report.calls):
                report.status, report.error = "error", errs[0]

    # -- group testing over the query's candidates -------------------------------------------
    def _controls(self, cand: Candidate | None, ctx: AuditContext | None = None) -> list[Perturbation]:
        """Benign controls, in the configured order (noise first for a backend that is not
        repeatable). A control keeps the candidate exactly where it is."""
        names = list(self.config.controls)
        if not self.backend.deterministic and "repeat" in names:
            names.remove("repeat")
            names.insert(0, "repeat")
        out: list[Perturbation] = [] if cand is not None else [DropOtherDemos()]
        for name in names:
            if name == "matched_span" and cand is not None and ctx is not None:
                spans = matched_spans(ctx, cand)
                if spans:
                    out.append(MatchedSpan(cand, spans))
            elif name == "move_span" and cand is not None:
                out.append(MoveSpan(cand))
            elif name == "shuffle_demos":
                out.append(ShuffleDemos())
            elif name == "repeat" and not self.backend.deterministic:
                out.append(Repeat())
        return out

    async def _group_test(self, report: AuditReport, budget: _Budget, ctx: AuditContext,
                          base: CompletionRequest, expect: AnswerKind | None, baseline: Answer) -> GroupResult:
        cands = list(ctx.candidates)
        strong = cands[0].echo >= 0.75 or cands[0].from_demonstrations

        async def remove(items: tuple[Candidate, ...]) -> Outcome | None:
            if budget.left < 1:
                return None
            p = RemoveSpan(items[0]) if len(items) == 1 else RemoveSpans(items)
            call = await self._ask(budget, ctx, base, p, expect, baseline, items[0] if len(items) == 1 else None)
            if call is None:
                return None
            if len(items) > 1:
                call.candidate = " | ".join(c.text for c in items)
            call.removed = [c.text for c in items]
            report.calls.append(call)
            last_calls[items] = call
            return _outcome(call.same)

        async def control(cand: Candidate) -> Outcome | None:
            for c in self._controls(cand, ctx):
                if budget.left < 1:
                    return None
                call = await self._ask(budget, ctx, base, c, expect, baseline, cand)
                if call is not None:
                    report.calls.append(call)
                    control_calls[cand] = call
                    if call.same is Same.DIFFERENT and cand.echo >= 1.0 and _still_echoes(ctx, cand, call.text):
                        # the final number moved (a weak model's arithmetic wobbles when any text
                        # goes), but the step that cites the candidate and does not follow from
                        # the problem is still there: the behaviour the candidate drives held
                        call.echo_kept = True
                        return Outcome.SAME
                    return _outcome(call.same)
            return None

        last_calls: dict[tuple[Candidate, ...], AuditCall] = {}
        control_calls: dict[Candidate, AuditCall] = {}
        res = await group_test(cands, remove, control, budget=budget.left, solo_first=1 if strong else 0)
        # attach the calls to the probes (for the report and the confirmation)
        for pr in res.probes:
            pr.call = control_calls.get(pr.kept[0]) if pr.role == "control" else last_calls.get(pr.removed)
        return res

    @staticmethod
    def _changed_note(res: GroupResult, baseline: Answer) -> str:
        ch = res.changed_by.call if res.changed_by is not None else None
        if ch is None:
            return ""
        return f" ({baseline.show()} -> {ch.answer.show()} without {', '.join(repr(c.text) for c in res.changed_by.removed)})"

    def _confirm(self, report: AuditReport, ctx: AuditContext, call: AuditCall, cand: Candidate | None,
                 control: AuditCall, baseline: Answer, probe_name: str) -> None:
        report.status = "triggered"
        report.trusted_answer = call.text
        details = {
            "probe": probe_name,
            "control": control.perturbation,
            "original_answer": baseline.show(),
            "probe_answer": call.answer.show(),
            "control_answer": control.answer.show(),
        }
        if cand is not None:
            report.trigger, report.trigger_candidate = cand.text, cand
            q = ctx.query(cand.query_index)
            removed = call.removed or [cand.text]
            what = repr(cand.text) if len(removed) == 1 else f"{cand.text!r} (with {len(removed) - 1} other span(s))"
            kept = (f"keeps the step that cites it (answer {control.answer.show()})" if control.echo_kept
                    else f"keeps {baseline.show()}")
            report.reason = (f"removing {what} changes the answer {baseline.show()} -> "
                             f"{call.answer.show()}; the benign {control.perturbation}, which keeps it in place, {kept}")
            if cand.echo:
                report.reason += "; the answer's reasoning echoes it"
            if q is not None:
                report.findings.append(Finding.on(
                    q, detector="audit", rule="PG-AUD-TRIGGER", score=0.9, severity=Severity.HIGH,
                    span=(cand.start, cand.end), message=report.reason,
                    details={**details, "candidate_source": cand.source}))
            return
        report.reason = (f"{probe_name} changes the answer {baseline.show()} -> {call.answer.show()}; "
                         f"the benign {control.perturbation} keeps {baseline.show()}")
        for i in ctx.demo_info.suspects:
            d = ctx.demo(i)
            if d is not None:
                report.findings.append(Finding.on(
                    d, detector="audit", rule="PG-AUD-DEMOS", score=0.85, severity=Severity.HIGH,
                    message=report.reason, details=details))


def _coded(text: str) -> bool:
    """A code or a word no vocabulary knows in the span."""
    from .phrases import WORD, is_code, wordpiece_surprisal

    return any(is_code(t) or (wordpiece_surprisal(t)[1] >= 3 and not t[:1].isupper())
               for t in (m.group(0) for m in WORD.finditer(text)) if not t.isdigit())


def _reasoned(answer: str) -> bool:
    """The answer shows reasoning (several steps or a computation), not just a label."""
    from .echo import _steps

    return len(_steps(answer)) >= 2 or "=" in answer


def _still_echoes(ctx: AuditContext, cand: Candidate, text: str | None) -> bool:
    """Whether `text` (a control's answer) cites `cand` in a step that does not follow from
    the problem, as the original answer did."""
    from .echo import find_echoes
    from .phrases import Phrase

    q = ctx.query(cand.query_index)
    if q is None or not text:
        return False
    es = find_echoes(q.text, text, [Phrase(cand.start, cand.end, cand.text, cand.kind or "span", cand.score)])
    return bool(es) and es[0].strength >= 1.0


def _outcome(same: Same | None) -> Outcome:
    if same is Same.SAME:
        return Outcome.SAME
    if same is Same.DIFFERENT:
        return Outcome.DIFFERENT
    return Outcome.UNKNOWN


def matched_spans(ctx: AuditContext, cand: Candidate, *, max_spans: int = 3) -> tuple[tuple[int, int, int], ...]:
    """Text of `cand`'s query to delete as its matched control: spans the problem does not
    need (other candidates and ordinary phrases such as "at the market"; failing those, a
    clause of the query that holds nothing the problem needs), none touching `cand`, together
    about as long as it (the closest lengths first)."""
    from .phrases import needed_terms, phrase_spans, plain_clauses

    q = ctx.query(cand.query_index)
    if q is None:
        return ()
    pool: list[tuple[int, int]] = [(c.start, c.end) for c in ctx.candidates
                                   if c.query_index == cand.query_index and c != cand]
    pool += [(p.start, p.end) for p in phrase_spans(q.text, ctx.answer)]
    chosen = _fill(pool, cand)
    if not chosen:
        chosen = _fill(plain_clauses(q.text, needed_terms(q.text, ctx.answer)), cand, max_spans=1)
    return tuple((q.index, s, e) for s, e in sorted(chosen))


def _fill(pool: list[tuple[int, int]], cand: Candidate, max_spans: int = 3) -> list[tuple[int, int]]:
    want = cand.end - cand.start
    chosen: list[tuple[int, int]] = []
    total = 0
    for s, e in sorted(dict.fromkeys(pool), key=lambda r: (abs((r[1] - r[0]) - want), r[0])):
        if s < cand.end and cand.start < e:
            continue
        if any(s < b and a < e for a, b in chosen):
            continue
        chosen.append((s, e))
        total += e - s
        if total >= 0.8 * want or len(chosen) >= max_spans:
            break
    return chosen
