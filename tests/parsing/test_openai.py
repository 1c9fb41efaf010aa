"""OpenAI Chat Completions messages → segments."""

from __future__ import annotations

import pytest

from promptguard.parsing import ParseError, segments_from_messages, segments_from_request
from promptguard.sanitize import message_text
from promptguard.segments import SegmentKind as K


def kinds(segs):
    return [(s.kind.value, s.index) for s in segs]


def assert_anchors_exact(segs, messages):
    for s in segs:
        for a in s.anchors:
            src = message_text(messages[a.message_index])
            assert src[a.source_start : a.source_start + a.length] == s.text[a.offset : a.offset + a.length]


FEW_SHOT_CHAT = [
    {"role": "system", "content": "You classify reviews as positive or negative."},
    {"role": "user", "content": "Great tent, easy to pitch."},
    {"role": "assistant", "content": "positive"},
    {"role": "user", "content": "  The stove leaked fuel on day one.  "},
    {"role": "assistant", "content": "A fuel leak is a defect.\nDefects make customers unhappy.\nThe answer is negative."},
    {"role": "user", "content": "Warm, light and cheap."},
]


def test_pairs_before_the_last_user_turn_are_examples_or_demonstrations():
    segs = segments_from_messages(FEW_SHOT_CHAT)
    assert kinds(segs) == [("instruction", 0), ("example", 0), ("demonstration", 0), ("query", 0)]
    ex, demo, q = segs[1], segs[2], segs[3]
    assert ex.question == "Great tent, easy to pitch." and ex.answer == "positive" and ex.steps == []
    assert demo.question == "The stove leaked fuel on day one."
    assert demo.steps == ["A fuel leak is a defect.", "Defects make customers unhappy."]
    assert demo.answer == "The answer is negative."
    assert [a.message_index for a in demo.anchors] == [3, 4]
    assert q.text == "Warm, light and cheap." and q.message_index == 5
    assert_anchors_exact(segs, FEW_SHOT_CHAT)
    # the leading blanks of message 3 are skipped by the anchor
    assert demo.anchors[0].source_start == 2


def test_single_line_cot_answer_is_a_demonstration():
    msgs = [{"role": "user", "content": "What is 3 * 4 + 1?"},
            {"role": "assistant", "content": "3 * 4 is 12. 12 + 1 is 13. The answer is 13."},
            {"role": "user", "content": "What is 2 * 5 + 1?"}]
    demo = segments_from_messages(msgs)[0]
    assert demo.kind is K.DEMONSTRATION
    assert demo.steps == ["3 * 4 is 12.", "12 + 1 is 13."] and demo.answer == "The answer is 13."


def test_roles_developer_tool_function_and_answers():
    msgs = [
        {"role": "developer", "content": "Use the search tool."},
        {"role": "user", "content": "Find the refund policy."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                  "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "search", "content": "Refunds within 30 days."},
        {"role": "function", "name": "lookup", "content": "Policy v2."},
        {"role": "assistant", "content": "Refunds are accepted within 30 days."},
    ]
    segs = segments_from_messages(msgs)
    # the final assistant message is a prefill: text the model reads as its own (issue 13)
    assert kinds(segs) == [("instruction", 0), ("query", 0), ("context", 0), ("context", 1), ("context", 2)]
    assert segs[0].role == "developer"
    assert segs[2].source == "tool:search" and segs[3].source == "tool:lookup"
    assert segs[4].message_index == 5 and segs[4].source == "prefill"
    # an assistant turn after the last user turn that is not the last message is an answer
    segs = segments_from_messages(msgs + [{"role": "tool", "tool_call_id": "c2", "content": "ok"}])
    assert [s.kind.value for s in segs if s.message_index == 5] == ["answer"]


def test_content_part_arrays_text_parts_joined_image_urls_read_by_field():
    msgs = [{"role": "system", "content": [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
                                         {"type": "text", "text": "What is in the picture?"}]}]
    segs = segments_from_messages(msgs)
    assert kinds(segs) == [("instruction", 0), ("query", 0), ("context", 0)]
    assert segs[0].text == "Rule one.\n\nRule two."
    assert segs[1].text == "What is in the picture?"
    assert_anchors_exact(segs[:2], msgs)
    url = segs[2]
    assert url.text == "https://x.example/a.png" and url.source == "image_url"
    assert url.anchors[0].field == ("content", 0, "image_url", "url") and url.message_index == 1


def test_a_whole_few_shot_prompt_in_the_last_user_message_is_split():
    prompt = ("Question: 2 + 2?\nTwo and two make four.\nThe answer is 4.\n\n"
              "Question: 3 + 3?\nThree and three make six.\nThe answer is 6.\n\n"
              "Question: 5 + 5?\nLet's think step by step.")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    segs = segments_from_messages(msgs)
    assert kinds(segs) == [("instruction", 0), ("demonstration", 0), ("demonstration", 1), ("query", 0)]
    assert segs[3].text == "5 + 5?" and segs[3].message_index == 1
    assert_anchors_exact(segs, msgs)


def test_a_system_prompt_with_examples_inside_is_split_and_a_plain_one_is_not():
    sys_prompt = "You answer capitals.\n\nQ: France?\nA: Paris\n\nQ: Japan?\nA: Tokyo"
    segs = segments_from_messages([{"role": "system", "content": sys_prompt}, {"role": "user", "content": "Peru?"}])
    assert kinds(segs) == [("instruction", 0), ("example", 0), ("example", 1), ("query", 0)]
    one_q = "Answer the user's question: be short."
    assert kinds(segments_from_messages([{"role": "system", "content": one_q}])) == [("instruction", 0)]


def test_user_turn_without_an_answer_and_empty_messages():
    msgs = [{"role": "user", "content": "first"}, {"role": "user", "content": "   "},
            {"role": "assistant", "content": ""}, {"role": "user", "content": "last"}]
    assert kinds(segments_from_messages(msgs)) == [("example", 0), ("query", 0)]


@pytest.mark.parametrize("bad, why", [
    ("not a list", "must be a list"),
    ([], "is empty"),
    (["hi"], "messages[0] must be an object"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 5}], "content must be a string or a list"),
    ([{"role": "user", "content": [{"text": "no type"}]}], "must be an object with a 'type'"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}], ".text must be a string"),
])
def test_invalid_messages_raise_clear_errors(bad, why):
    with pytest.raises(ParseError, match=why.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        segments_from_messages(bad)


def test_segments_from_request_chat_completion_and_errors():
    assert kinds(segments_from_request({"messages": [{"role": "user", "content": "hi"}]})) == [("query", 0)]
    segs = segments_from_request({"prompt": ["Q: a?\nA: 1\n\nQ: b?\nA:", "plain"]})
    assert [(s.prompt, s.kind.value) for s in segs] == [(0, "example"), (0, "query"), (1, "query")]
    for body, why in [([], "JSON object"), ({}, "neither"), ({"prompt": 3}, "string or a list"),
                      ({"prompt": ["ok", 3]}, r"prompt\[1\]")]:
        with pytest.raises(ParseError, match=why):
            segments_from_request(body)
