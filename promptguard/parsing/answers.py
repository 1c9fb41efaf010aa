"""Model answers → `answer` segments, and back.

Answers arrive as an OpenAI chat or completion response (`choices[i].message.content`
or `choices[i].text`), as streamed chunks (`choices[i].delta.content` / `.text`), or
as LangChain generations. Each becomes one `answer` segment per choice: a choice (or
a LangChain prompt's generations) is its own prompt group, so detectors see each
answer alone. Sanitizing a response rewrites the texts of the choices in place.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..content import content_text
from ..sanitize import apply_to_text
from ..segments import Segment, SegmentBuilder, SegmentKind

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["choice_texts", "answer_segments", "answers_text", "ResponseAnswers", "StreamedAnswers",
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


def answer_segments(groups: Mapping[int, str | Sequence[str]], source: str = "upstream") -> list[Segment]:
    """One `answer` segment per non-empty text. `groups` maps a prompt group (a choice,
    or a LangChain prompt) to its answer text or texts (`message_index` = position)."""
    b = SegmentBuilder()
    for group, texts in sorted(groups.items()):
        for j, text in enumerate([texts] if isinstance(texts, str) else texts):
            if text:
                b.add(SegmentKind.ANSWER, text, message_index=j, prompt=group, role="assistant", source=source)
    return b.segments


def answers_text(texts: Mapping[int, str]) -> str:
    """The answer as records keep it: the choices' texts in order, blank-line joined."""
    return "\n\n".join(texts[i] for i in sorted(texts))


class ResponseAnswers:
    """The answers of a non-streamed chat or completion response: reader and writer."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.name = f"{endpoint} response"

    def read(self, data: Any) -> list[Segment]:
        return answer_segments(choice_texts(data, self.endpoint))

    def write(self, data: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        data = copy.deepcopy(data)
        for idx, ch in _choices(data):
            edits = [e for e in result.edits if e.segment.prompt == idx]
            if not edits:
                continue
            msg = ch.get("message")
            if self.endpoint == "chat" and isinstance(msg, dict) and isinstance(msg.get("content"), str):
                msg["content"] = apply_to_text(msg["content"], edits)
            elif self.endpoint == "completions" and isinstance(ch.get("text"), str):
                ch["text"] = apply_to_text(ch["text"], edits)
        return data

    def text(self, data: Any) -> str:
        return answers_text(choice_texts(data, self.endpoint))


class StreamedAnswers:
    """The answer text streamed so far (choice index → text). Read only: text that
    has already reached the client cannot be rewritten."""

    name = "streamed answer"
    write = None

    def read(self, texts: Mapping[int, str]) -> list[Segment]:
        return answer_segments(texts)

    def text(self, texts: Mapping[int, str]) -> str:
        return answers_text(texts)


CHAT_RESPONSE = ResponseAnswers("chat")
COMPLETION_RESPONSE = ResponseAnswers("completions")
STREAMED_ANSWERS = StreamedAnswers()
