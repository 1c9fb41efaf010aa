"""OpenAI Responses API bodies (`POST /v1/responses`) → segments, and back.

Every text the model reads in a Responses request becomes a segment:

    instructions                         instruction (few-shot blocks inside parsed out)
    input as a string                    query (or a whole few-shot prompt, split)
    input `message` items                by role, as chat messages are read (`parsing/openai.py`):
      (`input_text`, `output_text`,      system / developer → instruction; earlier user/assistant
       `refusal` parts)                  pairs → examples or demonstrations; the last user turn → query
    function_call_output, custom_tool_   context, source `tool:<name>` (the tool's result)
      call_output, …_output results
    function_call arguments,             context, source `tool_call:<name>` (the model's earlier calls,
      custom_tool_call input               sent back by the application)
    reasoning items' summaries and text  context, source `reasoning`
    tools: every `description`,          context, source `tool-description:<name>`: tool definitions
      `server_description` (parameter      are often third-party text (MCP servers, tool registries)
      schema descriptions included)
    prompt template variables            context, source `prompt-variable:<name>`
    `input_image.image_url`,             context, source the part's type: the text the URL
      `input_file.file_url` of a part      carries (percent-decoded, a `data:text/…` URI's text),
                                         as chat's media URLs (`parsing/openai.py`)
    `text.format` JSON schema            context, source `response_format`: descriptions,
                                         titles, enum values, property names (`schema_pieces`)
    any other item type                  context, source `item:<type>`: each string it carries
                                         (ids, types, statuses, URLs and base64 data excepted)

The body is read through a chat-like *view*: one view message per place a text lives
(a string, or a list of content parts), each knowing its path in the body. The
message-like places go through `parse_messages` (so few-shot pairs and BadChain
demonstrations are found as in a chat request), the other places become context
segments after them. The writer applies the guard's edits to the view
(`sanitize.apply_to_messages`) and writes each changed text back at its path: every
other field, item and part is kept; a message whose whole text goes is removed, a
tool result keeps its item (its text becomes `[content removed by promptguard]`). The
URLs and the schema are read in place (segments anchored by field in the body) and
edited there (`sanitize.apply_to_fields`; a URL read decoded cannot be, so such an edit
blocks). An edit of a view message's other fields (a tool result's call name, read like
a chat `name`) has no place in the body: it blocks too (`Unwritable`).

The answers (`Response.output`: `output_text` and `refusal` parts, `function_call`
arguments, `custom_tool_call` input, reasoning summaries and text) are one `answer`
segment each (`RESPONSE_OUTPUT`); function-call arguments carry the source
`tool_call:<name>`, which the exfiltration detector reads as a URL an agent fetches.
A streamed answer is followed event by event (`ResponseStreamTexts`).

Texts the proxy cannot see (`previous_response_id`, `conversation`, a stored `prompt`
template, `item_reference` and `compaction` items) are listed by `unseen_context`;
the face decides what to do about them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..content import content_text
from ..sanitize import REMOVED_TOOL_CONTENT, Unwritable, apply_to_fields, apply_to_messages, apply_to_text
from ..segments import Segment, SegmentBuilder, SegmentKind
from .errors import ParseError
from .openai import add_pieces, parse_messages, schema_pieces, url_text

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["RESPONSES", "RESPONSE_OUTPUT", "STREAMED_RESPONSE", "ResponsesBody", "ResponseOutput",
           "StreamedResponse", "ResponseStreamTexts", "unseen_context", "output_texts", "validate_body"]

Path = tuple[Any, ...]

# the key that holds a content part's text, by part type
TEXT_KEYS = {"input_text": "text", "output_text": "text", "text": "text", "refusal": "refusal",
             "summary_text": "text", "reasoning_text": "text"}
_MESSAGE_ROLES = {"system", "developer", "user", "assistant"}
# keys of an unknown item whose strings the model does not read as text
_NOT_TEXT = {"id", "type", "status", "call_id", "role", "encrypted_content", "phase", "detail", "format",
             "mime_type", "image_url", "file_id", "file_url", "file_data", "url", "namespace", "server_label",
             "approval_request_id", "caller", "container_id", "result", "name", "action", "environment"}
_TOOL_TEXT_KEYS = {"description", "server_description"}
# items whose text lives upstream, out of the proxy's sight
_UNSEEN_ITEMS = {"item_reference": "an item_reference (an item stored upstream)",
                 "compaction": "a compaction item (earlier turns, encrypted by the upstream)"}


def _part_text(part: Any) -> str | None:
    if isinstance(part, dict) and isinstance(part.get("type"), str):
        key = TEXT_KEYS.get(part["type"])
        if key is not None and isinstance(part.get(key), str):
            return part[key]
    return None


def _get(obj: Any, path: Path) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _set(obj: Any, path: Path, value: Any) -> None:
    _get(obj, path[:-1])[path[-1]] = value


# -- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where one view message's text lives in the body."""

    path: Path
    parts: bool = False  # the value at `path` is a list of content parts (else a string)
    item: int | None = None  # the input item a message place belongs to (removed when its text goes)
    empty: Any = REMOVED_TOOL_CONTENT  # what the value becomes when all of its text goes


@dataclass
class _View:
    messages: list[dict[str, Any]] = field(default_factory=list)  # chat-like view messages
    places: list[Place] = field(default_factory=list)
    extras: list[tuple[int, str, str]] = field(default_factory=list)  # (view index, role, source)
    n_chat: int = 0  # messages[:n_chat] are read as a conversation
    urls: list[tuple[Path, str, str]] = field(default_factory=list)  # (body path, role, part type) of media URLs

    def add(self, place: Place, msg: dict[str, Any]) -> int:
        msg["_pg_i"] = len(self.messages)
        self.messages.append(msg)
        self.places.append(place)
        return msg["_pg_i"]


def _content(value: Any, path: str) -> str | list[dict[str, Any]]:
    """A content value (a string, or a list of parts) as view content: text parts
    become chat `text` parts, other parts stay as placeholders (`_pg` = part index)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ParseError(f"{path} must be a string or a list of content parts")
    out: list[dict[str, Any]] = []
    for j, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ParseError(f"{path}[{j}] must be an object with a 'type'")
        key = TEXT_KEYS.get(part["type"])
        if key is not None and not isinstance(part.get(key), str):
            raise ParseError(f"{path}[{j}].{key} must be a string")
        text = _part_text(part)
        out.append({"type": "text", "text": text, "_pg": j} if text is not None else {"type": "other", "_pg": j})
    return out


# content-part keys whose string is a URL the model's input carries (its text is read, decoded)
_URL_KEYS = ("image_url", "file_url")


def _media_urls(value: Any, path: Path) -> list[tuple[Path, str]]:
    """(path, part type) of the media URLs among content parts (`input_image.image_url`,
    `input_file.file_url`): text in a URL (a caption in the query string, a `data:text/…`
    URI) reaches the model as chat's `image_url` does (`parsing/openai.py`)."""
    out: list[tuple[Path, str]] = []
    for j, part in enumerate(value if isinstance(value, list) else []):
        for key in _URL_KEYS:
            if isinstance(part, dict) and isinstance(part.get(key), str) and part[key].strip():
                out.append((path + (j, key), str(part.get("type"))))
    return out


def validate_body(body: Any) -> dict[str, Any]:
    """The fields of a Responses request the proxy reads, type-checked; ParseError says
    what is wrong (a 400 for the client)."""
    if not isinstance(body, dict):
        raise ParseError("the request body must be a JSON object")
    inp = body.get("input")
    if inp is not None and not isinstance(inp, (str, list)):
        raise ParseError("'input' must be a string or a list of input items")
    for key in ("input", "instructions"):
        for k, item in enumerate(body[key] if isinstance(body.get(key), list) else []):
            if not isinstance(item, dict):
                raise ParseError(f"{key}[{k}] must be an object")
            if item.get("type") is not None and not isinstance(item["type"], str):
                raise ParseError(f"{key}[{k}].type must be a string")
            if item.get("call_id") is not None and not isinstance(item["call_id"], str):
                raise ParseError(f"{key}[{k}].call_id must be a string")
    ins = body.get("instructions")
    if ins is not None and not isinstance(ins, (str, list)):
        raise ParseError("'instructions' must be a string")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise ParseError("'tools' must be a list of tool objects")
    for key in ("previous_response_id", "model"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ParseError(f"'{key}' must be a string")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise ParseError("'stream' must be a boolean")
    return body


def _is_content(value: Any) -> bool:
    """A tool result's output as content: a string, or a list of typed parts."""
    return isinstance(value, str) or (isinstance(value, list) and all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in value))


def _call_names(items: Sequence[Any]) -> dict[str, str]:
    """call_id → tool name, from the calls among the input items."""
    return {it["call_id"]: str(it.get("name") or it.get("type"))
            for it in items if isinstance(it, dict) and isinstance(it.get("call_id"), str)
            and str(it.get("type", "")).endswith("_call")}


def _strings(obj: Any, path: Path, skip: set[str] | frozenset[str] = frozenset()) -> list[Path]:
    """Paths of the text strings inside an unknown item."""
    out: list[Path] = []
    if isinstance(obj, str):
        if obj.strip():
            out.append(path)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k in skip or k in _NOT_TEXT or k.endswith("_id"):
                continue
            out.extend(_strings(v, path + (k,), skip))
    elif isinstance(obj, list):
        for j, v in enumerate(obj):
            out.extend(_strings(v, path + (j,), skip))
    return out


def _descriptions(obj: Any, path: Path) -> list[Path]:
    """Paths of every description inside a tool definition (its own, its parameters')."""
    out: list[Path] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _TOOL_TEXT_KEYS and isinstance(v, str):
                if v.strip():
                    out.append(path + (k,))
            else:
                out.extend(_descriptions(v, path + (k,)))
    elif isinstance(obj, list):
        for j, v in enumerate(obj):
            out.extend(_descriptions(v, path + (j,)))
    return out


def _view(body: Any) -> _View:
    body = validate_body(body)
    v = _View()
    extras: list[tuple[Place, dict[str, Any], str, str]] = []  # read after the conversation

    def extra(place: Place, content: Any, role: str, source: str) -> None:
        extras.append((place, {"role": "tool", "content": content}, role, source))

    ins = body.get("instructions")
    if isinstance(ins, str):
        v.add(Place(("instructions",), empty=""), {"role": "system", "content": ins})
    inp = body.get("input")
    if isinstance(inp, str):
        v.add(Place(("input",), empty=""), {"role": "user", "content": inp})
    for prefix, items in ((("instructions",), ins), (("input",), inp)):
        if not isinstance(items, list):
            continue
        names = _call_names(items)
        for k, item in enumerate(items):
            path = prefix + (k,)
            where = _where(path)
            typ = item.get("type", "message" if "role" in item else None)
            if typ == "message":
                role = item.get("role")
                if role not in _MESSAGE_ROLES:
                    raise ParseError(f"{where}.role {role!r} is not one of {sorted(_MESSAGE_ROLES)}")
                content = item.get("content")
                if content is None:
                    continue
                v.add(Place(path + ("content",), parts=isinstance(content, list), empty="",
                            item=k if prefix == ("input",) else None),
                      {"role": role, "content": _content(content, where + ".content")})
                v.urls += [(p, role, typ) for p, typ in _media_urls(content, path + ("content",))]
            elif isinstance(typ, str) and typ.endswith("_output") and _is_content(item.get("output")):
                out = item.get("output")
                if out is None:
                    continue
                name = names.get(item.get("call_id"), str(item.get("name") or typ))  # type: ignore[arg-type]
                v.add(Place(path + ("output",), parts=isinstance(out, list)),
                      {"role": "tool", "name": name, "content": _content(out, where + ".output")})
                v.urls += [(p, "tool", typ) for p, typ in _media_urls(out, path + ("output",))]
            elif typ in ("function_call", "custom_tool_call", "mcp_call", "mcp_approval_request"):
                key = "input" if typ == "custom_tool_call" else "arguments"
                if isinstance(item.get(key), str) and item[key].strip():
                    extra(Place(path + (key,), empty="{}" if key == "arguments" else ""), item[key],
                          "assistant", f"tool_call:{item.get('name') or typ}")
                if typ == "mcp_call" and isinstance(item.get("output"), str) and item["output"].strip():
                    extra(Place(path + ("output",)), item["output"], "tool", f"tool:{item.get('name') or typ}")
            elif typ == "reasoning":
                for key in ("summary", "content"):
                    if isinstance(item.get(key), list) and item[key]:
                        extra(Place(path + (key,), parts=True, empty=[]),
                              _content(item[key], f"{where}.{key}"), "assistant", "reasoning")
            elif typ in _UNSEEN_ITEMS:
                continue
            elif typ == "additional_tools" or typ == "mcp_list_tools":
                for p in _descriptions(item.get("tools"), path + ("tools",)):
                    extra(Place(p, empty=""), _get(body, p), "developer",
                          f"tool-description:{_tool_name(body, p)}")
            else:
                for p in _strings(item, path):
                    extra(Place(p), _get(body, p), "tool", f"item:{typ}")
    v.n_chat = len(v.messages)
    for p in _descriptions(body.get("tools"), ("tools",)):
        extra(Place(p, empty=""), _get(body, p), "developer", f"tool-description:{_tool_name(body, p)}")
    prompt = body.get("prompt")
    if isinstance(prompt, dict) and isinstance(prompt.get("variables"), dict):
        for name, value in prompt["variables"].items():
            p: Path = ("prompt", "variables", name)
            if isinstance(value, str) and value.strip():
                extra(Place(p), value, "user", f"prompt-variable:{name}")
            elif isinstance(value, dict) and isinstance(_part_text(value), str):
                extra(Place(p + (TEXT_KEYS[value["type"]],)), _part_text(value), "user", f"prompt-variable:{name}")
    for place, msg, role, source in extras:
        v.extras.append((v.add(place, msg), role, source))
    return v


def _tool_name(body: dict[str, Any], path: Path) -> str:
    """The name of the tool a description path sits in (the innermost object with a name)."""
    name = ""
    obj: Any = body
    for p in path:
        obj = obj[p]
        if isinstance(obj, dict) and isinstance(obj.get("name") or obj.get("server_label"), str):
            name = obj.get("name") or obj.get("server_label")
    return name or "?"


def _segments(v: _View, body: dict[str, Any]) -> list[Segment]:
    b = SegmentBuilder()
    if v.n_chat:
        parse_messages(v.messages[: v.n_chat], b)
    for i, role, source in v.extras:
        text = content_text(v.messages[i]["content"])
        if not text.strip():
            continue
        lead = len(text) - len(text.lstrip())
        b.add(SegmentKind.CONTEXT, text.strip(), message_index=i, source_start=lead, role=role, source=source)
    # strings read in place in the body (anchored by field; message_index None)
    for path, role, typ in v.urls:
        text, exact = url_text(_get(body, path))
        if text.strip():
            b.add(SegmentKind.CONTEXT, text, field=path, exact=exact, role=role, source=typ)
    fmt = body["text"].get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        add_pieces(b, SegmentKind.CONTEXT, schema_pieces(fmt, ("text", "format")), source="response_format")
    return b.segments


def unseen_context(body: Any) -> list[str]:
    """What the model will read that this request does not carry, so no check saw it."""
    if not isinstance(body, dict):
        return []
    out = []
    if body.get("previous_response_id"):
        out.append("previous_response_id: the earlier turns are stored upstream")
    if body.get("conversation"):
        out.append("conversation: the conversation's items are stored upstream")
    prompt = body.get("prompt")
    if isinstance(prompt, dict) and prompt.get("id"):
        out.append("prompt: a prompt template stored upstream")
    for key in ("instructions", "input"):
        items = body.get(key)
        if isinstance(items, list):
            for k, it in enumerate(items):
                what = _UNSEEN_ITEMS.get(it.get("type")) if isinstance(it, dict) else None
                if what:
                    out.append(f"{key}[{k}]: {what}")
    return out


class ResponsesBody:
    """A Responses API request body: reader and writer (see the module docstring)."""

    name = "responses"

    def read(self, body: Any) -> list[Segment]:
        return _segments(_view(body), body)

    def write(self, body: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        v = _view(body)
        after = {m["_pg_i"]: m for m in apply_to_messages(v.messages, result.edits)}
        for i, new in after.items():
            if any(new.get(k) != v.messages[i].get(k) for k in new.keys() | v.messages[i].keys() if k != "content"):
                # a view message's other fields (a tool result's name) have no place in the body: fail closed
                raise Unwritable(f"{_where(v.places[i].path)}: an edit of a field other than its text cannot be "
                                 "written back")
        out = apply_to_fields(copy.deepcopy(body), result.edits)  # the fields read in place (URLs, schemas)
        gone_items: set[int] = set()
        for i, place in enumerate(v.places):
            new = after.get(i)
            if new is None:  # every character of a message place went
                if place.item is not None:
                    gone_items.add(place.item)
                else:
                    _set(out, place.path, place.empty)
                continue
            if new["content"] == v.messages[i]["content"]:
                continue
            if isinstance(new["content"], str):
                text = new["content"]
                _set(out, place.path, place.empty if text == REMOVED_TOOL_CONTENT or place.parts else text)
            else:
                _set(out, place.path, _write_parts(_get(out, place.path), new["content"]))
        if gone_items:
            out["input"] = [it for k, it in enumerate(out["input"]) if k not in gone_items]
        return out

    def text(self, body: Any) -> str:
        try:
            v = _view(body)
        except ParseError:
            return ""
        label = {i: source for i, _, source in v.extras}
        return "\n\n".join(f"[{label.get(i, m['role'])}] {content_text(m['content'])}" for i, m in enumerate(v.messages))


def _where(path: Path) -> str:
    return ".".join(str(p) for p in path)


def _write_parts(original: list[dict[str, Any]], view: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The original parts with the view's texts written back; a text part the view
    dropped goes, other parts stay in their order."""
    out = []
    for vp in view:
        part = dict(original[vp["_pg"]])
        if vp["type"] == "text" and vp["text"] != _part_text(part):
            part[TEXT_KEYS[part["type"]]] = vp["text"]
            _forget_offsets(part)
        out.append(part)
    return out


def _forget_offsets(part: dict[str, Any]) -> None:
    """Annotations and logprobs point at characters of the old text."""
    if part.get("annotations"):
        part["annotations"] = []
    if part.get("logprobs"):
        part["logprobs"] = []


# -- answers: a Response object's output -------------------------------------------------------


def _item_places(item: Any, prefix: Path) -> list[tuple[Path, str]]:
    """(path, source) of each answer text in one output item."""
    if not isinstance(item, dict):
        return []
    typ = item.get("type")
    out: list[tuple[Path, str]] = []
    if typ == "message" and isinstance(item.get("content"), list):
        for j, part in enumerate(item["content"]):
            if _part_text(part) is not None:
                out.append((prefix + ("content", j, TEXT_KEYS[part["type"]]), "upstream"))
    elif typ in ("function_call", "mcp_call", "custom_tool_call"):
        key = "input" if typ == "custom_tool_call" else "arguments"
        if isinstance(item.get(key), str):
            out.append((prefix + (key,), f"tool_call:{item.get('name') or typ}"))
    elif typ == "reasoning":
        for key in ("summary", "content"):
            for j, part in enumerate(item.get(key) or []):
                if _part_text(part) is not None:
                    out.append((prefix + (key, j, TEXT_KEYS[part["type"]]), "reasoning"))
    return out


def output_places(data: Any) -> list[tuple[Path, str]]:
    """(path, source) of every answer text of a Response object."""
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        return []
    return [pl for k, item in enumerate(data["output"]) for pl in _item_places(item, ("output", k))]


def output_texts(data: Any) -> list[tuple[str, str]]:
    """(source, text) of every answer text of a Response object, in order."""
    return [(src, _get(data, p)) for p, src in output_places(data)]


def message_text(data: Any) -> str:
    """The answer's message text (what `Response.output_text` gives), for the audit."""
    return "".join(_get(data, p) for p, src in output_places(data) if src == "upstream" and p[-1] == "text")


def _answer_segments(texts: Sequence[tuple[str, str]]) -> list[Segment]:
    b = SegmentBuilder()
    for i, (source, text) in enumerate(texts):
        if text:
            b.add(SegmentKind.ANSWER, text, message_index=i, role="assistant", source=source)
    return b.segments


class ResponseOutput:
    """The answers of a (non-streamed) Response object: reader and writer."""

    name = "responses response"

    def read(self, data: Any) -> list[Segment]:
        return _answer_segments(output_texts(data))

    def write(self, data: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        out = copy.deepcopy(data)
        for i, (path, source) in enumerate(output_places(data)):
            edits = [e for e in result.edits if e.segment.message_index == i]
            if not edits:
                continue
            text = apply_to_text(_get(data, path), edits)
            if not text.strip() and source.startswith("tool_call") and path[-1] == "arguments":
                text = "{}"
            _set(out, path, text)
            if len(path) == 5:  # a content part: ("output", k, "content", j, "text")
                _forget_offsets(_get(out, path[:-1]))
        return out

    def text(self, data: Any) -> str:
        return "\n\n".join(t for _, t in output_texts(data))


class StreamedResponse:
    """The answer texts of a Responses stream so far (key → (source, text)). Read only:
    text that reached the client cannot be rewritten."""

    name = "streamed responses answer"
    write = None

    def read(self, texts: Mapping[int, tuple[str, str]]) -> list[Segment]:
        return _answer_segments([texts[k] for k in sorted(texts)])

    def text(self, texts: Mapping[int, tuple[str, str]]) -> str:
        return "\n\n".join(texts[k][1] for k in sorted(texts))


@dataclass
class ResponseStreamTexts:
    """Follows a `response.*` event stream: the answer texts it has carried so far.

    Deltas (`response.output_text.delta`, `…function_call_arguments.delta`,
    `…reasoning_summary_text.delta`, any other text `….delta`) append; events that carry
    a whole text (`….done`, `response.output_item.added/done`, the response in
    `response.completed`) set it, so text an upstream sends without deltas is counted
    too. `feed` returns how many new characters an event carried."""

    texts: dict[int, str] = field(default_factory=dict)
    sources: dict[int, str] = field(default_factory=dict)
    _keys: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _names: dict[int, str] = field(default_factory=dict)

    def _key(self, key: tuple[Any, ...], source: str) -> int:
        if key not in self._keys:
            self._keys[key] = len(self._keys)
            self.texts[self._keys[key]] = ""
        k = self._keys[key]
        self.sources[k] = source
        return k

    def _append(self, key: tuple[Any, ...], source: str, delta: str) -> int:
        k = self._key(key, source)
        self.texts[k] += delta
        return len(delta)

    def _whole(self, key: tuple[Any, ...], source: str, text: str) -> int:
        k = self._key(key, source)
        old = self.texts[k]
        if text == old:
            return 0
        self.texts[k] = text
        return len(text) - len(old) if text.startswith(old) else len(text)

    def _item(self, oi: int, item: Any) -> int:
        if not isinstance(item, dict):
            return 0
        if isinstance(item.get("name"), str):
            self._names[oi] = item["name"]
        n = 0
        for path, source in _item_places(item, ()):
            n += self._whole(_place_key(oi, path), source, _get(item, path))
        return n

    def _source(self, oi: int, kind: str) -> str:
        return f"tool_call:{self._names.get(oi, kind)}" if kind == "args" else kind

    def feed(self, event: Any) -> int:
        if not isinstance(event, dict):
            return 0
        typ = str(event.get("type") or "")
        oi = event.get("output_index")
        if typ in ("response.created", "response.in_progress", "response.completed", "response.incomplete",
                   "response.failed", "response.queued"):
            resp = event.get("response")
            items = resp.get("output") if isinstance(resp, dict) else None
            return sum(self._item(k, it) for k, it in enumerate(items or []))
        if typ in ("response.output_item.added", "response.output_item.done") and isinstance(oi, int):
            return self._item(oi, event.get("item"))
        if not isinstance(oi, int):
            return 0
        ci = event.get("content_index", event.get("summary_index", 0))
        if typ in ("response.output_text.delta", "response.refusal.delta"):
            return self._append((oi, "content", ci), "upstream", _str(event.get("delta")))
        if typ in ("response.output_text.done", "response.refusal.done"):
            text = event.get("text") if typ.endswith("text.done") else event.get("refusal")
            return self._whole((oi, "content", ci), "upstream", _str(text))
        if typ in ("response.content_part.added", "response.content_part.done"):
            text = _part_text(event.get("part"))
            return 0 if text is None else self._whole((oi, "content", ci), "upstream", text)
        if typ in ("response.function_call_arguments.delta", "response.mcp_call_arguments.delta",
                   "response.custom_tool_call_input.delta"):
            return self._append((oi, "args"), self._source(oi, "args"), _str(event.get("delta")))
        if typ in ("response.function_call_arguments.done", "response.mcp_call_arguments.done",
                   "response.custom_tool_call_input.done"):
            if isinstance(event.get("name"), str):
                self._names[oi] = event["name"]
            text = event.get("arguments", event.get("input"))
            return self._whole((oi, "args"), self._source(oi, "args"), _str(text))
        if typ == "response.reasoning_summary_text.delta":
            return self._append((oi, "summary", ci), "reasoning", _str(event.get("delta")))
        if typ == "response.reasoning_summary_text.done":
            return self._whole((oi, "summary", ci), "reasoning", _str(event.get("text")))
        if typ == "response.reasoning_text.delta":
            return self._append((oi, "content", ci), "reasoning", _str(event.get("delta")))
        if typ == "response.reasoning_text.done":
            return self._whole((oi, "content", ci), "reasoning", _str(event.get("text")))
        if typ.endswith(".delta") and isinstance(event.get("delta"), str) and not typ.startswith("response.audio."):
            return self._append((oi, typ[: -len(".delta")], ci), "upstream", event["delta"])
        return 0

    def value(self) -> dict[int, tuple[str, str]]:
        """The texts as `StreamedResponse` reads them."""
        return {k: (self.sources[k], t) for k, t in self.texts.items()}

    def message_text(self) -> str:
        """The message text streamed so far (what `Response.output_text` gives), for the audit."""
        return "".join(self.texts[k] for key, k in self._keys.items()
                       if key[1] == "content" and self.sources[k] == "upstream")


def _place_key(oi: int, path: Path) -> tuple[Any, ...]:
    """The stream key of an answer place inside output item `oi` (path relative to it)."""
    if path and path[0] in ("arguments", "input"):
        return (oi, "args")
    if path and path[0] == "summary":
        return (oi, "summary", path[1])
    return (oi, "content", path[1])


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


RESPONSES = ResponsesBody()
RESPONSE_OUTPUT = ResponseOutput()
STREAMED_RESPONSE = StreamedResponse()
