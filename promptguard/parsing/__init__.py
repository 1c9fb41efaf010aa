"""Parsers: every input shape → `list[Segment]`."""

from __future__ import annotations

from typing import Any, Sequence

from ..segments import Segment, SegmentBuilder, SegmentKind
from .completion import COMPLETION, PROMPT, parse_completion, prompt_segments
from .errors import ParseError
from .openai import CHAT, MESSAGES, parse_messages
from .responses import RESPONSE_OUTPUT, RESPONSES

__all__ = [
    "CHAT",
    "COMPLETION",
    "MESSAGES",
    "PROMPT",
    "RESPONSES",
    "RESPONSE_OUTPUT",
    "ParseError",
    "parse_completion",
    "parse_messages",
    "segments_from_messages",
    "segments_from_prompt",
    "segments_from_request",
]


def segments_from_messages(messages: Sequence[dict[str, Any]]) -> list[Segment]:
    return parse_messages(messages).segments


def segments_from_prompt(prompt: str | Sequence[str], plain_kind: SegmentKind = SegmentKind.QUERY) -> list[Segment]:
    """A completion prompt (or a list of them, one `prompt` group each)."""
    return prompt_segments(prompt, plain_kind)


def segments_from_request(body: dict[str, Any]) -> list[Segment]:
    """An OpenAI request body: chat (`messages`) or completion (`prompt`), with every
    other field the model reads (tools, response_format, suffix, ...)."""
    if not isinstance(body, dict):
        raise ParseError("request body must be a JSON object")
    if "messages" in body:
        return CHAT.read(body)
    if "prompt" in body:
        return COMPLETION.read(body)
    raise ParseError("request has neither 'messages' nor 'prompt'")
