"""The `demonstrations` detector: findings and sanitize edits from the analysis.

Findings (detector ``demonstrations``):

- ``PG-DEMO-POISONED`` on ``demonstration[i]``: the demonstration looks backdoored.
  Span: its trigger in the question (or the backdoor step when no trigger is
  located). ``details``: ``trigger``, ``trigger_spans``, ``backdoor_step`` (span and
  text), ``step_score``, ``trigger_score``, ``signals``.
- ``PG-DEMO-STEP`` on ``demonstration[i]``: the suspected backdoor step (span = the
  step), reported when the step evidence itself is strong.
- ``PG-DEMO-TRIGGER`` on ``query[j]``: the query carries a trigger of the
  demonstrations — an active attack. One finding per occurrence.

Sanitize drops poisoned demonstrations (repairs them instead when nothing clean
would be left: trigger cut from the question, backdoor step cut, answer restored
to the result the step transformed), strips the trigger from the questions of the
demonstrations it keeps, and from the query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...findings import Finding
from ...sanitize import Edit
from ...segments import Segment, SegmentKind, by_prompt
from .analysis import CACHE, DemonstrationReport, TemplateCache, TriggerSpan, analyze_demonstrations
from .structure import demos_of
from .text import Value, mentions, parse_answer, values_in

__all__ = ["RULE_POISONED", "RULE_STEP", "RULE_TRIGGER", "DemonstrationsDetector"]

RULE_POISONED = "PG-DEMO-POISONED"
RULE_STEP = "PG-DEMO-STEP"
RULE_TRIGGER = "PG-DEMO-TRIGGER"


class DemonstrationsDetector:
    """BadChain-style backdoored demonstrations, statically (no LLM call)."""

    name = "demonstrations"

    def __init__(
        self,
        *,
        report_at: float = 0.3,
        trigger_at: float = 0.5,
        weights: str = "auto",
        cache_size: int = 2048,
        repair: str = "auto",
        min_keep: int = 1,
        max_demos: int = 1000,
    ) -> None:
        from .scoring import NAMED, load_weights

        weights = str(weights)
        if weights not in NAMED and not Path(weights).is_file():
            raise ValueError(f"weights must be auto, fitted, principled or a weights file, not {weights!r}")
        if repair not in ("auto", "always", "never"):
            raise ValueError(f"repair must be auto, always or never, not {repair!r}")
        self.report_at = float(report_at)
        self.trigger_at = float(trigger_at)
        self.weights = weights
        self.repair = repair
        self.min_keep = int(min_keep)
        self.max_demos = int(max_demos)
        self.cache = CACHE if cache_size == CACHE.maxsize else TemplateCache(int(cache_size))
        if weights not in ("auto", "principled"):
            load_weights(weights)  # fail at load time, not per request

    @classmethod
    def from_config(cls, options: Mapping[str, Any], base_dir: Path | None = None) -> DemonstrationsDetector:
        from .scoring import NAMED

        known = {"report_at", "trigger_at", "weights", "cache_size", "repair", "min_keep", "max_demos"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"demonstrations: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        opts = dict(options)
        w = opts.get("weights")
        if isinstance(w, str) and w not in NAMED:  # a weights file, relative to the policy file
            p = Path(w).expanduser()
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            opts["weights"] = str(p.resolve())
        return cls(**opts)

    # -- analysis --------------------------------------------------------------------
    def analyze(self, segments: Sequence[Segment]) -> DemonstrationReport:
        n = sum(1 for s in segments if s.kind is SegmentKind.DEMONSTRATION)
        if n > self.max_demos:
            raise ValueError(f"{n} demonstrations in one prompt exceeds max_demos={self.max_demos}")
        return analyze_demonstrations(segments, weights=self.weights, cache=self.cache)

    # -- detect ----------------------------------------------------------------------
    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        rep = self.analyze(segments)
        if not rep.demos:
            return []
        seg_by = {(s.kind, s.index): s for s in segments}
        out: list[Finding] = []
        for v in rep.demos:
            if v.score < self.report_at:
                continue
            key = (v.segment_kind, v.index)
            seg = seg_by.get(key)
            if seg is None:
                continue
            cand = next((c for c in rep.candidates if key in c.carriers and c.score >= self.trigger_at), None)
            qspans = [s for s in v.trigger_spans if s.part == "question"] if cand is not None else []
            step = v.backdoor_step
            span = (qspans[0].start, qspans[0].end) if qspans else step
            step_text = seg.text[step[0] : step[1]] if step else None
            what = []
            if cand is not None:
                what.append(f"trigger {cand.text!r} in its question")
            if step_text and v.step_score >= 0.5:
                what.append(f"a final step that changes the result ({_clip(step_text)!r})")
            message = "backdoored demonstration: " + (" and ".join(what) if what else "anomalous final step")
            details: dict[str, Any] = {
                "step_score": round(v.step_score, 4),
                "trigger_score": round(v.trigger_score, 4),
                "signals": v.signals,
            }
            if cand is not None:
                details["trigger"] = cand.text
                details["trigger_spans"] = [s.to_dict() for s in v.trigger_spans]
            if step:
                details["backdoor_step"] = {"span": list(step), "text": step_text}
            if v.restored_answer is not None:
                details["restored_answer"] = v.restored_answer
            out.append(Finding.on(seg, detector=self.name, rule=RULE_POISONED, score=v.score,
                                  message=message, span=span, details=details))
            # the backdoor step: strong step evidence of its own, or the line that echoes
            # the trigger, or the template only the trigger's carriers end with
            echoed = cand is not None and step is not None and any(
                s.part == "step" and step[0] <= s.start and s.end <= step[1] for s in v.trigger_spans)
            templated = cand is not None and cand.features.get("template_in", 0) > 0
            step_conf = max(v.step_score, 0.9 if echoed else 0.0, 0.8 if templated else 0.0)
            if step and step_conf >= 0.5:
                out.append(Finding.on(
                    seg, detector=self.name, rule=RULE_STEP, score=min(v.score, step_conf),
                    message=f"suspected backdoor step: {_clip(step_text or '')!r}", span=step,
                    details={"step_score": round(v.step_score, 4), "echoes_trigger": echoed,
                             "carrier_template": templated},
                ))
        # the active-attack gate: the query carries a trigger of the demonstrations
        act = rep.active
        if act is not None and act.score >= self.trigger_at:
            carriers = [v.score for v in rep.demos if (v.segment_kind, v.index) in act.carriers]
            score = (act.score * max(carriers, default=0.0)) ** 0.5
            if score >= self.report_at:
                for qs in act.query_spans:
                    seg = seg_by.get((qs.segment_kind, qs.segment_index))
                    if seg is None:
                        continue
                    out.append(Finding.on(
                        seg, detector=self.name, rule=RULE_TRIGGER, score=score,
                        message=f"the query carries the demonstrations' trigger {act.text!r}: active backdoor attack",
                        span=(qs.start, qs.end),
                        details={"trigger": act.text, "trigger_score": round(act.score, 4),
                                 "demonstrations": list(act.demonstrations)},
                    ))
        return out

    # -- sanitize --------------------------------------------------------------------
    def sanitize(self, segments: Sequence[Segment], findings: Sequence[Finding]) -> list[Edit] | None:
        mine = [f for f in findings if f.detector == self.name]
        if not mine:
            return None
        edits: list[Edit] = []
        for prompt, group in by_prompt(segments).items():
            fs = [f for f in mine if f.prompt == prompt]
            if fs:
                got = self._sanitize_group(group, fs)
                if got is None:
                    return None
                edits.extend(got)
        return edits or None

    def _sanitize_group(self, group: list[Segment], fs: list[Finding]) -> list[Edit] | None:
        rep = self.analyze(group)
        demos = demos_of(group)
        by_key = {(d.seg.kind, d.index): d for d in demos}
        targets = {(f.segment_kind, f.segment_index) for f in fs if (f.segment_kind, f.segment_index) in by_key}
        strong = [c for c in rep.candidates if c.score >= self.trigger_at]
        # triggers to strip: those carried by the demonstrations being sanitized, or named
        # by a query finding (an active attack: its carriers go too)
        named = {f.details.get("trigger") for f in fs if f.rule == RULE_TRIGGER}
        for c in strong:
            if c.text in named:
                targets |= {k for k in c.carriers if (v := rep.demo(k[1], k[0])) is not None and v.score >= self.report_at}
        chosen: dict[str, object] = {}
        for key in targets:  # the best trigger of each demonstration being sanitized
            best = next((c for c in strong if key in c.carriers), None)
            if best is not None:
                chosen[best.text] = best
        triggers = [c for c in strong if c.text in chosen or c.text in named]
        # ... whose other carriers go too when they are suspect themselves (a trigger in
        # the question and a reported score: the same backdoor, less sure of its step)
        for c in triggers:
            targets |= {k for k in c.carriers if (v := rep.demo(k[1], k[0])) is not None and v.score >= self.report_at}
        edits: list[Edit] = []
        keep = [d for d in demos if (d.seg.kind, d.index) not in targets]
        repair = self.repair == "always" or (self.repair == "auto" and len(keep) < self.min_keep)
        for key in sorted(targets, key=lambda k: (k[0].value, k[1])):
            d = by_key.get(key)
            if d is None:
                continue
            v = rep.demo(key[1], key[0])
            if repair and v is not None:
                fixed = _repair(d, v, triggers)
                if fixed is not None:
                    edits.extend(fixed)
                    continue
            edits.append(Edit(d.seg, reason=_drop_reason(v, triggers)))
        # kept demonstrations that still carry a trigger: cut it from their question
        for d in keep:
            for c in triggers:
                for s in c.spans:
                    if s.segment_kind is d.seg.kind and s.segment_index == d.index and s.part == "question":
                        a, b = _with_space(d.text, s.start, s.end)
                        edits.append(Edit(d.seg, a, b, "", reason=f"trigger {c.text!r} removed"))
        # the query
        seg_by = {(s.kind, s.index): s for s in group}
        done: set[tuple[SegmentKind, int, int]] = set()
        for c in triggers:
            for s in c.query_spans:
                seg = seg_by.get((s.segment_kind, s.segment_index))
                if seg is None or (s.segment_kind, s.segment_index, s.start) in done:
                    continue
                done.add((s.segment_kind, s.segment_index, s.start))
                a, b = _with_space(seg.text, s.start, s.end)
                edits.append(Edit(seg, a, b, "", reason=f"trigger {c.text!r} stripped from the query"))
        return _non_overlapping(edits) or None


def _clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _drop_reason(v, triggers) -> str:
    bits = ["poisoned demonstration"]
    if v is not None and triggers:
        bits.append(f"trigger {triggers[0].text!r}")
    if v is not None:
        bits.append(f"score {v.score:.2f}")
    return ", ".join(bits)


def _with_space(text: str, s: int, e: int) -> tuple[int, int]:
    """Widen a span to take one neighbouring space with it (no double spaces left)."""
    if s > 0 and text[s - 1] in " \t":
        return s - 1, e
    if e < len(text) and text[e] in " \t":
        return s, e + 1
    return s, e


def _repair(d, v, triggers) -> list[Edit] | None:
    """Cut the trigger and the backdoor step, restore the answer; None when the
    demonstration cannot be repaired (no step located, or no result to restore)."""
    text = d.text
    step = v.backdoor_step
    if step is None or v.restored_answer is None or d.answer is None or d.answer_value is None:
        return None
    edits: list[Edit] = []
    for c in triggers:
        for s in c.spans:
            if s.segment_kind is d.seg.kind and s.segment_index == d.index and s.part == "question":
                a, b = _with_space(text, s.start, s.end)
                edits.append(Edit(d.seg, a, b, "", reason=f"trigger {c.text!r} removed"))
    # the step: its whole line (with the line break) or, inside a line, the sentence
    s, e = step
    line_start = text.rfind("\n", 0, s) + 1
    line_end = text.find("\n", e)
    line_end = len(text) if line_end < 0 else line_end
    if text[line_start:s].strip() == "" and text[e:line_end].strip() == "":
        a, b = line_start, min(len(text), line_end + 1)
    else:
        a, b = s, e
        while a > line_start and text[a - 1] in " \t":
            a -= 1
    edits.append(Edit(d.seg, a, b, "", reason="backdoor step removed"))
    # the answer: the stated value → the result the step had transformed
    A: Value = d.answer_value
    ans_s, ans_e = d.answer
    line = text[ans_s:ans_e]
    span = _value_span(line, A, d.letters, d.labels)
    if span is None:
        return None
    restored = _as_answer(v.restored_answer, line[span[0] : span[1]], A)
    edits.append(Edit(d.seg, ans_s + span[0], ans_s + span[1], restored,
                      reason=f"answer restored to {restored!r}"))
    return edits


_QUOTES = "\"'`“”‘’"


def _as_answer(restored: str, written: str, A: Value) -> str:
    """The reached value written the way the answer line writes its answer: a bare
    option letter, no quotes (the line keeps its own), the same capitalisation."""
    if A.kind == "letter":
        m = re.search(r"[A-Za-z]", restored)
        return m.group().upper() if m else restored
    out = restored
    if len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
        out = out[1:-1]
    if A.kind in ("yesno", "label") and written[:1].isupper() and out[:1].islower():
        out = out[:1].upper() + out[1:]
    return out


def _value_span(line: str, A: Value, letters: bool, labels: tuple[str, ...] = ()) -> tuple[int, int] | None:
    """Where the answer line states its value (inside the quotes of a quoted one)."""
    if A.kind in ("text", "label"):
        k = line.casefold().rfind(A.key.casefold())
        return (k, k + len(A.key)) if k >= 0 else None
    for v in reversed(values_in(line, letters=letters or A.kind == "letter", labels=labels)):
        if v.kind == A.kind and (v.key == A.key or (A.kind == "num" and mentions(line[v.start:v.end], A))):
            if (A.kind == "letter" and line[v.start : v.end].startswith("(")) or (
                    A.kind == "quoted" and v.end - v.start >= 2 and line[v.start] in _QUOTES):
                return v.start + 1, v.end - 1
            return v.start, v.end
    return None


def _non_overlapping(edits: list[Edit]) -> list[Edit]:
    """Drop edits that overlap an earlier one on the same segment (whole drops win)."""
    out: list[Edit] = []
    for e in edits:
        clash = False
        for o in out:
            if o.segment is not e.segment and (o.segment.kind, o.segment.index, o.segment.prompt) != (
                e.segment.kind, e.segment.index, e.segment.prompt):
                continue
            if o.drops_segment or e.drops_segment:
                clash = True
                break
            if not (e.end <= o.start or e.start >= o.end):
                clash = True
                break
        if not clash:
            out.append(e)
    return out


__all__ += ["TriggerSpan", "parse_answer"]
