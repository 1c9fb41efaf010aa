"""Perturbations: named, composable transforms of a request's segments.

Each perturbation turns an `AuditContext` into segment `Edit`s (or None when it
does not apply); `render` maps the edits back onto the request body (chat messages
or completion prompt) with `promptguard.sanitize`, so every other field of the
body survives. `benign` says what a trustworthy answer should do under it: stay
the same (benign: shuffling demonstrations, moving a span, asking again) or
possibly change (probes: removing a trigger candidate or suspect demonstrations).

| name | benign | what it does |
|---|---|---|
| `zero_shot` | no | drop every demonstration/example |
| `drop_suspect_demos` | no | drop only the demonstrations static analysis suspects |
| `remove_span` | no | delete a trigger candidate from the query |
| `remove_spans` | no | delete several candidates in one probe (group testing) |
| `cut_steps` | no | delete suspected backdoor steps from demonstrations |
| `matched_span` | yes | delete other text of the query, about as long as the candidate, that the problem does not need; the candidate stays exactly where it was |
| `move_span` | yes* | move a trigger candidate to the other end of the query (*only where position cannot matter: see `MoveSpan`) |
| `shuffle_demos` | yes | rotate the demonstrations' order |
| `drop_other_demos` | yes | drop as many *unsuspected* demonstrations (matched control) |
| `repeat` | yes | the request unchanged (measures the model's own noise) |

`Compose(a, b)` applies both (its edits must not overlap); it is benign only when
both parts are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from ..findings import Finding
from ..sanitize import Edit, apply_to_messages, apply_to_text
from ..segments import Segment, SegmentKind
from .candidates import Candidate, DemoInfo, demo_suspects, find_candidates

__all__ = [
    "AuditContext",
    "Perturbation",
    "ZeroShot",
    "DropSuspectDemos",
    "DropOtherDemos",
    "RemoveSpan",
    "CutSteps",
    "MoveSpan",
    "MatchedSpan",
    "RemoveSpans",
    "ShuffleDemos",
    "Repeat",
    "Compose",
    "render",
]


@dataclass
class AuditContext:
    """One request as the audit sees it."""

    body: dict[str, Any]
    segments: list[Segment]
    findings: list[Finding] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    demo_info: DemoInfo = field(default_factory=DemoInfo)
    answer: str | None = None  # the answer being audited (echo, numbers the problem needs)

    @classmethod
    def build(cls, body: dict[str, Any], segments: Sequence[Segment],
              findings: Sequence[Finding] = (), *, max_candidates: int = 3,
              answer: str | None = None) -> "AuditContext":
        segs = list(segments)
        fs = list(findings)
        return cls(body=body, segments=segs, findings=fs,
                   candidates=find_candidates(segs, fs, limit=max_candidates, answer=answer),
                   demo_info=demo_suspects(segs, fs), answer=answer)

    def with_answer(self, answer: str | None, *, max_candidates: int = 3) -> "AuditContext":
        """The candidates again, now that the answer is known (echo, needed numbers)."""
        self.answer = answer
        self.candidates = find_candidates(self.segments, self.findings, limit=max_candidates, answer=answer)
        return self

    @property
    def demos(self) -> list[Segment]:
        """Untrusted worked examples (demonstrations and plain examples)."""
        return [s for s in self.segments if s.kind in (SegmentKind.DEMONSTRATION, SegmentKind.EXAMPLE)]

    def query(self, index: int) -> Segment | None:
        return next((s for s in self.segments if s.kind is SegmentKind.QUERY and s.index == index), None)

    def demo(self, index: int) -> Segment | None:
        return next((s for s in self.segments if s.kind is SegmentKind.DEMONSTRATION and s.index == index), None)


@runtime_checkable
class Perturbation(Protocol):
    name: str
    benign: bool

    def edits(self, ctx: AuditContext) -> list[Edit] | None: ...


def render(body: dict[str, Any], edits: Sequence[Edit]) -> dict[str, Any]:
    """The request body with `edits` applied (chat or completion)."""
    out = copy.deepcopy(body)
    if "messages" in body:
        out["messages"] = apply_to_messages(body["messages"], edits)
    elif isinstance(body.get("prompt"), str):
        out["prompt"] = apply_to_text(body["prompt"], edits)
    elif isinstance(body.get("prompt"), list) and len(body["prompt"]) == 1:
        out["prompt"] = [apply_to_text(body["prompt"][0], edits)]
    else:
        raise ValueError("cannot perturb a request without 'messages' or a single 'prompt'")
    return out


def _span_with_space(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) by the whitespace on one side so that removal leaves one space
    (and a lead-in's comma: "Per memo KX-7, Ada has" -> "Ada has")."""
    before = text[:start].rstrip(" \t")
    if (not before or before[-1] in ".!?:\n") and text[end:end + 2] == ", ":
        return start, end + 2
    if before and before[-1] in ".!?;" and end < len(text) and text[end] in ".;":
        end += 1  # a whole sentence: take its period too ("it. My family loved it." -> "it.")
    if start > 0 and text[start - 1] in " \t":
        return start - 1, end
    if end < len(text) and text[end] in " \t":
        return start, end + 1
    return start, end


@dataclass(frozen=True)
class ZeroShot:
    name: str = "zero_shot"
    benign: bool = False

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        demos = ctx.demos
        if not demos:
            return None
        return [Edit(d, reason="zero-shot") for d in demos]


@dataclass(frozen=True)
class DropSuspectDemos:
    name: str = "drop_suspect_demos"
    benign: bool = False

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        segs = [d for i in ctx.demo_info.suspects if (d := ctx.demo(i)) is not None]
        return [Edit(d, reason="suspect demonstration") for d in segs] or None


@dataclass(frozen=True)
class DropOtherDemos:
    """The matched control of `drop_suspect_demos`: drop as many demonstrations that
    are *not* suspect (the last ones first). A model that merely needs its examples
    changes its answer here too; a backdoor carried by the suspects does not."""

    name: str = "drop_other_demos"
    benign: bool = True

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        suspects = set(ctx.demo_info.suspects)
        others = [d for d in ctx.demos if not (d.kind is SegmentKind.DEMONSTRATION and d.index in suspects)]
        k = min(len(suspects), len(others))
        if not suspects or k == 0:
            return None
        return [Edit(d, reason="matched control") for d in others[-k:]]


@dataclass(frozen=True)
class RemoveSpan:
    candidate: Candidate
    name: str = "remove_span"
    benign: bool = False

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        q = ctx.query(self.candidate.query_index)
        if q is None:
            return None
        s, e = _span_with_space(q.text, self.candidate.start, self.candidate.end)
        if not q.text[:s].strip() and not q.text[e:].strip():
            return None  # the candidate is the whole query
        return [Edit(q, s, e, "", reason=f"trigger candidate {self.candidate.text!r}")]


@dataclass(frozen=True)
class RemoveSpans:
    """Delete several candidates in one probe (group testing: `grouptest.py`)."""

    candidates: tuple[Candidate, ...]
    name: str = "remove_spans"
    benign: bool = False

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        return _removals(ctx, [(c.query_index, c.start, c.end) for c in self.candidates], "trigger candidate")


def _removals(ctx: AuditContext, spans: Sequence[tuple[int, int, int]], reason: str) -> list[Edit] | None:
    out: list[Edit] = []
    by_query: dict[int, list[tuple[int, int]]] = {}
    for qi, s, e in spans:
        by_query.setdefault(qi, []).append((s, e))
    for qi, ranges in by_query.items():
        q = ctx.query(qi)
        if q is None:
            return None
        widened = sorted(_span_with_space(q.text, s, e) for s, e in ranges)
        merged: list[tuple[int, int]] = []
        for s, e in widened:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        kept = "".join(q.text[a:b] for a, b in zip([0] + [e for _, e in merged], [s for s, _ in merged] + [len(q.text)]))
        if not kept.strip(" \t\n.?!,;:"):
            return None  # nothing of the query would be left
        out.extend(Edit(q, s, e, "", reason=f"{reason} {q.text[s:e].strip()!r}") for s, e in merged)
    return out or None


@dataclass(frozen=True)
class MatchedSpan:
    """The benign control of a removal: delete *other* text of the query that the problem does
    not need, about as long as the candidate, and keep the candidate exactly where it was. A
    backdoor that fires on the candidate (wherever it sits, also one that only fires at the end
    of the question) still fires; a model that merely reacts to any deletion moves."""

    candidate: Candidate
    spans: tuple[tuple[int, int, int], ...]  # (query index, start, end) to delete
    name: str = "matched_span"
    benign: bool = True

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        c = self.candidate
        if any(qi == c.query_index and s < c.end and c.start < e for qi, s, e in self.spans):
            return None  # would touch the candidate: not a control
        return _removals(ctx, self.spans, "matched control") if self.spans else None


@dataclass(frozen=True)
class MoveSpan:
    """Move the candidate to the other end of the query: the text keeps every
    character (the trigger too), only its place changes.

    Not a default control: for a backdoor that only fires where its trigger sits (at the end
    of the question, after its question mark) moving the trigger *is* removing it, and the
    control moves the answer exactly like the probe. Use it only where position cannot matter
    (a model known to read its input as a bag of words, or a trigger that was seen to fire at
    both ends); `matched_span` is the control that keeps the candidate in place."""

    candidate: Candidate
    name: str = "move_span"
    benign: bool = True

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        q = ctx.query(self.candidate.query_index)
        if q is None:
            return None
        c = self.candidate
        text = q.text
        s, e = _span_with_space(text, c.start, c.end)
        before, after = text[:s], text[e:]
        if not before.strip() and not after.strip():
            return None
        span = text[c.start:c.end]
        if after.strip(" \t.?!\n"):
            # not at the end: move it to the end
            end = len(text.rstrip())
            return [Edit(q, s, e, "", reason="move candidate"),
                    Edit(q, end, end, " " + span, reason="move candidate")]
        # at the end: move it to the start
        first = len(text) - len(text.lstrip())
        return [Edit(q, first, first, span + " ", reason="move candidate"),
                Edit(q, s, e, "", reason="move candidate")]


@dataclass(frozen=True)
class ShuffleDemos:
    """Rotate the demonstrations by one place (a derangement: every one moves)."""

    name: str = "shuffle_demos"
    benign: bool = True

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        demos = ctx.demos
        if len(demos) < 2:
            return None
        shapes = {len(d.anchors) for d in demos}
        if len(shapes) != 1:
            return None  # mixed shapes (a pair here, a block there): cannot swap in place
        out: list[Edit] = []
        for k, d in enumerate(demos):
            src = demos[(k + 1) % len(demos)]
            for a, b in zip(d.anchors, src.anchors):
                out.append(Edit(d, a.offset, a.offset + a.length,
                                src.text[b.offset:b.offset + b.length], reason="shuffle"))
        return out


@dataclass(frozen=True)
class CutSteps:
    """Delete the reasoning steps static analysis marks as backdoor steps."""

    name: str = "cut_steps"
    benign: bool = False

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        out = []
        for idx, s, e in ctx.demo_info.steps:
            d = ctx.demo(idx)
            if d is None or not (0 <= s < e <= len(d.text)):
                continue
            # take the line break before the step with it
            if s > 0 and d.text[s - 1] == "\n":
                s -= 1
            out.append(Edit(d, s, e, "", reason="suspect step"))
        return out or None


@dataclass(frozen=True)
class Repeat:
    name: str = "repeat"
    benign: bool = True

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        return []


@dataclass(frozen=True)
class Compose:
    parts: tuple[Perturbation, ...]

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.parts)

    @property
    def benign(self) -> bool:
        return all(p.benign for p in self.parts)

    def edits(self, ctx: AuditContext) -> list[Edit] | None:
        out: list[Edit] = []
        for p in self.parts:
            e = p.edits(ctx)
            if e is None:
                return None
            out.extend(e)
        return out
