"""Segments: kinds, per-kind indices, demonstration parts and source locations."""

from __future__ import annotations

from promptguard.findings import Finding, Severity
from promptguard.parsing import segments_from_messages, segments_from_prompt
from promptguard.segments import Anchor, DemoParts, Location, Segment, SegmentBuilder, SegmentKind as K, TextRange, by_prompt, of_kind


def test_builder_counts_indices_per_kind_across_prompts():
    b = SegmentBuilder()
    b.add(K.INSTRUCTION, "sys", prompt=0)
    b.add(K.QUERY, "q0", prompt=0)
    b.add(K.INSTRUCTION, "sys2", prompt=1, source_start=7)
    b.add(K.QUERY, "q1", prompt=1)
    assert [(s.kind.value, s.index, s.prompt) for s in b.segments] == [
        ("instruction", 0, 0), ("query", 0, 0), ("instruction", 1, 1), ("query", 1, 1)]
    assert b.segments[2].anchors == (Anchor(0, 4, None, 7),)
    assert [s.text for s in of_kind(b.segments, K.QUERY)] == ["q0", "q1"]
    assert {k: [s.text for s in v] for k, v in by_prompt(b.segments).items()} == {0: ["sys", "q0"], 1: ["sys2", "q1"]}


def test_demonstration_parts_are_addressable():
    text = "Q: 2+3?\n2 plus 3 is 5.\nThe answer is 5."
    seg = Segment(K.DEMONSTRATION, 0, text, parts=DemoParts(TextRange(3, 7), (TextRange(8, 22),), TextRange(23, 39)))
    assert seg.question == "2+3?" and seg.steps == ["2 plus 3 is 5."] and seg.answer == "The answer is 5."
    plain = Segment(K.QUERY, 0, "hello")
    assert plain.question == "hello" and plain.steps == [] and plain.answer is None


def test_locate_through_several_anchors():
    # a chat pair: user text at message 1 (from offset 2), assistant at message 2
    seg = Segment(K.EXAMPLE, 0, "What?\n\nThat.", anchors=(Anchor(0, 5, 1, 2), Anchor(7, 5, 2, 0)))
    assert seg.locate(0, 5) == Location(1, 2, 7)
    assert seg.locate(7, 12) == Location(2, 0, 5)
    assert seg.locate(3, 10) == Location(1, 5, 7)  # clipped to the anchor holding the start
    assert seg.locate(6, 7) is None  # the separator exists in no message
    assert seg.locate(5, 6) == Location(1, 7, 7)  # an empty range at the end of the first message
    assert seg.locate(12, 12) == Location(2, 5, 5)  # the very end
    assert seg.message_index == 1


def test_to_dict_spans_are_source_offsets():
    text = "Intro line.\n\nQuestion: 1+1?\nIt is two.\nThe answer is 2.\n\nQuestion: 2+2?\nA:"
    segs = segments_from_prompt(text)
    d = segs[1].to_dict()
    assert d == {"kind": "demonstration", "index": 0, "message_index": None, "span": [13, 55], "steps": 1, "has_answer": True}
    assert text[13:55] == segs[1].text
    q = segs[2].to_dict()
    assert text[q["span"][0] : q["span"][1]] == "2+2?"
    f = Finding.on(segs[1], detector="t", score=0.9, message="m", span=(10, 14))
    fd = f.to_dict(segs[1])
    assert fd["span"] == [23, 27] and text[23:27] == "1+1?" and fd["evidence"] == "1+1?"
    assert fd["severity"] == "high" and fd["segment_kind"] == "demonstration" and fd["segment_index"] == 0
    # without the segment the span stays relative to the segment text
    assert f.to_dict()["span"] == [10, 14]


def test_chat_segment_to_dict_names_its_message():
    segs = segments_from_messages([{"role": "system", "content": "  Be brief."}, {"role": "user", "content": "Hi"}])
    assert segs[0].to_dict() == {"kind": "instruction", "index": 0, "message_index": 0, "span": [2, 11]}
    f = Finding.on(segs[1], detector="t", score=0.2, message="m", severity=Severity.LOW)
    assert f.to_dict(segs[1])["message_index"] == 1 and f.to_dict(segs[1])["span"] == [0, 2]


def test_prompt_number_appears_only_when_not_zero():
    segs = segments_from_prompt(["a question", "another"])
    assert "prompt" not in segs[0].to_dict() and segs[1].to_dict()["prompt"] == 1
