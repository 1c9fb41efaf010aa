"""Model answers → `answer` segments, and back.

Answers arrive as an OpenAI chat or completion response (`choices[i].message.content`
or `choices[i].text`), as streamed chunks (`choices[i].delta.content` / `.text`), or
as LangChain generations. Each becomes one `answer` segment per choice: a choice (or
a LangChain prompt's generations) is its own prompt group, so detectors see each
answer alone. A chat answer's tool calls (`tool_calls[k].function.arguments`, the
legacy `function_call`) and `refusal` are answer text too, one segment each, anchored
by field (an agent acts on the arguments: a URL there is fetched). Sanitizing a
response rewrites the texts of the choices in place.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..content import content_text
from ..sanitize import apply_to_fields, apply_to_text
from ..segments import Segment, SegmentBuilder, SegmentKind
from .openai import add_arguments

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["choice_texts", "stream_texts", "answer_segments", "answers_text", "ResponseAnswers", "StreamedAnswers",
           "CHAT_RESPONSE", "COMPLETION_RESPONSE", "STREAMED_ANSWERS"]

# which request endpoint an answer comes from: "chat" or "completions"
ENDPOINTS = ("chat", "completions")


def _choices(obj: Any) -> list[tuple[int, dict[str, Any]]]:
    """(choice index, choice) of a response or chunk; a choice without an `index`
    is numbered by its position."""
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        return []
    return [(ch["index"] if isinstance(ch.get("index"), int) else pos, ch)
            for pos, ch in enumerate(obj["choices"]) if isinstance(ch, dict)]


def choice_texts(obj: Any, endpoint: str, *, delta: bool = False) -> dict[int, str]:
    """choice index → answer text of a response (or, with `delta`, the new text a
    streamed chunk carries)."""
    out: dict[int, str] = {}
    for idx, ch in _choices(obj):
        if endpoint == "chat":
            msg = ch.get("delta" if delta else "message")
            text = content_text(msg.get("content")) if isinstance(msg, dict) else ""
        else:
            text = ch.get("text") if isinstance(ch.get("text"), str) else ""
        if delta and not text:
            continue
        out[idx] = out.get(idx, "") + text if delta else text
    return out


def answer_segments(groups: Mapping[int, str | Sequence[str]], source: str = "upstream",
                    builder: SegmentBuilder | None = None) -> list[Segment]:
    """One `answer` segment per non-empty text. `groups` maps a prompt group (a choice,
    or a LangChain prompt) to its answer text or texts (`message_index` = position)."""
    b = builder or SegmentBuilder()
    for group, texts in sorted(groups.items()):
        for j, text in enumerate([texts] if isinstance(texts, str) else texts):
            if text:
                b.add(SegmentKind.ANSWER, text, message_index=j, prompt=group, role="assistant", source=source)
    return b.segments


def _message_fields(b: SegmentBuilder, idx: int, msg: dict[str, Any]) -> None:
    """A chat answer's tool calls, legacy function call and refusal, as answer segments
    of its choice, anchored by field in the message."""
    calls = msg.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            add_arguments(b, SegmentKind.ANSWER, fn, ("tool_calls", k, "function", "arguments"), 0, idx, "assistant")
    if isinstance(msg.get("function_call"), dict):
        add_arguments(b, SegmentKind.ANSWER, msg["function_call"], ("function_call", "arguments"), 0, idx, "assistant")
    if isinstance(msg.get("refusal"), str) and msg["refusal"].strip():
        b.add(SegmentKind.ANSWER, msg["refusal"], message_index=0, field=("refusal",), prompt=idx, role="assistant",
              source="refusal")


# a streamed tool call's arguments accumulate under (choice index, "tool_calls", call index)
ToolKey = tuple[int, str, int]


def stream_texts(obj: Any, endpoint: str) -> dict[Any, str]:
    """The new answer text a streamed chunk carries: choice index → content, and
    (choice index, "tool_calls", call index) → a tool call's arguments so far."""
    out: dict[Any, str] = choice_texts(obj, endpoint, delta=True)
    if endpoint != "chat":
        return out
    for idx, ch in _choices(obj):
        delta = ch.get("delta")
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        for pos, call in enumerate(calls if isinstance(calls, list) else []):
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(args, str) and args:
                k = call["index"] if isinstance(call.get("index"), int) else pos
                out[(idx, "tool_calls", k)] = out.get((idx, "tool_calls", k), "") + args
        fc = delta.get("function_call") if isinstance(delta, dict) else None
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str) and fc["arguments"]:
            out[(idx, "function_call", 0)] = fc["arguments"]
    return out


def answers_text(texts: Mapping[Any, str]) -> str:
    """The answer as records keep it: the choices' texts in order, blank-line joined,
    then the streamed tool calls' arguments (see `stream_texts`)."""
    content = [texts[i] for i in sorted(k for k in texts if isinstance(k, int))]
    calls = [texts[k] for k in sorted(k for k in texts if not isinstance(k, int))]
    return "\n\n".join(content + calls)


class ResponseAnswers:
    """The answers of a non-streamed chat or completion response: reader and writer."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.name = f"{endpoint} response"

    def read(self, data: Any) -> list[Segment]:
        b = SegmentBuilder()
        answer_segments(choice_texts(data, self.endpoint), builder=b)
        if self.endpoint == "chat":
            for idx, ch in _choices(data):
                if isinstance(ch.get("message"), dict):
                    _message_fields(b, idx, ch["message"])
        return b.segments

    def write(self, data: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        data = copy.deepcopy(data)
        for idx, ch in _choices(data):
            edits = [e for e in result.edits if e.segment.prompt == idx]
            if not edits:
                continue
            msg = ch.get("message")
            if self.endpoint == "chat" and isinstance(msg, dict):
                if isinstance(msg.get("content"), str):
                    msg["content"] = apply_to_text(msg["content"], edits)
                ch["message"] = apply_to_fields(msg, edits, any_message=True)
            elif self.endpoint == "completions" and isinstance(ch.get("text"), str):
                ch["text"] = apply_to_text(ch["text"], edits)
        return data

    def text(self, data: Any) -> str:
        texts: dict[Any, str] = dict(choice_texts(data, self.endpoint))
        if self.endpoint == "chat":
            for idx, ch in _choices(data):
                msg = ch.get("message") if isinstance(ch.get("message"), dict) else {}
                calls = msg.get("tool_calls") if isinstance(msg.get("tool_calls"), list) else []
                for k, call in enumerate(calls):
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                        texts[(idx, "tool_calls", k)] = fn["arguments"]
        return answers_text(texts)


class StreamedAnswers:
    """The answer text streamed so far (see `stream_texts`: choice index → text, and
    tool calls' arguments). Read only: text that has already reached the client cannot
    be rewritten."""

    name = "streamed answer"
    write = None

    def read(self, texts: Mapping[Any, str]) -> list[Segment]:
        b = SegmentBuilder()
        answer_segments({k: v for k, v in texts.items() if isinstance(k, int)}, builder=b)
        for key in sorted(k for k in texts if not isinstance(k, int)):
            idx, what, k = key
            path = ("tool_calls", k, "function", "arguments") if what == "tool_calls" else ("function_call", "arguments")
            add_arguments(b, SegmentKind.ANSWER, {"arguments": texts[key]}, path, 0, idx, "assistant")
        return b.segments

    def text(self, texts: Mapping[Any, str]) -> str:
        return answers_text(texts)


CHAT_RESPONSE = ResponseAnswers("chat")
COMPLETION_RESPONSE = ResponseAnswers("completions")
STREAMED_ANSWERS = StreamedAnswers()
