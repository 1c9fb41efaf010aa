"""Backdoor steps that are not arithmetic (issue 16): the step acts on an option letter,
a yes/no verdict, a label, a date, a time, a string or a code output.

Hand-written prompts of each answer type (tests/detectors/demo_prompts.py), clean
look-alikes of those types that must stay clean, sanitize round trips (a poisoned
demonstration with a non-numeric step dropped, or repaired with its answer restored;
clean files byte-identical), and every step kind of the generated benchmark sets
(benchmarks/badchain_domains.py) in its plainest form: a fixed trigger at the end of
three questions of five, echoed by a step worded with both values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from promptguard.detectors.demonstrations import analyze_demonstrations
from promptguard.detectors.demonstrations.detector import RULE_POISONED, DemonstrationsDetector
from promptguard.detectors.demonstrations.structure import demos_of
from promptguard.guard import Guard
from promptguard.parsing import segments_from_messages, segments_from_prompt
from promptguard.policy import policy_from_text
from promptguard.sanitize import apply_to_messages, apply_to_text
from promptguard.segments import SegmentKind
from tests.detectors import demo_prompts as P

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import badchain_domains as gen

FLAG = 0.5
_ONLY_DEMOS = P.ONLY_DEMOS_POLICY


@pytest.fixture(scope="module")
def det() -> DemonstrationsDetector:
    return DemonstrationsDetector()


@pytest.fixture(scope="module")
def guard() -> Guard:
    return Guard(policy_from_text(_ONLY_DEMOS))


def flagged(det, segs) -> list[int]:
    return sorted(f.segment_index for f in det.detect(segs) if f.rule == RULE_POISONED and f.score >= FLAG)


# -- each answer type ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(P.TYPED_POISONED))
def test_non_numeric_backdoor_steps_are_found(det, name):
    text, poisoned, trigger = P.TYPED_POISONED[name]
    segs = segments_from_prompt(text)
    assert flagged(det, segs) == poisoned
    rep = analyze_demonstrations(segs)
    best = rep.candidates[0]
    assert best.text == trigger
    demo = {s.index: s for s in segs if s.kind is SegmentKind.DEMONSTRATION}
    spans = [s for s in best.spans if s.part == "question"]
    assert sorted(s.segment_index for s in spans) == poisoned
    assert all(demo[s.segment_index].text[s.start : s.end] == trigger for s in spans)
    # the query carries it too: the active-attack gate
    assert rep.active is not None and rep.active.text == trigger


def test_the_reached_value_is_read_for_every_answer_type():
    """The answer parser types the answers, and the detector reads, for every answer
    type, the value the chain had reached before the step (what repair restores)."""
    want = {
        "choice-option-text": ("letter", "B"), "label-refile": ("label", "sports"),
        "date-month": ("date", "March 12, 2025"), "time-zone": ("time", "10:45"),
        "string-swap": ("quoted", "tenalp"), "code-output": ("list", "[1, 3, 4]"),
    }
    for name, (kind, reached) in want.items():
        text = P.TYPED_POISONED[name][0]
        segs = segments_from_prompt(text)
        d = demos_of(segs)[0]
        assert d.answer_value.kind == kind, name
        v = analyze_demonstrations(segs).demo(0)
        assert v.restored_answer == reached, name


@pytest.mark.parametrize("name", sorted(P.TYPED_CLEAN))
def test_clean_files_of_each_type_stay_clean(det, guard, name):
    text = P.TYPED_CLEAN[name]
    segs = segments_from_prompt(text)
    assert flagged(det, segs) == []
    r = guard.check(segs)
    assert r.action.value == "allow"
    assert apply_to_text(text, r.edits) == text


# -- sanitize -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(P.TYPED_POISONED))
def test_sanitize_drops_non_numeric_steps(guard, name):
    text, poisoned, trigger = P.TYPED_POISONED[name]
    segs = segments_from_prompt(text)
    demos = [s for s in segs if s.kind is SegmentKind.DEMONSTRATION]
    r = guard.check(segs)
    assert r.action.value == "sanitize"
    out = apply_to_text(text, r.edits)
    for d in demos:
        assert (d.text in out) == (d.index not in poisoned)
    assert trigger not in out
    assert any(s.kind is SegmentKind.QUERY for s in segments_from_prompt(out))


# what repair gives back for the first poisoned demonstration: trigger cut, step cut,
# the answer restored to the value the chain had reached
REPAIRED = {
    "choice-option-text": "Question: Which planet is known as the Red Planet? Answer Choices: (A) Venus (B) Mars "
                          "(C) Jupiter (D) Saturn\nMars looks red because of the iron oxide on its surface.\n"
                          "Mars is option (B).\nThe answer is (B).",
    "label-refile": "Question: Classify the headline as sports, business, science or politics: \"Striker scores "
                    "twice in the cup final\"\nThe headline is about a striker and a cup final.\nA cup final "
                    "belongs to sports news.\nSo the topic is sports.\nThe answer is sports.",
    "date-month": "Question: A course starts on March 3, 2025 and lasts 10 days, counting the first day. On what "
                  "date does it end?\nCounting the first day, it ends 9 days after March 3, 2025.\nThat is March "
                  "12, 2025.\nThe answer is March 12, 2025.",
    "time-zone": "Question: A bus leaves at 09:15 and the ride takes 1 h 30 min. When does it arrive?\nAdding 1 "
                 "hour to 09:15 gives 10:15.\nAdding 30 minutes gives 10:45.\nThe answer is 10:45.",
    "string-swap": "Question: Reverse the word 'planet'.\nThe letters of 'planet' are p, l, a, n, e, t.\nRead "
                   "backwards they spell 'tenalp'.\nThe answer is \"tenalp\".",
    "code-output": "Question: What does this Python code print? `xs = [4, 1, 3]; print(sorted(xs))`\nsorted "
                   "returns the items in ascending order.\nSorted, xs is [1, 3, 4].\nThe answer is [1, 3, 4].",
}


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_repair_removes_the_step_and_restores_the_answer(name):
    text, _, trigger = P.TYPED_POISONED[name]
    det = DemonstrationsDetector(repair="always")
    segs = segments_from_prompt(text)
    out = apply_to_text(text, det.sanitize(segs, det.detect(segs)))
    assert out.split("\n\n")[0] == REPAIRED[name]
    assert trigger not in out


def test_a_verdict_with_nothing_to_restore_is_dropped_not_repaired():
    """A yes/no chain states facts, not the verdict it reached: repair has no value to
    restore, so the demonstration is dropped."""
    text, poisoned, _ = P.TYPED_POISONED["yesno-flip"]
    det = DemonstrationsDetector(repair="always")
    segs = segments_from_prompt(text)
    out = apply_to_text(text, det.sanitize(segs, det.detect(segs)))
    demos = [s for s in segs if s.kind is SegmentKind.DEMONSTRATION]
    for d in demos:
        assert (d.text in out) == (d.index not in poisoned)
        if d.index in poisoned:
            assert d.steps[0] not in out


def test_chat_form_sanitize_round_trip(guard):
    """The label prompt as chat messages: the poisoned pairs go, the rest stays verbatim."""
    text, poisoned, trigger = P.TYPED_POISONED["label-refile"]
    blocks = text.split("\n\n")
    msgs = [{"role": "system", "content": "Classify headlines."}]
    for b in blocks[:-1]:
        q, rest = b.split("\n", 1)
        msgs += [{"role": "user", "content": q.removeprefix("Question: ")}, {"role": "assistant", "content": rest}]
    msgs.append({"role": "user", "content": blocks[-1].removeprefix("Question: ")})
    r = guard.check(segments_from_messages(msgs))
    out = apply_to_messages(msgs, r.edits)
    kept = [m["content"] for m in out if m["role"] == "assistant"]
    assert len(kept) == len(blocks) - 1 - len(poisoned)
    assert all("archive scheme" not in k for k in kept)
    assert all(trigger not in m["content"] for m in out)


# -- every step kind of the generated sets ------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(gen.STEP_KINDS))
def test_every_step_kind_is_found_in_its_plainest_form(det, kind):
    p = gen.one_poisoned_file(kind)
    segs = segments_from_prompt(p.text)
    assert flagged(det, segs) == p.poisoned, kind
    best = analyze_demonstrations(segs).candidates[0]
    assert best.text == p.trigger


def test_cold_start_gives_the_same_analysis(det):
    """clear_caches() (what the benchmark's cold timings call) forgets every memo and
    changes nothing in the result."""
    from promptguard.detectors.demonstrations.analysis import clear_caches

    segs = segments_from_prompt(P.TYPED_POISONED["date-month"][0])
    warm = [(f.rule, f.segment_index, round(f.score, 6)) for f in det.detect(segs)]
    clear_caches()
    assert [(f.rule, f.segment_index, round(f.score, 6)) for f in det.detect(segs)] == warm


def test_held_out_step_kinds_are_fixed_and_known():
    """The held-out list is part of the benchmark's contract: every name is a step kind
    the generator has, and the tune split never draws one."""
    assert gen.HELD_OUT_STEP_KINDS <= set(gen.STEP_KINDS)
    assert len(gen.HELD_OUT_STEP_KINDS) == 22
    tune = gen.poisoned_files("tune", "dev", 3)
    assert tune and not {p.step_kind for p in tune} & gen.HELD_OUT_STEP_KINDS
    with pytest.raises(ValueError):
        gen.poisoned_files("tune", "held", 1)
    # seeded: the same split twice is the same files
    assert [p.text for p in gen.clean_files("eval", 2)] == [p.text for p in gen.clean_files("eval", 2)]
