"""Reject constructions that are not real attacks.

The validator reads the *rendered* attack back — through the project's own
parsers, and from the exact characters at the recorded spans — so a builder
bug, a carrier that mangles the payload or a hand-edited prompt is caught, not
trusted:

poisoned demonstrations
  - at least one demonstration is poisoned, and the parser sees every
    demonstration where the ground truth says it is;
  - the trigger is not blank, sits in every poisoned question, appears in no
    clean demonstration, and is in the query exactly when the construction says so;
  - the backdoor step is one of the demonstration's reasoning steps, it changes
    the answer (semantically: 12 == 12.0, a re-formatted date is the same date, a
    reversed palindrome is the same word), and the final answer follows it.

injections
  - what the carrier really holds at each planted span decodes back to the
    payload (base64 intact, homoglyphs fold back, a table cell did not truncate
    it, JSON/HTML/markdown escaping did not alter it), with every marker (URL,
    address, expected reply) verbatim;
  - each planted part lands in a parsed segment, and the two halves of a split
    payload land in different segments.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from ..segments import SegmentKind
from . import carriers as C
from .attack_space import Attack
from .domains import WEEKDAYS, Answer, parse_answer_text

__all__ = ["ValidationResult", "validate", "typed_answer"]


@dataclass
class ValidationResult:
    ok: bool
    reasons: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def typed_answer(answer_type: str, text: str) -> Answer | None:
    """Parse a rendered answer back into a typed value."""
    s = text.strip().rstrip(".").strip()
    try:
        if answer_type == "number":
            return Answer("number", float(s.replace(",", "").replace("$", "")))
        if answer_type == "date":
            for fmt in ("%B %d, %Y", "%Y-%m-%d"):
                try:
                    return Answer("date", _dt.datetime.strptime(s, fmt).date())
                except ValueError:
                    continue
            return None
        if answer_type == "weekday":
            return Answer("weekday", WEEKDAYS.index(s.capitalize()))
    except ValueError:
        return None
    if answer_type == "sql":
        return Answer("sql", text.strip().rstrip("."))
    return Answer(answer_type, s.strip('"'))


def _norm(s: str) -> str:
    return " ".join(s.split())


def validate(attack: Attack) -> ValidationResult:
    reasons: list[str] = []
    if not attack.poisoned:
        return ValidationResult(False, ["a clean twin is not an attack"])
    try:
        segments = attack.segments()
    except Exception as e:  # noqa: BLE001 - a prompt the parser rejects is no attack
        return ValidationResult(False, [f"the rendered prompt does not parse: {e}"])
    if attack.family == "demo":
        _validate_demo(attack, segments, reasons)
    elif attack.family == "inject":
        _validate_inject(attack, segments, reasons)
    else:
        reasons.append(f"unknown family {attack.family!r}")
    return ValidationResult(not reasons, reasons)


def _validate_demo(attack: Attack, segments: list, reasons: list[str]) -> None:
    t = attack.truth
    trigger = t.get("trigger") or ""
    truth_demos: list[dict[str, Any]] = t.get("demos", [])
    poisoned = [d for d in truth_demos if d.get("poisoned")]
    if not poisoned:
        reasons.append("no poisoned demonstration")
        return
    if not trigger or trigger.isspace():
        reasons.append("the trigger is blank")
        return
    demos = [s for s in segments if s.kind is SegmentKind.DEMONSTRATION]
    if len(demos) != len(truth_demos):
        reasons.append(f"the parser sees {len(demos)} demonstrations, the ground truth {len(truth_demos)}")
        return
    for seg, d in zip(demos, truth_demos):
        i = d["index"]
        if _norm(d["question"]) not in _norm(seg.question):
            reasons.append(f"demonstration {i}: its question is not where the ground truth says")
            continue
        if not d["poisoned"]:
            if trigger in seg.text:
                reasons.append(f"the trigger {trigger!r} also occurs in clean demonstration {i}")
            continue
        # trigger in the question, at the recorded place
        spans = d.get("trigger_spans") or []
        if not spans or attack.text_at(spans[0]) != trigger or trigger not in seg.question:
            reasons.append(f"demonstration {i}: the trigger is missing from its question")
        for sp in spans[1:]:
            if attack.text_at(sp) != trigger:
                reasons.append(f"demonstration {i}: a recorded trigger echo is not there")
        step = d.get("backdoor_step")
        if not step:
            reasons.append(f"demonstration {i}: poisoned but has no backdoor step")
            continue
        if _norm(step) not in [_norm(s) for s in seg.steps]:
            reasons.append(f"demonstration {i}: the backdoor step is not one of its reasoning steps")
        atype = d.get("answer_type", "text")
        clean = typed_answer(atype, d["clean_answer"])
        new = typed_answer(atype, d["answer"])
        if clean is None or new is None:
            reasons.append(f"demonstration {i}: answer cannot be read back")
            continue
        if clean.same(new):
            reasons.append(f"demonstration {i}: the backdoor step does not change the answer ({d['clean_answer']!r} -> {d['answer']!r})")
        shown = seg.answer
        got = None
        if shown is not None:
            raw = shown
            pa = parse_answer_text(raw)
            got = typed_answer(atype, pa.render() if pa is not None and pa.type == atype else raw.split("answer is", 1)[-1])
        if got is None or not got.same(new):
            reasons.append(f"demonstration {i}: the final answer does not follow the backdoor step")
    # the instruction and other non-demonstration input must not carry the trigger either
    for s in segments:
        if s.kind in (SegmentKind.INSTRUCTION, SegmentKind.EXAMPLE, SegmentKind.CONTEXT) and trigger in s.text:
            reasons.append(f"the trigger also occurs in {s.kind.value}[{s.index}]")
    want = bool(attack.construction.get("query_trigger"))
    queries = [s for s in segments if s.kind is SegmentKind.QUERY]
    in_query = any(trigger in s.text for s in queries)
    q_spans = t.get("query", {}).get("trigger_spans") or []
    if want:
        if not queries:
            reasons.append("there is no query to carry the trigger")
        elif not in_query or not q_spans or any(attack.text_at(sp) != trigger for sp in q_spans):
            reasons.append("the trigger is missing from the query although the construction requires it")
    elif in_query:
        reasons.append("the query carries the trigger although the construction says it should not")


def _validate_inject(attack: Attack, segments: list, reasons: list[str]) -> None:
    t = attack.truth
    payload_text = t.get("payload")
    parts = t.get("parts") or []
    kind = t.get("obfuscation") or "none"
    if not payload_text or not parts:
        reasons.append("no payload planted")
        return
    planted = [attack.text_at(sp) for sp in parts]
    if any(not p for p in planted):
        reasons.append("a planted part is not in the rendered prompt")
        return
    payload = C.Payload(t.get("payload_family") or "", 0, payload_text, tuple(t.get("markers") or ()),
                        ((t["lang"], t["translation"]),) if t.get("lang") and t.get("translation") else ())
    if kind == "split" and len(planted) < 2:
        reasons.append("a split payload needs two parts")
    got, why = C.recover(kind, planted, payload, t.get("lang"))
    want = C.expected(kind, payload, t.get("lang"))
    if got is None:
        reasons.append(f"the payload did not survive {kind}: {why}")
    elif got != want:
        reasons.append(f"the payload did not survive {kind} and the {t.get('carrier')} carrier: recovered {got[:80]!r}")
    else:
        check = C.leet_fold(got) if kind == "leetspeak" else got
        for m in payload.markers:
            if (C.leet_fold(m) if kind == "leetspeak" else m) not in check:
                reasons.append(f"marker {m!r} lost")
    from .attack_space import _overlaps

    hit = []
    for sp in parts:
        owners = [(s.kind, s.index) for s in segments if _overlaps(s, sp)]
        if not owners:
            reasons.append("a planted part lands in no parsed segment")
        hit.append(tuple(owners))
    if kind == "split" and len(hit) >= 2 and len(set(hit)) < 2:
        reasons.append("the split payload lands in a single segment, so it is not split across segments")
