"""LangChain prompt files and message lists → segments.

Prompt files are the JSON/YAML that `langchain_core.prompts.load_prompt` reads:
`_type: prompt` (a template), `_type: few_shot` (prefix, examples rendered with
`example_prompt`, suffix) and `_type: chat` (a list of role templates). Message
lists are `BaseMessage` objects (or their dict forms); `langchain_core` is only
imported when such objects are passed.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..segments import Anchor, DemoParts, SegmentBuilder, SegmentKind, TextRange
from .completion import _lines, parse_completion
from .errors import ParseError
from .openai import is_cot, parse_messages

__all__ = ["parse_langchain_prompt_obj", "langchain_messages_to_openai", "parse_langchain_messages"]

_VAR = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_ROLE = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant",
         "system": "system", "tool": "tool", "function": "function", "developer": "developer"}


def _render(template: str, values: dict[str, Any]) -> str:
    return _VAR.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def _template(obj: Any, what: str) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("template"), str):
        return obj["template"]
    raise ParseError(f"{what} must be a template string or a prompt object with 'template'")


def parse_langchain_prompt_obj(obj: dict[str, Any], b: SegmentBuilder, prompt: int = 0) -> SegmentBuilder:
    kind = obj.get("_type")
    if kind == "prompt":
        if "template" not in obj:
            raise ParseError("LangChain prompt without 'template' (template_path is not followed)")
        parse_completion(_template(obj, "template"), b, prompt=prompt,
                         plain_kind=SegmentKind.INSTRUCTION, source="langchain:prompt")
        return b
    if kind == "few_shot":
        return _few_shot(obj, b, prompt)
    if kind == "chat":
        msgs = obj.get("messages")
        if not isinstance(msgs, list):
            raise ParseError("LangChain chat prompt needs a 'messages' list")
        converted = []
        for i, m in enumerate(msgs):
            if isinstance(m, dict):
                role = _ROLE.get(str(m.get("role") or m.get("type") or "").lower())
                content = m.get("content", m.get("template", m.get("prompt")))
                if isinstance(content, dict):
                    content = content.get("template")
            elif isinstance(m, (list, tuple)) and len(m) == 2:
                role, content = _ROLE.get(str(m[0]).lower()), m[1]
            else:
                role, content = None, None
            if role is None or not isinstance(content, str):
                raise ParseError(f"LangChain chat prompt: messages[{i}] is not a (role, template) pair")
            converted.append({"role": role, "content": content})
        return parse_messages(converted, b, prompt=prompt)
    raise ParseError(f"unsupported LangChain prompt _type {kind!r} (prompt, few_shot, chat)")


def _few_shot(obj: dict[str, Any], b: SegmentBuilder, prompt: int) -> SegmentBuilder:
    examples = obj.get("examples")
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise ParseError("few_shot prompt needs 'examples' as a list of objects (file paths are not followed)")
    ex_t = _template(obj.get("example_prompt"), "example_prompt")
    sep = obj.get("example_separator", "\n\n")
    prefix, suffix = obj.get("prefix", ""), obj.get("suffix", "")
    variables = _VAR.findall(ex_t)
    out_var = variables[-1] if variables else None

    pos = 0  # offsets into the rendered prompt
    if isinstance(prefix, str) and prefix.strip():
        b.add(SegmentKind.INSTRUCTION, prefix, source_start=0, prompt=prompt, source="langchain:prefix")
        pos += len(prefix) + len(sep)
    for ex in examples:
        text = _render(ex_t, ex)
        out_val = str(ex.get(out_var, "")) if out_var else ""
        k = text.rfind(out_val) if out_val else -1
        anchors = (Anchor(0, len(text), None, pos),)
        if k > 0:
            q_end = len(text[:k].rstrip())
            lines = [(s + k, e + k) for s, e in _lines(out_val)]
            answer = TextRange(*lines[-1]) if lines else None
            steps = tuple(TextRange(s, e) for s, e in lines[:-1])
            parts = DemoParts(TextRange(0, q_end), steps, answer)
            kind = SegmentKind.DEMONSTRATION if is_cot(out_val) else SegmentKind.EXAMPLE
        else:
            parts, kind = None, SegmentKind.EXAMPLE
        b.add(kind, text, anchors=anchors, parts=parts, prompt=prompt, source="langchain:example")
        pos += len(text) + len(sep)
    if isinstance(suffix, str) and suffix.strip():
        b.add(SegmentKind.QUERY, suffix, source_start=pos, prompt=prompt, source="langchain:suffix")
    return b


def langchain_messages_to_openai(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """BaseMessage objects (or OpenAI dicts) → OpenAI dicts."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            out.append(m)
            continue
        mtype = getattr(m, "type", None)
        role = _ROLE.get(str(mtype).lower()) if mtype else None
        if role is None:
            raise ParseError(f"message {i} of type {type(m).__name__} has no known role")
        msg: dict[str, Any] = {"role": role, "content": m.content}
        if role == "tool":
            msg["name"] = getattr(m, "name", None) or getattr(m, "tool_call_id", None)
        out.append(msg)
    return out


def parse_langchain_messages(messages: Sequence[Any], b: SegmentBuilder | None = None, prompt: int = 0) -> SegmentBuilder:
    return parse_messages(langchain_messages_to_openai(messages), b, prompt=prompt)
