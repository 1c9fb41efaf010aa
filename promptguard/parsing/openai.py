"""OpenAI Chat Completions `messages` (and the rest of a chat request) → segments.

Consecutive messages of one role are one *turn*, read as one text (an injection split
over two user messages is read whole), each piece anchored in its message:

- system / developer → instruction (few-shot blocks inside are parsed out);
- tool / function → context (one segment per result: each is its own document);
- user/assistant pairs before the last user turn → examples, or demonstrations
  when the assistant turn reasons (several lines, or "step by step", ending in an
  answer);
- the last user turn → query, unless it carries a whole few-shot prompt, which is
  then split like a completion prompt (BadChain delivered in one message);
- a final assistant message after it (a prefill) → context;
- every other string the model reads → context, anchored by field: a message's
  `name`, tool-call / function-call `arguments`, `refusal`, media URLs; the body's
  `tools` (descriptions, parameter schemas), `response_format` schema, vLLM
  `documents` (docs/proxy.md, "What is checked").
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import unquote

from ..content import message_text, part_text_key
from ..sanitize import apply_to_fields, apply_to_messages
from ..segments import Anchor, DemoParts, Segment, SegmentBuilder, SegmentKind, TextRange
from .completion import _lines, answer_parts, parse_block, parse_completion, split_blocks
from .errors import ParseError

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["parse_messages", "is_cot", "pair_parts", "messages_text", "MESSAGES", "CHAT", "body_fields",
           "schema_pieces", "add_pieces", "add_arguments", "url_text", "json_strings"]

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
                key = part_text_key(part)
                if key is not None and not isinstance(part.get(key), str):
                    raise ParseError(f"messages[{i}].content[{j}].{key} must be a string")
        if m.get("name") is not None and not isinstance(m["name"], str):
            raise ParseError(f"messages[{i}].name must be a string")
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise ParseError(f"messages[{i}].tool_calls must be a list")
        for k, call in enumerate(calls or []):
            fn = call.get("function") if isinstance(call, dict) else None
            if fn is not None and not isinstance(fn, dict):
                raise ParseError(f"messages[{i}].tool_calls[{k}].function must be an object")
            if isinstance(fn, dict) and fn.get("arguments") is not None and not isinstance(fn["arguments"], str):
                raise ParseError(f"messages[{i}].tool_calls[{k}].function.arguments must be a string")
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


# roles whose consecutive messages make one turn (system and developer are one voice);
# tool and function results stay one per message: each is its own document
_TURN_ROLE = {"system": "instruction", "developer": "instruction", "user": "user", "assistant": "assistant"}
_TURN_SEP = "\n\n"


@dataclass
class _Turn:
    """Consecutive messages of one role as the model reads them: one text (the
    messages' texts joined by a blank line) and where each piece came from."""

    role: str
    first: int  # index of the turn's first message
    last: int  # index of its last message
    text: str = ""
    # (offset in text, length, message index, start in that message's text)
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)

    def add(self, mi: int, text: str) -> None:
        if self.text:
            self.text += _TURN_SEP
        self.pieces.append((len(self.text), len(text), mi, 0))
        self.text += text
        self.last = mi

    def anchors(self, start: int, end: int, at: int = 0) -> list[Anchor]:
        """Anchors for text[start:end], at segment offset `at` (the gaps between
        messages map to nothing)."""
        out = []
        for off, n, mi, src in self.pieces:
            s, e = max(start, off), min(end, off + n)
            if s < e or (s == e == start and n == 0):
                out.append(Anchor(at + s - start, e - s, mi, src + s - off))
        return out

    def stripped(self) -> tuple[str, list[Anchor]]:
        """The text without its outer blanks, and its anchors."""
        lead = len(self.text) - len(self.text.lstrip())
        body = self.text.strip()
        return body, self.anchors(lead, lead + len(body))


def _turns(msgs: list[dict[str, Any]]) -> list[_Turn]:
    turns: list[_Turn] = []
    for i, m in enumerate(msgs):
        role = m["role"]
        group = _TURN_ROLE.get(role)
        if turns and group is not None and _TURN_ROLE.get(turns[-1].role) == group:
            turn = turns[-1]
        else:
            turn = _Turn(role, i, i)
            turns.append(turn)
        text = message_text(m)
        if text.strip():
            turn.add(i, text)
        turn.last = i
    return turns


def _remap(b: SegmentBuilder, n0: int, turn: _Turn) -> None:
    """Segments added since `n0` were anchored in the turn's text (message_index None):
    anchor them in the messages instead."""
    for k in range(n0, len(b.segments)):
        seg = b.segments[k]
        anchors = [a2 for a in seg.anchors for a2 in turn.anchors(a.source_start, a.source_start + a.length, a.offset)]
        b.segments[k] = replace(seg, anchors=tuple(anchors))


def parse_messages(
    messages: Sequence[dict[str, Any]],
    builder: SegmentBuilder | None = None,
    *,
    prompt: int = 0,
) -> SegmentBuilder:
    """Messages → segments. Consecutive messages of one role are one turn, read as one
    text (an instruction split over two user messages is one query), anchored in each
    message; then every other string of a message the model reads (see `_fields`)."""
    b = builder or SegmentBuilder()
    msgs = _validate(list(messages) if isinstance(messages, tuple) else messages)
    turns = _turns(msgs)
    user_turns = [t for t in turns if t.role == "user"]
    last_user = user_turns[-1] if user_turns else None
    consumed: set[int] = set()

    for ti, turn in enumerate(turns):
        if ti in consumed or not turn.text.strip():
            continue
        role, text = turn.role, turn.text
        n0 = len(b.segments)
        if role in ("system", "developer"):
            if _few_shot_inside(text):
                parse_completion(text, b, prompt=prompt, plain_kind=SegmentKind.INSTRUCTION, role=role, source=role)
            else:
                _add_whole(b, SegmentKind.INSTRUCTION, turn, prompt, role)
        elif role in ("tool", "function"):
            m = msgs[turn.first]
            name = m.get("name") or m.get("tool_call_id") or role
            _add_whole(b, SegmentKind.CONTEXT, turn, prompt, role, source=f"tool:{name}")
        elif role == "user" and turn is last_user:
            if _few_shot_inside(text):
                parse_completion(text, b, prompt=prompt, plain_kind=SegmentKind.QUERY, role=role, source="user")
            else:
                _add_whole(b, SegmentKind.QUERY, turn, prompt, role)
        elif role == "user":
            nxt = turns[ti + 1] if ti + 1 < len(turns) else None
            if nxt is not None and nxt.role == "assistant" and nxt.text.strip():
                _add_pair(b, turn, nxt, prompt)
                consumed.add(ti + 1)
                continue
            _add_whole(b, SegmentKind.EXAMPLE, turn, prompt, role)
        elif role == "assistant":
            after = last_user is None or turn.first > last_user.last
            if after and turn.last == len(msgs) - 1 and last_user is not None:
                # a prefill: words the client puts in the model's mouth
                _add_whole(b, SegmentKind.CONTEXT, turn, prompt, role, source="prefill")
            else:
                _add_whole(b, SegmentKind.ANSWER if after else SegmentKind.EXAMPLE, turn, prompt, role)
        _remap(b, n0, turn)
    for i, m in enumerate(msgs):
        _fields(b, m, i, prompt)
    return b


def _add_whole(b: SegmentBuilder, kind: SegmentKind, turn: _Turn, prompt: int, role: str,
               source: str | None = None) -> None:
    """The turn's text as one segment, anchored in the turn (see `_remap`)."""
    lead = len(turn.text) - len(turn.text.lstrip())
    b.add(kind, turn.text.strip(), source_start=lead, role=role, prompt=prompt, source=source or role)


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


def _add_pair(b: SegmentBuilder, q_turn: _Turn, a_turn: _Turn, prompt: int) -> None:
    """A user turn and the assistant turn after it as one example or demonstration.

    The text is the question, a blank line, the answer; anchors map it back to the
    messages. The assistant turn's last line (or its "The answer is …" tail) is the
    answer, the lines before it the reasoning steps.
    """
    q, q_anchors = q_turn.stripped()
    a, a_anchors = a_turn.stripped()
    sep = "\n\n"
    text = q + sep + a
    a_off = len(q) + len(sep)
    anchors = tuple(q_anchors) + tuple(replace(x, offset=x.offset + a_off) for x in a_anchors)
    parts, kind = pair_parts(text, len(q), a_off, len(text))
    b.add(kind, text, anchors=anchors, parts=parts, role="user", prompt=prompt, source="few-shot")


# -- the other strings of a message that the model reads -------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# content parts that point at media by URL: the URL's text reaches the model's input
_URL_PARTS = ("image_url", "input_image", "video_url", "audio_url", "file_url")


def _fields(b: SegmentBuilder, m: dict[str, Any], mi: int, prompt: int) -> None:
    """A message's strings other than its content text, as `context` segments
    anchored by field: its `name` (a tool result's name only when it is not a plain
    identifier), tool-call and function-call `arguments`, an assistant `refusal`, and
    the URLs of media parts (decoded: `%20`, `data:text/…;base64`)."""
    role = m["role"]
    name = m.get("name")
    if isinstance(name, str) and name.strip() and not (
            role in ("tool", "function") and _IDENTIFIER.fullmatch(name)):
        b.add(SegmentKind.CONTEXT, name, message_index=mi, field=("name",), role=role, prompt=prompt,
              source="name")
    if isinstance(m.get("refusal"), str) and m["refusal"].strip():
        b.add(SegmentKind.CONTEXT, m["refusal"], message_index=mi, field=("refusal",), role=role, prompt=prompt,
              source="refusal")
    calls = m.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            add_arguments(b, SegmentKind.CONTEXT, fn, ("tool_calls", k, "function", "arguments"), mi, prompt, role)
    fc = m.get("function_call")
    if isinstance(fc, dict):
        add_arguments(b, SegmentKind.CONTEXT, fc, ("function_call", "arguments"), mi, prompt, role)
    content = m.get("content")
    for j, part in enumerate(content if isinstance(content, list) else []):
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in _URL_PARTS:
            continue
        value = part.get(kind)
        path: tuple[str | int, ...] = ("content", j, kind)
        if isinstance(value, dict):
            value, path = value.get("url"), path + ("url",)
        if isinstance(value, str) and value.strip():
            text, exact = url_text(value)
            if text.strip():
                b.add(SegmentKind.CONTEXT, text, message_index=mi, field=path, exact=exact, role=role,
                      prompt=prompt, source=kind)


def add_arguments(b: SegmentBuilder, kind: SegmentKind, fn: dict[str, Any], path: tuple[str | int, ...],
                  mi: int | None, prompt: int, role: str | None) -> None:
    """A tool call's `arguments` (a JSON string) as the model or an agent reads it: the
    string itself and, when it holds escapes (`\\u0069gnore`, `https:\\/\\/`),
    its decoded strings as a second, read-only view."""
    args = fn.get("arguments")
    if not isinstance(args, str) or args.strip() in ("", "{}", "[]", "null"):
        return
    source = f"tool_call:{fn.get('name')}" if isinstance(fn.get("name"), str) else "tool_call"
    b.add(kind, args, message_index=mi, field=path, role=role, prompt=prompt, source=source)
    if "\\" in args:
        decoded = json_strings(args)
        if decoded is not None and decoded.strip():
            b.add(kind, decoded, message_index=mi, field=path, exact=False, role=role, prompt=prompt,
                  source=source + " (decoded)")


def json_strings(text: str) -> str | None:
    """The keys and string values of a JSON document, one per line; None when it is
    not JSON."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return "\n".join(_strings(value))


def _strings(value: Any, depth: int = 0) -> list[str]:
    if depth > 64:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in ([str(k)] + _strings(v, depth + 1))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, depth + 1)]
    return []


def url_text(url: str) -> tuple[str, bool]:
    """The text a media URL carries, and whether it is the URL itself (exact): a URL
    percent-decoded; a `data:` URI's text when its type is text (`text/*`, JSON, XML,
    or none given), nothing for images, audio and other binary data."""
    if url[:5].lower() != "data:":
        decoded = unquote(url)
        return decoded, decoded == url
    head, _, data = url[5:].partition(",")
    mime = head.split(";", 1)[0].strip().lower()
    if mime and not (mime.startswith("text/") or "json" in mime or "xml" in mime):
        return "", True
    if head.lower().endswith(";base64"):
        try:
            return base64.b64decode(data, validate=False).decode("utf-8", "replace"), False
        except (ValueError, TypeError):
            return data, False
    return unquote(data), False


# -- the strings of a request body outside its messages ---------------------------------------

# JSON-schema keys whose values are keywords, not text for the model
_SCHEMA_KEYWORDS = frozenset({"type", "format", "$ref", "$schema", "$id", "required"})
# JSON-schema keys whose dict keys are names the model reads (property names)
_SCHEMA_NAMES = frozenset({"properties", "patternProperties", "$defs", "definitions"})

Piece = tuple[tuple[str | int, ...], str, bool]  # (field path, text, exact)


def schema_pieces(value: Any, path: tuple[str | int, ...], depth: int = 0) -> list[Piece]:
    """The strings of a tool definition or a JSON schema the model reads: descriptions,
    titles, enum values, examples and property names (those as read-only pieces: a
    key cannot be rewritten in place)."""
    if depth > 64:
        return []
    if isinstance(value, str):
        return [(path, value, True)] if value.strip() else []
    out: list[Piece] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _SCHEMA_KEYWORDS or (k == "name" and depth == 0):
                continue
            if k in _SCHEMA_NAMES and isinstance(v, dict):
                out.extend((path + (k,), str(name), False) for name in v)
            out.extend(schema_pieces(v, path + (k,), depth + 1))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(schema_pieces(v, path + (i,), depth + 1))
    return out


def add_pieces(b: SegmentBuilder, kind: SegmentKind, pieces: Sequence[Piece], *, source: str, prompt: int = 0,
               message_index: int | None = None, role: str | None = None) -> Segment | None:
    """Strings from several fields as one segment (one per line), each line anchored in
    its field, so that text split across fields is read whole and edits map back."""
    text, anchors = "", []
    for path, piece, exact in pieces:
        if text:
            text += "\n"
        anchors.append(Anchor(len(text), len(piece), message_index, 0, path, exact))
        text += piece
    if not text.strip():
        return None
    return b.add(kind, text, anchors=anchors, role=role, prompt=prompt, source=source)


def body_fields(b: SegmentBuilder, body: dict[str, Any], prompt: int = 0) -> None:
    """The strings of a chat request body outside `messages` that reach the model, as
    `context` segments anchored by field: each tool's (and legacy function's)
    description and parameter schema, the `response_format` JSON schema, and vLLM's
    `documents`."""
    for key in ("tools", "functions"):
        tools = body.get(key)
        for t, tool in enumerate(tools if isinstance(tools, list) else []):
            fn, path = (tool.get("function"), (key, t, "function")) if key == "tools" and isinstance(tool, dict) \
                else (tool, (key, t))
            if isinstance(fn, dict):
                name = fn.get("name") if isinstance(fn.get("name"), str) else str(t)
                add_pieces(b, SegmentKind.CONTEXT, schema_pieces(fn, path), source=f"{key}:{name}", prompt=prompt)
    rf = body.get("response_format")
    if isinstance(rf, dict):
        for key in ("json_schema", "schema"):
            if isinstance(rf.get(key), (dict, list)):
                add_pieces(b, SegmentKind.CONTEXT, schema_pieces(rf[key], ("response_format", key), 1),
                           source="response_format", prompt=prompt)
    docs = body.get("documents")
    for d, doc in enumerate(docs if isinstance(docs, list) else []):
        pieces: list[Piece] = []
        if isinstance(doc, str):
            pieces = [(("documents", d), doc, True)]
        elif isinstance(doc, dict):
            pieces = [(("documents", d, k), v, True) for k, v in doc.items() if isinstance(v, str) and v.strip()]
        add_pieces(b, SegmentKind.CONTEXT, pieces, source="documents", prompt=prompt)


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
        b = parse_messages(body["messages"])
        body_fields(b, body)
        return b.segments

    def write(self, body: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        return apply_to_fields({**body, "messages": MESSAGES.write(body["messages"], result)}, result.edits)

    def text(self, body: dict[str, Any]) -> str:
        return messages_text(body.get("messages") or [])


MESSAGES = Messages()
CHAT = ChatBody()
