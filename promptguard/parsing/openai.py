"""OpenAI Chat Completions `messages` → segments.

- system / developer → instruction (few-shot blocks inside are parsed out);
- tool / function → context;
- user/assistant pairs before the last user turn → examples, or demonstrations
  when the assistant turn reasons (several lines, or "step by step", ending in an
  answer);
- the last user turn → query, unless it carries a whole few-shot prompt, which is
  then split like a completion prompt (BadChain delivered in one message).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from ..content import message_text
from ..sanitize import apply_to_messages
from ..segments import Anchor, DemoParts, Segment, SegmentBuilder, SegmentKind, TextRange
from .completion import _lines, answer_parts, parse_block, parse_completion, split_blocks
from .errors import ParseError

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["parse_messages", "is_cot", "pair_parts", "messages_text", "MESSAGES", "CHAT"]

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_COT_CUE = re.compile(r"step[- ]by[- ]step|\bfirst\b|\btherefore\b|\bso\b|=", re.IGNORECASE)


def is_cot(answer_text: str) -> bool:
    """Does an assistant turn show its reasoning (several lines or a reasoning cue)?"""
    lines = [line for line in answer_text.splitlines() if line.strip()]
    if len(lines) >= 3:
        return True
    return len(lines) >= 2 and bool(_COT_CUE.search(answer_text))


def _validate(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise ParseError(f"'messages' must be a list, got {type(messages).__name__}")
    if not messages:
        raise ParseError("'messages' is empty")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ParseError(f"messages[{i}] must be an object, got {type(m).__name__}")
        role = m.get("role")
        if role not in _ROLES:
            raise ParseError(f"messages[{i}].role {role!r} is not one of {sorted(_ROLES)}")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ParseError(f"messages[{i}].content must be a string or a list of parts")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or "type" not in part:
                    raise ParseError(f"messages[{i}].content[{j}] must be an object with a 'type'")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise ParseError(f"messages[{i}].content[{j}].text must be a string")
    return messages


def _few_shot_inside(text: str) -> bool:
    """Does a single message carry a whole few-shot prompt: two or more question
    blocks (`Question:`/`Q:` …), at least one of them answered?"""
    questions = answered = 0
    for bl in split_blocks(text):
        p = parse_block(bl.text)
        if p.is_question:
            questions += 1
            answered += p.parts is not None and (p.parts.answer is not None or p.has_reasoning)
    return questions >= 2 and answered >= 1


def parse_messages(
    messages: Sequence[dict[str, Any]],
    builder: SegmentBuilder | None = None,
    *,
    prompt: int = 0,
) -> SegmentBuilder:
    b = builder or SegmentBuilder()
    msgs = _validate(list(messages) if isinstance(messages, tuple) else messages)
    user_idx = [i for i, m in enumerate(msgs) if m["role"] == "user"]
    last_user = user_idx[-1] if user_idx else None
    consumed: set[int] = set()

    for i, m in enumerate(msgs):
        if i in consumed:
            continue
        role = m["role"]
        text = message_text(m)
        if not text.strip():
            continue
        if role in ("system", "developer"):
            if _few_shot_inside(text):
                parse_completion(text, b, message_index=i, prompt=prompt,
                                 plain_kind=SegmentKind.INSTRUCTION, role=role, source=role)
            else:
                _add_whole(b, SegmentKind.INSTRUCTION, text, i, prompt, role)
        elif role in ("tool", "function"):
            name = m.get("name") or m.get("tool_call_id") or role
            _add_whole(b, SegmentKind.CONTEXT, text, i, prompt, role, source=f"tool:{name}")
        elif role == "user" and i == last_user:
            if _few_shot_inside(text):
                parse_completion(text, b, message_index=i, prompt=prompt,
                                 plain_kind=SegmentKind.QUERY, role=role, source="user")
            else:
                _add_whole(b, SegmentKind.QUERY, text, i, prompt, role)
        elif role == "user":
            nxt = i + 1
            if nxt < len(msgs) and msgs[nxt]["role"] == "assistant" and message_text(msgs[nxt]).strip():
                _add_pair(b, text, i, message_text(msgs[nxt]), nxt, prompt)
                consumed.add(nxt)
            else:
                _add_whole(b, SegmentKind.EXAMPLE, text, i, prompt, role)
        elif role == "assistant":
            kind = SegmentKind.ANSWER if last_user is None or i > last_user else SegmentKind.EXAMPLE
            _add_whole(b, kind, text, i, prompt, role)
    return b


def _add_whole(b: SegmentBuilder, kind: SegmentKind, text: str, mi: int, prompt: int, role: str,
               source: str | None = None) -> None:
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    b.add(kind, body, message_index=mi, source_start=lead, role=role, prompt=prompt,
          source=source or role)


def pair_parts(text: str, q_end: int, a_start: int, a_end: int) -> tuple[DemoParts, SegmentKind]:
    """Parts and kind of a question (text[:q_end]) followed by its answer
    (text[a_start:a_end]): the answer's last line, or its "The answer is …" tail,
    is the answer, the lines (or sentences) before it the reasoning steps. A
    demonstration when there are steps and the answer is explicit or reasons."""
    lines = _lines(text, a_start, a_end)
    steps, answer = answer_parts(text, lines)
    explicit = answer is not None
    if answer is None and lines:
        answer, steps = lines[-1], lines[:-1]
    parts = DemoParts(
        TextRange(0, q_end),
        tuple(TextRange(s, e) for s, e in steps),
        TextRange(*answer) if answer else None,
    )
    reasons = bool(steps) and (explicit or is_cot(text[a_start:a_end]))
    return parts, SegmentKind.DEMONSTRATION if reasons else SegmentKind.EXAMPLE


def _add_pair(b: SegmentBuilder, q: str, qi: int, a: str, ai: int, prompt: int) -> None:
    """A user/assistant pair as one example or demonstration segment.

    The text is the question, a blank line, the answer; two anchors map it back to
    the two messages. The assistant turn's last line (or its "The answer is …"
    tail) is the answer, the lines before it the reasoning steps.
    """
    q_lead, a_lead = len(q) - len(q.lstrip()), len(a) - len(a.lstrip())
    q, a = q.strip(), a.strip()
    sep = "\n\n"
    text = q + sep + a
    a_off = len(q) + len(sep)
    anchors = (Anchor(0, len(q), qi, q_lead), Anchor(a_off, len(a), ai, a_lead))
    parts, kind = pair_parts(text, len(q), a_off, len(text))
    b.add(kind, text, anchors=anchors, parts=parts, role="user", prompt=prompt, source="few-shot")


# -- shapes: a message list, and a chat request body ------------------------------------------


def messages_text(messages: Sequence[Any]) -> str:
    """The text of a conversation as records keep it: `[role] text` per message."""
    return "\n\n".join(f"[{m.get('role')}] {message_text(m)}" for m in messages if isinstance(m, dict))


class Messages:
    """A list of OpenAI messages: reader and writer (other fields of each message,
    tool calls and non-text parts are kept; see `sanitize.apply_to_messages`)."""

    name = "messages"

    def read(self, messages: Any) -> list[Segment]:
        return parse_messages(messages).segments

    def write(self, messages: Sequence[dict[str, Any]], result: "GuardResult") -> list[dict[str, Any]]:
        return apply_to_messages(messages, result.edits)

    def text(self, messages: Sequence[Any]) -> str:
        return messages_text(messages)


class ChatBody:
    """An OpenAI chat request body (`messages`): reader and writer; every other field
    of the body is kept as it is."""

    name = "chat"

    def read(self, body: Any) -> list[Segment]:
        if not isinstance(body, dict) or "messages" not in body:
            raise ParseError("'messages' is required")
        return MESSAGES.read(body["messages"])

    def write(self, body: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        return {**body, "messages": MESSAGES.write(body["messages"], result)}

    def text(self, body: dict[str, Any]) -> str:
        return messages_text(body.get("messages") or [])


MESSAGES = Messages()
CHAT = ChatBody()
