"""The Responses ↔ chat completions bridge: requests translated field by field, answers
and streams translated back into shapes the official `openai` types validate."""

from __future__ import annotations

import json

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from promptguard.proxy.bridge import BridgeError, StreamBridge, chat_request, response_from_chat

EVENT = TypeAdapter(ResponseStreamEvent)

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather of a city.", "strict": True,
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_a_request_with_history_and_tools_becomes_a_chat_request():
    body = {
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 20, "temperature": 0.2, "top_p": 0.9,
        "store": True, "metadata": {"a": "b"}, "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                                         {"type": "input_text", "text": "In Paris."}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me see."}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Lyon"}'},
            {"type": "reasoning", "id": "rs", "summary": []},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://i/x.png", "detail": "low"},
                                         {"type": "input_text", "text": "And this?"}]},
        ], "tools": TOOLS, "stream": True}
    chat = chat_request(body)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Weather?\n\nIn Paris."},
        {"role": "assistant", "content": "Let me see.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://i/x.png", "detail": "low"}},
                                     {"type": "text", "text": "And this?"}]},
    ]
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city.", "parameters": TOOLS[0]["parameters"],
        "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "w", "schema": {"type": "object"}, "strict": True}}
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"]) == (20, 0.2, 0.9)
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "store" not in chat and "metadata" not in chat and "input" not in chat


def test_a_call_without_a_preceding_assistant_turn_has_no_null_content():
    chat = chat_request({"model": "m", "input": [
        {"role": "user", "content": "q"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "x"}]})
    assert chat["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


@pytest.mark.parametrize("body, param", [
    ({"previous_response_id": "resp_1", "input": "x"}, "previous_response_id"),
    ({"conversation": "conv_1", "input": "x"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"background": True, "input": "x"}, "background"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"input": "x", "tools": TOOLS, "tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice"),
])
def test_what_chat_cannot_carry_is_refused_not_dropped(body, param):
    with pytest.raises(BridgeError) as ei:
        chat_request({"model": "m", **body})
    assert ei.value.param == param and "cannot be bridged" in str(ei.value)


def test_a_chat_answer_becomes_a_response_the_openai_types_accept():
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "smol",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.", "reasoning_content": "need the tool",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
    request = {"model": "smol", "input": "x", "tools": TOOLS, "instructions": "Be brief."}
    data = response_from_chat(chat, request, "resp_pgabc")
    r = Response.model_validate(data)
    assert r.id == "resp_pgabc" and r.status == "completed" and r.output_text == "Checking."
    assert [o.type for o in r.output] == ["reasoning", "message", "function_call"]
    call = r.output[2]
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_1", "get_weather", {"city": "Paris"})
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 7, 18)
    assert r.instructions == "Be brief." and r.store is False and r.tools[0].name == "get_weather"
    cut = response_from_chat({"choices": [{"index": 0, "finish_reason": "length",
                                            "message": {"role": "assistant", "content": "Once upon"}}]}, request)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}


def chunk(delta=None, finish=None, usage=None):
    ch = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "smol",
          "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        ch["usage"] = usage
    return ch


def test_chat_chunks_become_response_events_in_order():
    b = StreamBridge({"model": "smol", "input": "x"}, "resp_pgs")
    events = b.start()
    for c in [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                     "function": {"name": "get_weather", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
              chunk({}, finish="tool_calls"), chunk(usage={"prompt_tokens": 3, "completion_tokens": 4})]:
        events += b.feed(c)
    events += b.finish()
    parsed = [EVENT.validate_python(e) for e in events]  # every event is one the openai client knows
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    assert [e.type for e in parsed] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = parsed[-1].response
    assert final.output_text == "Hello" and final.output[1].arguments == '{"city": "Paris"}'
    assert final.output[1].call_id == "call_9" and final.usage.total_tokens == 7
    assert parsed[0].response.output == [] and parsed[0].response.status == "in_progress"


def test_an_empty_or_cut_stream_still_completes_with_one_message():
    b = StreamBridge({"model": "smol", "input": "x"})
    b.start()
    events = b.feed(chunk({"content": "Once"}, finish="length")) + b.finish()
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    empty = StreamBridge({"model": "smol", "input": "x"})
    empty.start()
    last = empty.finish()[-1]
    assert last["type"] == "response.completed" and last["response"]["output"][0]["type"] == "message"
