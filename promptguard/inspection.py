"""The one inspection step every face calls.

    value in its own shape → segments → Guard → on-error policy →
    edits applied back to the same shape → one findings JSON → one record

A *shape* reads a value (an OpenAI chat body, a completion body, a response's answers,
LangChain messages or documents, a prompt file) into segments and writes the guard's
edits back into a value of the same shape; the shapes live next to their parsers
(`promptguard.parsing`) or, for LangChain's own objects, in the integration. The
`Inspector` runs the step, the same for the proxy, the LangChain handlers and Runnable,
and the scanner, so that a request gets the same decision, the same findings JSON and
the same record whichever face it came through.

The step is written once, as a generator that yields the segments it wants checked
and receives the guard's result (sans-I/O); `Inspector.inspect` drives it with the
guard's sync `check`, `Inspector.ainspect` with its async `acheck`. Failures of the
step itself (a value that cannot be read, a pipeline error, a rewrite that fails)
are decided by the policy's `on_error`, never by the caller: fail closed by default.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generator, Protocol, Sequence, TypeVar, runtime_checkable

from .findings import Finding
from .guard import Guard, GuardResult, apply_limit
from .limits import Budget
from .parsing.errors import ParseError
from .policy import Action, Decision
from .segments import Segment, SegmentKind

__all__ = ["Shape", "Inspection", "Inspector", "finding_json", "Observer"]

log = logging.getLogger("promptguard.inspection")

INBOUND, OUTBOUND = "inbound", "outbound"


@runtime_checkable
class Shape(Protocol):
    """How one kind of value becomes segments and takes edits back.

    `write` is None for a read-only shape (a prompt file, an answer already streamed):
    a sanitize decision then stays a decision, and the face says what it does with it."""

    name: str

    def read(self, value: Any) -> list[Segment]:
        """The value's segments; ParseError when it cannot be read."""
        ...

    write: Callable[[Any, GuardResult], Any] | None

    def text(self, value: Any) -> str:
        """The value's text as records hash (and, when asked, keep) it."""
        ...


def finding_json(f: Finding, segment: Segment | None, action: Action, stage: str) -> dict[str, Any]:
    """One finding as every face reports and records it: the finding's own JSON (span
    in source offsets), the action its score earned under the policy, the stage."""
    d = f.to_dict(segment)
    d["action"] = action.value
    d["stage"] = stage
    return d


Observer = Callable[[str, GuardResult, float], None]  # (stage, result, seconds) after each check


@dataclass
class Inspection:
    """What the step found and did for one value."""

    shape: Shape
    value: Any  # the value inspected
    stage: str  # inbound (what goes to the model) | outbound (the model's answer)
    decision: Decision
    segments: list[Segment] = field(default_factory=list)
    result: GuardResult | None = None  # None when nothing was checked (unreadable, empty)
    output: Any = None  # the value to pass on: the same object, or the rewritten one
    recheck: GuardResult | None = None  # the check of the rewritten value
    unreadable: str | None = None  # why the value could not be read
    seconds: float = 0.0
    _findings_json: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _by_key: dict[tuple[Any, int, int], Segment] | None = field(default=None, init=False, repr=False)

    @property
    def action(self) -> Action:
        return self.decision.action

    @property
    def findings(self) -> list[Finding]:
        return self.decision.findings

    @property
    def rewritten(self) -> bool:
        return self.output is not self.value

    @property
    def text(self) -> str:
        """The value's text (see `Shape.text`); empty when it could not be read."""
        if self.unreadable is not None:
            return ""
        try:
            return self.shape.text(self.value)
        except Exception:  # noqa: BLE001 - a record without a text hash beats no record
            return ""

    def segment_for(self, f: Finding) -> Segment | None:
        """The segment a finding is about."""
        return self._segments_by_key().get((f.segment_kind, f.segment_index, f.prompt))

    def _segments_by_key(self) -> dict[tuple[Any, int, int], Segment]:
        if self._by_key is None:
            self._by_key = {(s.kind, s.index, s.prompt): s for s in self.segments}
        return self._by_key

    def findings_json(self) -> list[dict[str, Any]]:
        """Every finding, those the decision rests on first (most severe first), then the
        ones below their flag threshold (action `allow`), each as `finding_json`."""
        if self._findings_json is None:
            d = self.decision
            by_key = self._segments_by_key()
            acted = {id(f): a for f, a in zip(d.reasons, d.actions)}
            ordered = list(zip(d.reasons, d.actions)) + [(f, Action.ALLOW) for f in d.findings if id(f) not in acted]
            self._findings_json = [
                finding_json(f, by_key.get((f.segment_kind, f.segment_index, f.prompt)), a, self.stage)
                for f, a in ordered]
        return self._findings_json

    def refresh(self) -> None:
        """Forget the cached findings JSON (after the decision changed)."""
        self._findings_json = None


_Flow = Generator[Sequence[Segment], GuardResult, Inspection]
T = TypeVar("T")


# -- running a sans-I/O flow: a generator that yields what it needs and gets the answer --------


def advance(flow: Generator[Any, Any, T], answer: tuple[Any, BaseException | None]) -> tuple[bool, Any]:
    """Give a flow the answer to its last request (a value, or an error to raise there):
    (True, its next request), or (False, what it returned)."""
    value, error = answer
    try:
        return True, (flow.throw(error) if error is not None else flow.send(value))
    except StopIteration as done:
        return False, done.value


def drive(flow: Generator[Any, Any, T], call: Callable[[Any], Any]) -> T:
    """Run a flow to its end with a sync `call(request)` answering each request."""
    answer: tuple[Any, BaseException | None] = (None, None)
    while (nxt := advance(flow, answer))[0]:
        answer = _outcome(call, nxt[1])
    return nxt[1]


async def adrive(flow: Generator[Any, Any, T], acall: Callable[[Any], Awaitable[Any]]) -> T:
    """`drive`'s async twin: `await acall(request)` answers each request."""
    answer: tuple[Any, BaseException | None] = (None, None)
    while (nxt := advance(flow, answer))[0]:
        answer = await _aoutcome(acall, nxt[1])
    return nxt[1]


def _outcome(call: Callable[[Any], Any], request: Any) -> tuple[Any, BaseException | None]:
    try:
        return call(request), None
    except Exception as e:  # noqa: BLE001 - raised into the flow, which decides
        return None, e


async def _aoutcome(acall: Callable[[Any], Awaitable[Any]], request: Any) -> tuple[Any, BaseException | None]:
    try:
        return await acall(request), None
    except Exception as e:  # noqa: BLE001 - raised into the flow, which decides
        return None, e


class Inspector:
    """Runs the inspection step with one guard. Share it: it holds no per-request state.

    `observe(stage, result, seconds)` is told about every guard run (the proxy's
    metrics). `inline_detectors`: when every detector of the guard is one of these and
    the text is short, the async path runs the check on the event loop instead of a
    worker thread (the thread hand-off costs more than a fast rule check)."""

    def __init__(self, guard: Guard, *, observe: Observer | None = None,
                 inline_detectors: frozenset[str] | set[str] = frozenset(), inline_max_chars: int = 20_000,
                 raise_failures: bool = False, limits: bool = True):
        self.guard = guard
        self.policy = guard.policy
        self.observe = observe
        # the scanner reports a file it could not check as an error instead of deciding it
        self.raise_failures = raise_failures
        # the policy's `limits:` bound the work of a check that someone waits for (a request);
        # an offline scan of a prompt library reads every file whole
        self.limits = limits
        detectors = getattr(guard, "detectors", [])
        self._inline_names = frozenset(inline_detectors)
        self._inline = bool(detectors) and all(d.name in self._inline_names for d in detectors)
        self.inline_max_chars = inline_max_chars

    @property
    def fails_open(self) -> bool:
        return self.policy.on_error == "allow"

    def restricted(self, names: Sequence[str]) -> "Inspector":
        """An inspector over the same detector instances, only those named (`*`: all):
        the answer checks."""
        guard = self.guard if "*" in names else Guard(
            self.policy, detectors=[d for d in self.guard.detectors if d.name in names],
            face=getattr(self.guard, "face", "api"))
        return Inspector(guard, observe=self.observe, inline_detectors=self._inline_names,
                         inline_max_chars=self.inline_max_chars, raise_failures=self.raise_failures,
                         limits=self.limits)

    # -- the step, once ------------------------------------------------------------------
    def _flow(self, shape: Shape, value: Any, stage: str) -> _Flow:
        t0 = time.perf_counter()
        try:
            segments = shape.read(value)
        except ParseError as e:
            why = f"cannot read the {shape.name}: {e}"
            return Inspection(shape, value, stage, self.policy.decide([], errors=[why]), output=value,
                              unreadable=str(e), seconds=time.perf_counter() - t0)
        if not segments:
            decision = Decision(action=Action.ALLOW, checks=[d.name for d in getattr(self.guard, "detectors", [])])
            return Inspection(shape, value, stage, decision, output=value, seconds=time.perf_counter() - t0)
        checked, over = self._within_limit(segments)
        if over is not None and not checked:  # on_limit: block: nothing is read
            decision = Decision(action=Action.ALLOW)
            apply_limit(decision, self.policy, over)
            return Inspection(shape, value, stage, decision, segments, output=value,
                              seconds=time.perf_counter() - t0)
        result = yield checked
        if over is not None:
            apply_limit(result.decision, self.policy, over)
        insp = Inspection(shape, value, stage, result.decision, segments, result, output=value)
        if result.action is Action.SANITIZE and result.edits and shape.write is not None:
            yield from self._rewrite(insp)
        insp.seconds = time.perf_counter() - t0
        return insp

    def _within_limit(self, segments: list[Segment]) -> tuple[list[Segment], str | None]:
        """The segments a check may read under `limits.max_text_bytes`, and why not all
        (None when all fit). With `on_limit: block` none are read when they do not all
        fit; with `flag`, the first ones that fit."""
        limit = self.policy.limits.max_text_bytes
        if not self.limits:
            return segments, None
        chars = sum(len(s.text) for s in segments)
        if chars * 4 <= limit:  # UTF-8 takes at most 4 bytes a character
            return segments, None
        sizes = [len(s.text.encode("utf-8", "surrogatepass")) for s in segments]
        total = sum(sizes)
        if total <= limit:
            return segments, None
        why = f"limits: {total} bytes of text to check, above max_text_bytes ({limit})"
        if self.policy.limits.on_limit == "block":
            return [], why
        kept, used = [], 0
        for seg, n in zip(segments, sizes):
            if used + n <= limit:
                kept.append(seg)
                used += n
        return kept, why + f"; {used} bytes were checked"

    def _rewrite(self, insp: Inspection) -> Generator[Sequence[Segment], GuardResult, None]:
        """Apply the edits to the value, then check what the rewrite leaves: it must not
        block. A rewrite that fails forwards the value unchanged only when the policy
        fails open; otherwise it blocks."""
        assert insp.result is not None and insp.shape.write is not None
        try:
            output = insp.shape.write(insp.value, insp.result)
            segments = insp.shape.read(output)
        except Exception as e:  # noqa: BLE001 - our own failure: the policy's on_error decides
            why = f"sanitize failed: {type(e).__name__}: {e}"
            if self.fails_open:
                insp.decision.errors.append(f"{why}; passed on unchanged (on_error: allow)")
            else:
                insp.decision.escalate(Action.BLOCK, why)
            return
        again = (yield segments) if segments else None
        if again is not None and again.action is Action.BLOCK:
            insp.recheck = again
            insp.decision.escalate(Action.BLOCK, "the sanitized input still blocks: " + again.decision.summary())
            return
        insp.output = output

    # -- the drivers: sync and async -------------------------------------------------------
    def inspect(self, shape: Shape, value: Any, stage: str = INBOUND, *, reference: Sequence[Segment] = (),
                budget: Budget | None = None) -> Inspection:
        """Inspect `value`. `reference`: segments the answer detectors read but do not
        check (see `reference_segments`); `budget`: the check's deadline and stop switch
        (default: the policy's `limits.check_timeout_s`)."""
        budget = budget or self._default_budget()
        return drive(self._flow(shape, value, stage),
                     lambda segments: self._check(segments, stage, reference, budget))

    async def ainspect(self, shape: Shape, value: Any, stage: str = INBOUND, *,
                       reference: Sequence[Segment] = (), budget: Budget | None = None) -> Inspection:
        budget = budget or self._default_budget()
        return await adrive(self._flow(shape, value, stage),
                            lambda segments: self._acheck(segments, stage, reference, budget))

    def budget(self, cancel: Any = None) -> Budget:
        """A budget for one check under the policy's limits (`cancel`: a threading.Event
        that stops it, e.g. when the client goes away)."""
        return Budget(self.policy.limits.check_timeout_s if self.limits else None, cancel)

    def _default_budget(self) -> Budget | None:
        return self.budget() if self.limits else None

    @staticmethod
    def _options(reference: Sequence[Segment], budget: Budget | None) -> dict[str, Any]:
        """The guard's keyword arguments that are in use (a guard-like object without
        them still works where they are not)."""
        out: dict[str, Any] = {}
        if reference:
            out["reference"] = reference
        if budget is not None:
            out["budget"] = budget
        return out

    def _check(self, segments: Sequence[Segment], stage: str, reference: Sequence[Segment] = (),
               budget: Budget | None = None) -> GuardResult:
        t0 = time.perf_counter()
        try:
            result = self.guard.check(segments, **self._options(reference, budget))
        except Exception as e:  # noqa: BLE001 - decided by the policy's on_error
            result = self._failed(segments, e)
        self._observe(stage, result, t0)
        return result

    async def _acheck(self, segments: Sequence[Segment], stage: str, reference: Sequence[Segment] = (),
                      budget: Budget | None = None) -> GuardResult:
        t0 = time.perf_counter()
        try:
            options = self._options(reference, budget)
            if self._inline and sum(len(s.text) for s in segments) <= self.inline_max_chars:
                result = self.guard.check(segments, **options)
            else:
                result = await self.guard.acheck(segments, **options)
        except Exception as e:  # noqa: BLE001 - decided by the policy's on_error
            result = self._failed(segments, e)
        self._observe(stage, result, t0)
        return result

    def _failed(self, segments: Sequence[Segment], e: Exception) -> GuardResult:
        if self.raise_failures:
            raise e
        log.exception("inspection failed")
        return GuardResult(list(segments), self.policy.decide([], errors=[f"inspection failed: {type(e).__name__}: {e}"]))

    def _observe(self, stage: str, result: GuardResult, t0: float) -> None:
        if self.observe is not None:
            try:
                self.observe(stage, result, time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - metrics must not change a decision
                log.exception("inspection observer failed")


def reference_segments(segments: Sequence[Segment]) -> list[Segment]:
    """What an answer check reads as reference (never checks): the request's segments
    other than answers (instruction, query, context, examples), so that the
    exfiltration detector can tell conversation text in a URL and a repeated system
    prompt. Answer segments of the request are left out: their keys could be taken
    for the answer's own."""
    return [s for s in segments if s.kind is not SegmentKind.ANSWER]


# -- the answer audit, folded into the inspection of the answer (every face) --------------


def audit_summary(report: Any) -> str:
    """One line for a record's summary: `audit: <status>, <n> extra calls[, trigger '…']`."""
    out = f"audit: {report.status}, {report.extra_calls} extra calls"
    return out + (f", trigger {report.trigger!r}" if getattr(report, "trigger", None) else "")


def fold_audit(answer: Inspection, report: Any, policy: Any) -> None:
    """Fold an audit report into the inspection of the answer it audited: its findings
    are decided with the answer's own by the policy (a confirmed trigger flags or blocks
    as the policy's thresholds for `audit` say), and `audit` joins the checks."""
    d = answer.decision
    checks = d.checks + ([] if "audit" in d.checks else ["audit"])
    extra = list(getattr(report, "findings", None) or [])
    if extra:
        new = policy.decide(d.findings + extra, errors=d.errors, checks=checks)
        new.changes = list(d.changes)
        answer.decision = new
    else:
        d.checks = checks
    answer.refresh()


def audit_failed(answer: Inspection, error: BaseException, policy: Any) -> None:
    """An audit that could not run is decided like a detector error: by `on_error`."""
    why = f"audit: {type(error).__name__}: {error}"
    fail = Action(policy.on_error)
    if fail.rank > answer.action.rank:
        answer.decision.escalate(fail, why)
    else:
        answer.decision.errors.append(why)
    answer.refresh()


__all__ += ["audit_summary", "fold_audit", "audit_failed", "INBOUND", "OUTBOUND", "drive", "adrive", "advance",
            "reference_segments"]
