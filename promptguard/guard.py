"""The one pipeline every face calls: segments → findings → decision (→ edits).

Detectors are built once from the policy and shared. A detector that raises does
not take the request down: its error is recorded and the policy's `on_error`
decides (fail closed by default). Every result lists the checks that really ran.

A guard serves one face (`scanner`, `proxy`, `langchain`, or `api` for an application's
own calls) and applies that face's trust setting from the policy: every segment
whose `trusted` is still None is marked trusted when its kind is one the face trusts,
untrusted otherwise, before any detector sees it. Rules marked `untrusted_only` and
detectors configured with `skip_trusted` leave trusted text alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .detectors.base import Detector, create
from .findings import Finding
from .limits import Budget, Stopped, running
from .limits import _current as _current_budget
from .policy import Action, Decision, DetectorConfig, Policy, load_policy
from .sanitize import Edit, apply_to_messages, apply_to_text
from .segments import Segment, SegmentKind, by_prompt

__all__ = ["Guard", "GuardResult", "Sanitizer", "apply_limit", "load_guard"]


@runtime_checkable
class Sanitizer(Protocol):
    """A detector that can repair what it found."""

    def sanitize(self, segments: Sequence[Segment], findings: Sequence[Finding]) -> list[Edit] | None:
        """Edits that neutralise `findings`, or None when it cannot."""
        ...


@dataclass
class GuardResult:
    segments: list[Segment]
    decision: Decision
    edits: list[Edit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # detector → seconds
    stopped: str | None = None  # why the check stopped before every detector finished (limits)
    _by_key: dict[tuple[Any, int], Segment] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def findings(self) -> list[Finding]:
        return self.decision.findings

    @property
    def action(self) -> Action:
        return self.decision.action

    def segment_for(self, f: Finding) -> Segment | None:
        """The segment a finding is about (kind and index are unique in a request)."""
        if self._by_key is None:
            self._by_key = {(s.kind, s.index): s for s in self.segments}
        return self._by_key.get((f.segment_kind, f.segment_index))

    def sanitized_messages(self, messages: Sequence[dict[str, Any]], prompt: int | None = None) -> list[dict[str, Any]]:
        """`messages` with the edits applied (only `prompt`'s, when given)."""
        return apply_to_messages(messages, self.edits, prompt=prompt)

    def sanitized_text(self, text: str, prompt: int | None = None) -> str:
        """`text` with the edits applied (only `prompt`'s, when given: a completion
        request's list of prompts is parsed as prompts 0, 1, ...)."""
        return apply_to_text(text, self.edits, prompt=prompt)


class Guard:
    def __init__(self, policy: Policy | None = None, detectors: Sequence[Detector] | None = None,
                 *, face: str = "api"):
        self.policy = policy or load_policy()
        self.face = face
        self.trusted_kinds: frozenset[SegmentKind] = self.policy.trusted_kinds(face)
        if detectors is None:
            detectors = [
                create(name, opts, self.policy.base_dir)
                for name, opts in self.policy.enabled_detectors().items()
            ]
        self.detectors: list[Detector] = list(detectors)

    @classmethod
    def from_policy_file(cls, path: str | Path | None = None) -> "Guard":
        return cls(load_policy(path))

    def for_face(self, face: str) -> "Guard":
        """This guard (the same detector instances) with `face`'s trust setting."""
        if face == self.face:
            return self
        return Guard(self.policy, detectors=self.detectors, face=face)

    # -- trust ---------------------------------------------------------------
    def mark_trust(self, segments: Sequence[Segment]) -> list[Segment]:
        """The segments with `trusted` decided: kept where a face already set it,
        otherwise from the kinds this guard's face trusts."""
        trusted = self.trusted_kinds
        return [s if s.trusted is not None else s.with_trust(s.kind in trusted) for s in segments]

    def _groups(self, segments: list[Segment]) -> tuple[list[list[Segment]], list[list[Segment]]]:
        """The segments per prompt: all of them, and only the untrusted ones (for the
        detectors configured with `skip_trusted`)."""
        groups = list(by_prompt(segments).values())
        if not any(s.trusted for s in segments):
            return groups, groups
        untrusted = [g for g in ([s for s in grp if not s.trusted] for grp in groups) if g]
        return groups, untrusted

    def _skips_trusted(self, det: Detector) -> bool:
        cfg = self.policy.detectors.get(det.name)
        return cfg is not None and cfg.skip_trusted

    # -- sync ----------------------------------------------------------------
    def check(self, segments: Sequence[Segment], *, reference: Sequence[Segment] = (),
              budget: Budget | None = None) -> GuardResult:
        """Run every detector over `segments`, one prompt group at a time, after marking
        their trust (detectors with `skip_trusted` see only the untrusted ones).

        `reference`: segments that are read, not checked (the request an answer
        replies to): only detectors that say they read it (`reads_reference`) get it,
        and findings are kept only on `segments`. `budget`: the check's deadline and
        stop switch, looked at before each detector and group (`promptguard.limits`)."""
        segments = self.mark_trust(segments)
        findings: list[Finding] = []
        errors: list[str] = []
        timings: dict[str, float] = {}
        unfinished: list[str] = []
        every, untrusted = self._groups(segments)
        with running(budget):
            for det in self.detectors:
                t0 = time.perf_counter()
                for group in untrusted if self._skips_trusted(det) else every:
                    if budget is not None and budget.stopped:
                        unfinished.append(det.name)
                        break
                    try:
                        findings.extend(det.detect(_inputs(det, group, reference)))
                    except Stopped:  # the detector saw the budget run out (limits.checkpoint)
                        unfinished.append(det.name)
                        break
                    except Exception as e:  # noqa: BLE001 - recorded, decided by policy
                        errors.append(f"{det.name}: {type(e).__name__}: {e}")
                        break
                timings[det.name] = timings.get(det.name, 0.0) + time.perf_counter() - t0
        return self._decide(segments, findings, errors, timings, reference, unfinished, budget)

    # -- async ---------------------------------------------------------------
    async def acheck(self, segments: Sequence[Segment], *, reference: Sequence[Segment] = (),
                     budget: Budget | None = None) -> GuardResult:
        """Async twin of `check`: async detectors are awaited, sync ones run in a thread,
        all at once. Past the budget's deadline the detectors still running are dropped
        (their threads stop before their next group)."""
        segments = self.mark_trust(segments)
        every, untrusted = self._groups(segments)

        async def run(det: Detector) -> tuple[str, list[Finding], str | None, float, bool]:
            t0 = time.perf_counter()
            out: list[Finding] = []
            _current_budget.set(budget)  # this task's context, copied into its threads
            try:
                for group in untrusted if self._skips_trusted(det) else every:
                    if budget is not None and budget.stopped:
                        return det.name, out, None, time.perf_counter() - t0, False
                    inputs = _inputs(det, group, reference)
                    adetect = getattr(det, "adetect", None)
                    if adetect is not None:
                        out.extend(await adetect(inputs))
                    else:
                        out.extend(await asyncio.to_thread(det.detect, inputs))
            except Stopped:
                return det.name, out, None, time.perf_counter() - t0, False
            except Exception as e:  # noqa: BLE001
                return det.name, out, f"{det.name}: {type(e).__name__}: {e}", time.perf_counter() - t0, True
            return det.name, out, None, time.perf_counter() - t0, True

        tasks = [asyncio.ensure_future(run(d)) for d in self.detectors]
        remaining = budget.remaining() if budget is not None else None
        try:
            if tasks and remaining is None:
                await asyncio.wait(tasks)
            elif tasks:
                _, pending = await asyncio.wait(tasks, timeout=remaining)
                if pending:
                    assert budget is not None
                    budget.stop(f"deadline of {budget.seconds:g} s passed")
                    for t in pending:
                        t.cancel()
        except BaseException:  # cancelled (the client went away, the server stops): stop the threads too
            if budget is not None:
                budget.stop("cancelled")
            for t in tasks:
                t.cancel()
            raise
        results = [t.result() for t in tasks if t.done() and not t.cancelled()]
        finished = {n for n, *_ in results}
        findings = [f for _, fs, _, _, _ in results for f in fs]
        errors = [e for _, _, e, _, _ in results if e]
        timings = {n: t for n, _, _, t, _ in results}
        unfinished = [d.name for d in self.detectors if d.name not in finished] + \
            [n for n, _, _, _, ok in results if not ok]
        return self._decide(segments, findings, errors, timings, reference, unfinished, budget)

    # -- deciding ------------------------------------------------------------
    def _decide(
        self,
        segments: list[Segment],
        findings: list[Finding],
        errors: list[str],
        timings: dict[str, float],
        reference: Sequence[Segment] = (),
        unfinished: Sequence[str] = (),
        budget: Budget | None = None,
    ) -> GuardResult:
        if reference:  # findings are about the checked segments only
            keys = {(s.kind, s.index, s.prompt) for s in segments}
            findings = [f for f in findings if (f.segment_kind, f.segment_index, f.prompt) in keys]
        checks = [d.name for d in self.detectors if d.name not in unfinished
                  and not any(e.startswith(f"{d.name}:") for e in errors)]
        decision = self.policy.decide(findings, errors=errors, checks=checks)
        result = GuardResult(segments, decision, timings=timings)
        if unfinished:
            why = budget.stopped if budget is not None else None
            result.stopped = why or "stopped"
            apply_limit(decision, self.policy, f"limits: the check stopped ({result.stopped}) before "
                                               f"{', '.join(dict.fromkeys(unfinished))} finished")
        if decision.action is Action.SANITIZE:
            self._sanitize(result)
        return result

    def _sanitize(self, result: GuardResult) -> None:
        """Collect edits from the detectors whose findings asked for sanitize;
        anything that cannot be repaired escalates the request to block."""
        decision = result.decision
        wanted = [f for f, a in zip(decision.reasons, decision.actions) if a is Action.SANITIZE]
        by_detector: dict[str, list[Finding]] = {}
        for f in wanted:
            by_detector.setdefault(f.detector, []).append(f)
        for det in self.detectors:
            fs = by_detector.pop(det.name, None)
            if not fs:
                continue
            edits = None
            if isinstance(det, Sanitizer):
                try:
                    edits = det.sanitize(result.segments, fs)
                except Exception as e:  # noqa: BLE001
                    decision.escalate(Action.BLOCK, f"{det.name}: sanitize failed: {e}")
                    return
            if not edits:
                decision.escalate(Action.BLOCK, f"{det.name}: cannot sanitize its findings")
                return
            result.edits.extend(edits)
        for name in by_detector:
            decision.escalate(Action.BLOCK, f"{name}: no such detector to sanitize with")
        decision.changes = [e.describe() for e in result.edits]


def _inputs(det: Detector, group: list[Segment], reference: Sequence[Segment]) -> list[Segment]:
    """What a detector reads for one prompt group: the group, and the reference
    segments when the detector reads them (`reads_reference = True`)."""
    return [*group, *reference] if reference and getattr(det, "reads_reference", False) else group


def apply_limit(decision: Decision, policy: Policy, why: str) -> None:
    """A check that hit a limit (`policy.limits`): noted, and decided by `on_limit`."""
    decision.errors.append(why)
    act = Action(policy.limits.on_limit)
    if act.rank > decision.action.rank:
        decision.action = act


def load_guard(policy: "Guard | Policy | str | Path | None" = None, *,
               detectors: Mapping[str, Mapping[str, Any]] | None = None, face: str | None = None) -> Guard:
    """The one way the faces build their guard: a `Guard` as it is; otherwise a `Policy`,
    a policy file, or None (the packaged default), with `detectors` enabled and
    configured on top (`{"baseline": {"path": ...}}`, as `--baseline` does). `face`
    (scanner, proxy, langchain, api) picks the policy's trust setting; a guard passed in
    keeps its own unless `face` is given. Policy and detector errors are raised here,
    before any request is seen."""
    if isinstance(policy, Guard):
        if detectors:
            raise ValueError("detector options cannot be added to a guard that is already built")
        return policy if face is None else policy.for_face(face)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    if detectors:
        from .detectors.base import available

        pol = pol.model_copy(deep=True)
        for name, opts in detectors.items():
            if name not in available():
                raise ValueError(f"detector {name!r} is not available; available: {', '.join(available())}")
            cfg = pol.detectors.get(name)
            current = {**cfg.options, "skip_trusted": cfg.skip_trusted} if cfg is not None else {}
            pol.detectors[name] = DetectorConfig(**{**current, **opts, "enabled": True})
    return Guard(pol, face=face or "api")
