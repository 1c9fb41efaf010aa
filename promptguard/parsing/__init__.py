"""Parsers: every input shape → `list[Segment]`."""

from __future__ import annotations

from typing import Any, Sequence

from ..segments import Segment, SegmentBuilder, SegmentKind
from .completion import parse_completion
from .errors import ParseError
from .openai import parse_messages

__all__ = [
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
    b = SegmentBuilder()
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ParseError(f"prompt[{i}] must be a string, got {type(p).__name__}")
        parse_completion(p, b, prompt=i, plain_kind=plain_kind)
    return b.segments


def segments_from_request(body: dict[str, Any]) -> list[Segment]:
    """An OpenAI request body: chat (`messages`) or completion (`prompt`)."""
    if not isinstance(body, dict):
        raise ParseError("request body must be a JSON object")
    if "messages" in body:
        return segments_from_messages(body["messages"])
    if "prompt" in body:
        p = body["prompt"]
        if not isinstance(p, (str, list)):
            raise ParseError("'prompt' must be a string or a list of strings")
        return segments_from_prompt(p)
    raise ParseError("request has neither 'messages' nor 'prompt'")
