"""OpenAI message content → text: the one definition every reader and writer uses.

A message's `content` is a string, or a list of parts. The parts that carry text are
`{"type": "text" | "input_text" | "output_text", "text": ...}` and
`{"type": "refusal", "refusal": ...}` (the model reads them all); their texts are
joined by a blank line. Segment offsets into a message with content parts are offsets
into this joined text, so parsing, sanitizing, answer reading and the backends must all
agree on it. Other parts (images, audio, files) are read elsewhere, by field
(`parsing/openai.py`).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["PART_SEP", "TEXT_PARTS", "content_text", "message_text", "is_text_part", "part_text_key"]

PART_SEP = "\n\n"
# part type → the key that holds its text
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}


def part_text_key(part: Any) -> str | None:
    """The key holding a text part's text (`text`, `refusal`); None for other parts."""
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    return TEXT_PARTS.get(kind) if isinstance(kind, str) else None


def is_text_part(part: Any) -> bool:
    return part_text_key(part) is not None


def content_text(content: Any) -> str:
    """The text of a content value: a string, or its text parts joined by a blank line."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for p in content:
            key = part_text_key(p)
            if key is not None and isinstance(p.get(key, ""), str):
                texts.append(p.get(key, ""))
        return PART_SEP.join(texts)
    return ""


def message_text(msg: Mapping[str, Any]) -> str:
    """The text of one OpenAI message (see `content_text`)."""
    return content_text(msg.get("content"))
