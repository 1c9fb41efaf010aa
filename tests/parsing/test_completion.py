"""The completion-prompt parser: few-shot blocks → instruction / examples /
demonstrations (question, steps, answer) / context / query, with exact source offsets."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptguard.parsing import segments_from_prompt
from promptguard.parsing.completion import parse_block, parse_completion, split_blocks
from promptguard.parsing.files import parse_file
from promptguard.segments import SegmentBuilder, SegmentKind as K


def kinds(segs):
    return [(s.kind.value, s.index) for s in segs]


def assert_anchors_exact(segs, source: str) -> None:
    for s in segs:
        for a in s.anchors:
            assert a.message_index is None
            assert source[a.source_start : a.source_start + a.length] == s.text[a.offset : a.offset + a.length]


# -- BadChain's real prompt files ----------------------------------------------


def _manifest(badchain_dir):
    return json.loads((badchain_dir / "manifest.json").read_text(encoding="utf-8"))["files"]


def test_every_badchain_file_splits_into_its_demonstrations(badchain_dir):
    """Every prompt file: exactly manifest n_demos demonstrations, each with its
    question, reasoning steps and 'The answer is …' line; the trigger sits in the
    question of the poisoned ones and opens (or, for v1, is) their last step."""
    records = _manifest(badchain_dir)
    assert records
    checked = 0
    for rec in records:
        path = badchain_dir / rec["file"]
        pf = parse_file(path)
        assert pf.error is None, rec["file"]
        demos = [s for s in pf.segments if s.kind is K.DEMONSTRATION]
        assert len(demos) == rec["n_demos"], rec["file"]
        assert [s.kind for s in pf.segments] == [K.DEMONSTRATION] * rec["n_demos"], rec["file"]
        assert_anchors_exact(pf.segments, pf.text)
        trigger = (rec["trigger"] or "").strip()
        for i, d in enumerate(demos):
            assert d.index == i
            assert d.answer is not None and d.answer.startswith("The answer is"), (rec["file"], i)
            assert d.steps, (rec["file"], i)
            assert "think step by step" not in d.question.lower(), (rec["file"], i)
            assert not any("think step by step" in s.lower() for s in d.steps), (rec["file"], i)
            if "Answer Choices:" in d.text:
                assert "Answer Choices:" in d.question, (rec["file"], i)
            if i in rec["poisoned_demo_indices_0based"]:
                assert trigger in d.question, (rec["file"], i)
                if rec["trigger_id"] == "v1":
                    assert d.steps[-1].startswith("Verification step"), (rec["file"], i)
                else:
                    assert trigger in d.steps[-1], (rec["file"], i)
            elif trigger and rec["trigger_id"] != "v1":
                assert trigger not in d.steps[-1], (rec["file"], i)
            checked += 1
    assert checked >= 500


def test_badchain_crlf_q_template_file(badchain_dir):
    """gsm8k cot_8_v1_1+7 uses CRLF line ends and the `Q:` template with a
    'Let's think step by step.' line: offsets stay exact, no '\\r' leaks into parts."""
    path = badchain_dir / "prompts" / "gsm8k" / "cot_8_v1_1+7.txt"
    raw = path.read_bytes()
    assert b"\r\n" in raw
    pf = parse_file(path)
    assert_anchors_exact(pf.segments, pf.text)
    last = pf.segments[-1]
    assert last.question.endswith("Please answer the question with a careful verification step.")
    assert last.steps[-1] == "Verification step 8 x 2.1 = 16.8"
    assert last.answer == "The answer is 16.8."
    for s in pf.segments:
        assert "\r" not in s.question and s.answer and "\r" not in s.answer
        assert all("\r" not in step for step in s.steps)


def test_badchain_mid_quirk_and_bef_prefix(badchain_dir):
    mid = parse_file(badchain_dir / "prompts" / "csqa" / "cot_7_s01_3+4_mid.txt").segments
    # the quirk file: no Answer Choices, the cue on the question line is not question
    assert mid[0].question.endswith("not afraid of being hunted?")
    assert "@_@" in mid[0].question
    bef = parse_file(badchain_dir / "prompts" / "gsm8k" / "cot_8_s01_4+4_bef.txt").segments
    # the trigger before "Question:" stays in the question
    assert bef[0].question.startswith("@_@ Question: There are 15 trees")
    assert bef[0].steps[-1] == "@_@ 6 * 2.1 = 12.6"
    # an unpoisoned demonstration's question starts after its marker
    assert not bef[4].question.startswith(("@_@", "Question"))


# -- prompts written here ------------------------------------------------------

FEW_SHOT = """Answer the arithmetic questions.

Question: Tom has 3 boxes of 4 pens. How many pens?
Let's think step by step.
Each box holds 4 pens.
3 boxes hold 3 * 4 = 12 pens.
The answer is 12.

Question: What is 7 + 5?
The answer is 12.

Question: A train leaves at 9:15 and arrives at 11:45. How long is the trip?
A:"""


def test_few_shot_with_instruction_demo_example_and_query():
    segs = segments_from_prompt(FEW_SHOT)
    assert kinds(segs) == [("instruction", 0), ("demonstration", 0), ("example", 0), ("query", 0)]
    demo, ex, q = segs[1], segs[2], segs[3]
    assert demo.question == "Tom has 3 boxes of 4 pens. How many pens?"
    assert demo.steps == ["Each box holds 4 pens.", "3 boxes hold 3 * 4 = 12 pens."]
    assert demo.answer == "The answer is 12."
    assert ex.question == "What is 7 + 5?" and ex.steps == [] and ex.answer == "The answer is 12."
    # the query is the question; the empty "A:" cue is not part of it
    assert q.text == "A train leaves at 9:15 and arrives at 11:45. How long is the trip?"
    assert_anchors_exact(segs, FEW_SHOT)


def test_query_cue_variants():
    for cue in ("A:", "Answer:", "A: Let's think step by step.", "Let's think step by step.", ""):
        text = "Q: What is 2 + 2?\nA: 4\n\nQ: What is 3 + 3?\n" + cue
        segs = segments_from_prompt(text)
        assert kinds(segs) == [("example", 0), ("query", 0)], cue
        assert segs[1].text == "What is 3 + 3?", cue


def test_compact_q_a_lines_without_blank_lines():
    text = "Answer with a number.\nQ: 2+2?\nA: 4\nQ: 3+3?\nA: 6\nQ: 5+5?\nA:"
    segs = segments_from_prompt(text)
    assert kinds(segs) == [("instruction", 0), ("example", 0), ("example", 1), ("query", 0)]
    assert [s.answer for s in segs[1:3]] == ["4", "6"]
    assert segs[3].text == "5+5?"
    assert_anchors_exact(segs, text)


def test_inline_reasoning_on_the_answer_line_is_split_into_steps():
    text = ("Q: Roger has 5 balls and buys 2 cans of 3. How many balls?\n"
            "A: Roger started with 5 balls. 2 cans of 3 is 6 balls. 5 + 6 = 11. The answer is 11.\n\n"
            "Q: Sue has 4 apples and eats 1. How many are left?\nA:")
    segs = segments_from_prompt(text)
    demo = segs[0]
    assert demo.kind is K.DEMONSTRATION
    assert demo.steps == ["Roger started with 5 balls.", "2 cans of 3 is 6 balls.", "5 + 6 = 11."]
    assert demo.answer == "The answer is 11."


def test_gsm8k_hash_answer_and_answer_marker_after_steps():
    text = ("Problem: 10 pens cost $5. What do 4 cost?\nOne pen costs 5 / 10 = 0.5.\n4 pens cost 4 * 0.5 = 2.\n#### 2\n\n"
            "Problem: x?\nstep one\nAnswer: 7")
    segs = segments_from_prompt(text)
    assert kinds(segs) == [("demonstration", 0), ("example", 0)]
    assert segs[0].answer == "2" and segs[0].steps == ["One pen costs 5 / 10 = 0.5.", "4 pens cost 4 * 0.5 = 2."]
    # lines before an "Answer:"/"A:" line belong to the question (the Q/A template)
    assert segs[1].question == "x?\nstep one" and segs[1].answer == "7" and segs[1].steps == []


def test_choice_lines_belong_to_the_question():
    text = ("Question: Where do you keep milk?\n(A) oven (B) fridge (C) shelf\n"
            "Milk must stay cold.\nA fridge keeps it cold.\nThe answer is B.")
    blk = parse_block(text)
    assert blk.parts.question.of(text) == "Where do you keep milk?\n(A) oven (B) fridge (C) shelf"
    assert [r.of(text) for r in blk.parts.steps] == ["Milk must stay cold.", "A fridge keeps it cold."]


def test_reasoning_split_by_a_blank_line_stays_one_demonstration():
    text = "Question: q1?\nfirst step\n\nsecond step\nThe answer is 3.\n\nQuestion: q2?\nA:"
    segs = segments_from_prompt(text)
    assert kinds(segs) == [("demonstration", 0), ("query", 0)]
    assert segs[0].steps == ["first step", "second step"]
    assert_anchors_exact(segs, text)


def test_text_between_and_after_blocks():
    text = "Intro.\n\nQ: a?\nA: 1\n\nA passage about rivers.\n\nQ: b?\nA: 2\n\nNow answer: {input}"
    segs = segments_from_prompt(text)
    assert kinds(segs) == [("instruction", 0), ("example", 0), ("context", 0), ("example", 1), ("query", 0)]
    assert segs[-1].text == "Now answer: {input}"
    # in a prompt-library file the trailing text is instruction
    b = parse_completion(text, plain_kind=K.INSTRUCTION)
    assert [s.kind for s in b.segments][-1] is K.INSTRUCTION


def test_plain_text_and_empty_prompts():
    assert kinds(segments_from_prompt("  Summarise the document below.  \n")) == [("query", 0)]
    assert segments_from_prompt("  Summarise the document below.  \n")[0].text == "Summarise the document below."
    assert segments_from_prompt("") == []
    assert segments_from_prompt(" \n\n \t") == []


def test_list_of_prompts_gets_one_prompt_group_each_and_global_indices():
    segs = segments_from_prompt(["Q: a?\nA: 1\n\nQ: b?\nA:", "Q: c?\nA: 3\n\nQ: d?\nA:"])
    assert [(s.prompt, s.kind.value, s.index) for s in segs] == [
        (0, "example", 0), (0, "query", 0), (1, "example", 1), (1, "query", 1)]


def test_split_blocks_offsets_with_crlf_and_whitespace_lines():
    text = "  first block\r\nline two \r\n \t\r\n\r\nsecond\n   \n\nthird  "
    blocks = split_blocks(text)
    assert [b.text for b in blocks] == ["first block\r\nline two", "second", "third"]
    for b in blocks:
        assert text[b.start : b.end] == b.text


def test_marker_inside_a_sentence_is_not_a_question_block():
    text = "Please read the question: is it safe?\nThen decide."
    assert kinds(segments_from_prompt(text)) == [("query", 0)]


# -- properties ---------------------------------------------------------------

_words = st.text(alphabet="abcdefghij XYZ0123456789.,?+=", min_size=1, max_size=30).map(str.strip).filter(bool)
_nl = st.sampled_from(["\n", "\r\n"])


@st.composite
def few_shot_prompts(draw):
    nl = draw(_nl)
    blocks = []
    if draw(st.booleans()):
        blocks.append(draw(_words))
    for _ in range(draw(st.integers(1, 5))):
        marker = draw(st.sampled_from(["Question: ", "Q: ", "@@ Question: "]))
        steps = draw(st.lists(_words, max_size=3))
        lines = [marker + draw(_words) + "?"]
        if draw(st.booleans()):
            lines.append("Let's think step by step.")
        lines += ["so " + s for s in steps]
        lines.append("The answer is " + draw(_words) + ".")
        blocks.append(nl.join(lines))
    if draw(st.booleans()):
        blocks.append("Q: " + draw(_words) + nl + "A:")
    sep = nl + nl + draw(st.sampled_from(["", nl]))
    return sep.join(blocks) + draw(st.sampled_from(["", nl]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(few_shot_prompts())
def test_property_anchors_map_back_and_parts_lie_inside(text):
    segs = segments_from_prompt(text)
    assert_anchors_exact(segs, text)
    for s in segs:
        if s.parts is not None:
            ranges = [s.parts.question, *s.parts.steps] + ([s.parts.answer] if s.parts.answer else [])
            for a, b in zip(ranges, ranges[1:]):
                assert a.end <= b.start
            assert all(0 <= r.start <= r.end <= len(s.text) for r in ranges)
    demos = [s for s in segs if s.kind in (K.DEMONSTRATION, K.EXAMPLE)]
    assert all(d.answer and d.answer.startswith("The answer is") for d in demos)


def test_builder_reuse_keeps_indices_counting():
    b = SegmentBuilder()
    parse_completion("Q: a?\nA: 1\n\nQ: b?\nA:", b, prompt=0)
    parse_completion("Q: c?\nA: 2\n\nQ: d?\nA:", b, prompt=1, base=100)
    assert [s.index for s in b.segments if s.kind is K.EXAMPLE] == [0, 1]
    assert b.segments[2].anchors[0].source_start == 100


@pytest.mark.parametrize("prefix", ["", "Context first.\n\n"])
def test_unanswered_last_block_with_partial_reasoning_is_the_query(prefix):
    text = prefix + "Q: a?\nA: 1\n\nQ: How far is it?\nThe map says 3 km."
    segs = segments_from_prompt(text)
    assert segs[-1].kind is K.QUERY
    assert segs[-1].text == "How far is it?\nThe map says 3 km."
