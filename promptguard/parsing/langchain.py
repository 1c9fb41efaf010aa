"""LangChain prompt files and message lists → segments.

Prompt files are
- the JSON/YAML that `langchain_core.prompts.load_prompt` reads: `_type: prompt`
  (a template), `_type: few_shot` (prefix, examples rendered with `example_prompt`,
  suffix) and `_type: chat`;
- the serialized form that `langchain_core.load.dumpd` writes (`"lc": 1`,
  `"type": "constructor"`), as LangChain Hub stores a `ChatPromptTemplate`.

Offsets of a few-shot prompt are into the prompt as LangChain renders it
(prefix, examples and suffix joined by `example_separator`). Message lists are
`BaseMessage` objects or their dict forms (`messages_to_dict`'s
`{"type": "human", "data": {...}}`, or `{"type": ..., "content": ...}`);
`langchain_core` itself is never imported here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..segments import Anchor, SegmentBuilder, SegmentKind
from .completion import parse_block, parse_completion
from .errors import ParseError
from ..yamlutil import safe_load
from .openai import pair_parts, parse_messages

__all__ = [
    "parse_langchain_prompt_obj",
    "parse_langchain_serialized",
    "is_langchain_serialized",
    "is_langchain_message_dicts",
    "langchain_messages_to_openai",
    "lc_content",
    "ROLES",
    "parse_langchain_messages",
]

_VAR = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
# The one table of LangChain message types → OpenAI roles (a `chat` message names its own).
ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant",
         "system": "system", "tool": "tool", "function": "function", "developer": "developer"}
# serialized message-template classes → OpenAI role
_LC_TEMPLATE_ROLE = {
    "SystemMessagePromptTemplate": "system",
    "HumanMessagePromptTemplate": "user",
    "AIMessagePromptTemplate": "assistant",
}
_LC_MESSAGE_ROLE = {
    "SystemMessage": "system", "HumanMessage": "user", "AIMessage": "assistant",
    "ToolMessage": "tool", "FunctionMessage": "function", "ChatMessage": None,
}


def _render(template: str, values: dict[str, Any]) -> str:
    return _VAR.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def _read_ref(path: Any, base_dir: Path | None, suffixes: tuple[str, ...], what: str) -> str:
    """A file a prompt file points at (`template_path`, `examples`, ...): relative to
    the prompt file, never absolute or outside it (as LangChain's own loader)."""
    if not isinstance(path, str):
        raise ParseError(f"{what} must be a path string")
    p = Path(path)
    if base_dir is None:
        raise ParseError(f"{what} {path!r} points at a file; not followed here")
    if p.is_absolute() or ".." in p.parts:
        raise ParseError(f"{what} {path!r}: absolute paths and '..' are not followed")
    if p.suffix.lower() not in suffixes:
        raise ParseError(f"{what} {path!r}: only {', '.join(suffixes)} files are supported")
    try:
        return (base_dir / p).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"{what} {path!r}: cannot read: {e}") from None


def _with_refs(obj: dict[str, Any], names: Sequence[str], base_dir: Path | None) -> dict[str, Any]:
    obj = dict(obj)
    for name in names:
        key = f"{name}_path"
        if key in obj:
            if name in obj:
                raise ParseError(f"both {name!r} and {key!r} are given")
            obj[name] = _read_ref(obj.pop(key), base_dir, (".txt",), key)
    return obj


def _template(obj: Any, what: str, base_dir: Path | None = None) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        obj = _with_refs(obj, ["template"], base_dir)
        if isinstance(obj.get("template"), str):
            return obj["template"]
    raise ParseError(f"{what} must be a template string or a prompt object with 'template'")


def parse_langchain_prompt_obj(
    obj: dict[str, Any], b: SegmentBuilder, prompt: int = 0, base_dir: Path | None = None
) -> SegmentBuilder:
    """A `load_prompt`-style config (`_type` prompt, few_shot or chat)."""
    kind = obj.get("_type", "prompt")
    if kind == "prompt":
        template = _template(obj, "LangChain prompt", base_dir)
        if obj.get("template_format") == "jinja2":
            raise ParseError("jinja2 templates are not supported (LangChain refuses them too)")
        parse_completion(template, b, prompt=prompt, plain_kind=SegmentKind.INSTRUCTION,
                         source="langchain:prompt")
        return b
    if kind == "few_shot":
        return _few_shot(_with_refs(obj, ["prefix", "suffix"], base_dir), b, prompt, base_dir)
    if kind == "chat":
        msgs = obj.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ParseError("LangChain chat prompt needs a non-empty 'messages' list")
        converted = [_chat_message(m, i, base_dir) for i, m in enumerate(msgs)]
        return parse_messages(converted, b, prompt=prompt)
    raise ParseError(f"unsupported LangChain prompt _type {kind!r} (prompt, few_shot, chat)")


def _role_or_chat(name: Any) -> str | None:
    """A role named in a template file (`chat` there means a human turn)."""
    n = str(name).lower()
    return "user" if n == "chat" else ROLES.get(n)


def _chat_message(m: Any, i: int, base_dir: Path | None) -> dict[str, str]:
    if isinstance(m, (list, tuple)) and len(m) == 2:
        role, content = _role_or_chat(m[0]), m[1]
    elif isinstance(m, dict):
        raw_role = m.get("role") or m.get("type")
        # load_prompt's own chat shape is {"prompt": {"template": ...}}: a human message
        role = _role_or_chat(raw_role) if raw_role else ("user" if "prompt" in m else None)
        content = m.get("content", m.get("template", m.get("prompt")))
        if isinstance(content, dict):
            content = _template(content, f"messages[{i}].prompt", base_dir)
    else:
        role, content = None, None
    if role is None or not isinstance(content, str):
        raise ParseError(f"LangChain chat prompt: messages[{i}] is not a (role, template) pair")
    return {"role": role, "content": content}


def _few_shot(obj: dict[str, Any], b: SegmentBuilder, prompt: int, base_dir: Path | None) -> SegmentBuilder:
    examples = obj.get("examples")
    if isinstance(examples, str):
        raw = _read_ref(examples, base_dir, (".json", ".yaml", ".yml"), "examples")
        try:
            if examples.lower().endswith(".json"):
                examples = json.loads(raw)
            else:
                examples = safe_load(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise ParseError(f"examples file {obj.get('examples')!r} is not valid: {e}") from None
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise ParseError("few_shot prompt needs 'examples' as a list of objects (or a file of them)")
    if "example_prompt_path" in obj:
        ex_obj = _read_ref(obj["example_prompt_path"], base_dir, (".json",), "example_prompt_path")
        try:
            ex_t = _template(json.loads(ex_obj), "example_prompt", base_dir)
        except ValueError as e:
            raise ParseError(f"example_prompt_path is not valid JSON: {e}") from None
    else:
        ex_t = _template(obj.get("example_prompt"), "example_prompt", base_dir)
    sep = obj.get("example_separator", "\n\n")
    prefix, suffix = obj.get("prefix") or "", obj.get("suffix") or ""
    if not isinstance(sep, str) or not isinstance(prefix, str) or not isinstance(suffix, str):
        raise ParseError("few_shot prompt: prefix, suffix and example_separator must be strings")
    variables = _VAR.findall(ex_t)
    out_var = variables[-1] if variables else None

    # FewShotPromptTemplate.format joins the non-empty pieces with the separator
    pos = 0
    if prefix:
        if prefix.strip():
            lead = len(prefix) - len(prefix.lstrip())
            b.add(SegmentKind.INSTRUCTION, prefix.strip(), source_start=lead, prompt=prompt,
                  source="langchain:prefix")
        pos += len(prefix) + len(sep)
    for ex in examples:
        text = _render(ex_t, ex)
        if not text:
            continue
        _add_example(b, text, pos, str(ex.get(out_var, "")) if out_var else "", prompt)
        pos += len(text) + len(sep)
    if suffix.strip():
        lead = len(suffix) - len(suffix.lstrip())
        b.add(SegmentKind.QUERY, suffix.strip(), source_start=pos + lead, prompt=prompt,
              source="langchain:suffix")
    return b


def _add_example(b: SegmentBuilder, text: str, pos: int, out_val: str, prompt: int) -> None:
    """One rendered example: split like a completion block when it has a question
    marker, else at the output variable's value."""
    anchors = (Anchor(0, len(text), None, pos),)
    blk = parse_block(text)
    if blk.is_question and blk.parts is not None and (blk.parts.answer or blk.has_reasoning):
        kind = SegmentKind.DEMONSTRATION if blk.has_reasoning else SegmentKind.EXAMPLE
        b.add(kind, text, anchors=anchors, parts=blk.parts, prompt=prompt, source="langchain:example")
        return
    k = text.rfind(out_val) if out_val.strip() else -1
    parts, kind = None, SegmentKind.EXAMPLE
    if k > 0:
        parts, kind = pair_parts(text, len(text[:k].rstrip()), k, k + len(out_val))
    b.add(kind, text, anchors=anchors, parts=parts, prompt=prompt, source="langchain:example")


# -- the serialized (dumpd) form -------------------------------------------------


def is_langchain_serialized(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("lc") == 1 and isinstance(obj.get("id"), list)


def _lc_class(obj: dict[str, Any]) -> str:
    return str(obj["id"][-1]) if obj.get("id") else ""


def _lc_template(obj: Any, what: str) -> str:
    if is_langchain_serialized(obj) and obj.get("type") == "constructor":
        kw = obj.get("kwargs") or {}
        if isinstance(kw.get("template"), str):
            return kw["template"]
    raise ParseError(f"{what}: expected a serialized PromptTemplate with a template")


def parse_langchain_serialized(obj: dict[str, Any], b: SegmentBuilder, prompt: int = 0) -> SegmentBuilder:
    """A `dumpd`-serialized PromptTemplate or ChatPromptTemplate."""
    if obj.get("type") == "not_implemented":
        raise ParseError(f"LangChain could not serialize this {_lc_class(obj)} (type not_implemented)")
    if obj.get("type") != "constructor":
        raise ParseError(f"unsupported LangChain serialized type {obj.get('type')!r}")
    cls = _lc_class(obj)
    kw = obj.get("kwargs") or {}
    if cls == "PromptTemplate":
        parse_completion(_lc_template(obj, cls), b, prompt=prompt, plain_kind=SegmentKind.INSTRUCTION,
                         source="langchain:prompt")
        return b
    if cls == "ChatPromptTemplate":
        msgs = kw.get("messages")
        if not isinstance(msgs, list):
            raise ParseError("serialized ChatPromptTemplate without a 'messages' list")
        converted = []
        for i, m in enumerate(msgs):
            if not is_langchain_serialized(m):
                raise ParseError(f"ChatPromptTemplate messages[{i}] is not a serialized object")
            mcls, mkw = _lc_class(m), m.get("kwargs") or {}
            if mcls == "MessagesPlaceholder":
                continue  # filled at run time; nothing to check in the file
            if mcls in _LC_TEMPLATE_ROLE or mcls == "ChatMessagePromptTemplate":
                role = _LC_TEMPLATE_ROLE.get(mcls) or (ROLES.get(str(mkw.get("role", "")).lower()) or "user")
                converted.append({"role": role, "content": _lc_template(mkw.get("prompt"), f"messages[{i}]")})
            elif mcls in _LC_MESSAGE_ROLE:
                role = _LC_MESSAGE_ROLE[mcls] or (ROLES.get(str(mkw.get("role", "")).lower()) or "user")
                content = mkw.get("content")
                if not isinstance(content, (str, list)):
                    raise ParseError(f"ChatPromptTemplate messages[{i}] has no content")
                converted.append({"role": role, "content": content})
            else:
                raise ParseError(f"ChatPromptTemplate messages[{i}]: unsupported {mcls}")
        if not converted:
            return b
        return parse_messages(converted, b, prompt=prompt)
    raise ParseError(f"unsupported serialized LangChain object {cls} (PromptTemplate, ChatPromptTemplate)")


# -- message lists ---------------------------------------------------------------


def is_langchain_message_dicts(obj: Any) -> bool:
    """`messages_to_dict` output: [{"type": "human", "data": {"content": ...}}, ...]."""
    return isinstance(obj, list) and bool(obj) and all(
        isinstance(m, dict) and (str(m.get("type", "")).lower() in ROLES or str(m.get("type", "")).lower() == "chat") and isinstance(m.get("data"), dict)
        for m in obj
    )


def lc_content(content: Any) -> str | list[dict[str, Any]]:
    """LangChain message content (a string, or a list of strings and content blocks)
    → OpenAI content (a string, or a list of parts)."""
    if isinstance(content, str) or content is None:
        return content or ""
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for p in content:
            if isinstance(p, str):
                parts.append({"type": "text", "text": p})
            elif isinstance(p, dict) and "type" in p:
                parts.append(p)
            else:
                raise ParseError(f"unsupported content block {type(p).__name__}")
        return parts
    raise ParseError(f"unsupported message content {type(content).__name__}")


def _role(mtype: Any, chat_role: Any) -> str | None:
    """The OpenAI role of a LangChain message type (`chat` messages carry their own)."""
    if mtype == "chat":
        return ROLES.get(str(chat_role or "").lower())
    return ROLES.get(mtype) or ROLES.get(str(mtype or "").lower())


def langchain_messages_to_openai(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """BaseMessage objects, their dict forms (`messages_to_dict`), or OpenAI dicts →
    OpenAI message dicts, one per input message, in order. A message whose role is
    not known (a `ChatMessage` with an invented role) is a ParseError: nothing is
    guessed. (`langchain_core` is not imported: messages are read by their fields.)"""
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            if "role" in m:
                out.append(m)
                continue
            data = m.get("data") if isinstance(m.get("data"), dict) else m
            mtype, role_field, content, name, call_id = (m.get("type"), data.get("role"), data.get("content"),
                                                         data.get("name"), data.get("tool_call_id"))
        else:
            mtype, content = getattr(m, "type", None), getattr(m, "content", None)
            role_field = getattr(m, "role", None) if mtype == "chat" else None
            name, call_id = getattr(m, "name", None), getattr(m, "tool_call_id", None)
        role = _role(mtype, role_field)
        if role is None:
            raise ParseError(f"message {i}: unknown LangChain message type {mtype!r} ({type(m).__name__}, no known role)")
        msg: dict[str, Any] = {"role": role, "content": lc_content(content)}
        if role in ("tool", "function"):
            msg["name"] = name or call_id or role
        out.append(msg)
    return out


def parse_langchain_messages(messages: Sequence[Any], b: SegmentBuilder | None = None, prompt: int = 0) -> SegmentBuilder:
    return parse_messages(langchain_messages_to_openai(messages), b, prompt=prompt)
