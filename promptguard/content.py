"""OpenAI message content → text: the one definition every reader and writer uses.

A message's `content` is a string, or a list of parts of which only `{"type": "text"}`
parts carry text; their texts are joined by a blank line. Segment offsets into a
message with content parts are offsets into this joined text, so parsing, sanitizing,
answer reading and the backends must all agree on it.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["PART_SEP", "content_text", "message_text", "is_text_part"]

PART_SEP = "\n\n"


def is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "text"


def content_text(content: Any) -> str:
    """The text of a content value: a string, or its text parts joined by a blank line."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return PART_SEP.join(p.get("text", "") for p in content if is_text_part(p) and isinstance(p.get("text", ""), str))
    return ""


def message_text(msg: Mapping[str, Any]) -> str:
    """The text of one OpenAI message (see `content_text`)."""
    return content_text(msg.get("content"))
