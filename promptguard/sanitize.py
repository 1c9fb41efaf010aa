"""Rewrite a request from segment-level edits.

Detectors that can repair what they find (drop a poisoned demonstration, strip a
trigger, remove invisible characters) return `Edit`s against segments. The edits
are mapped through the segments' anchors back to the original request shape: a
prompt string, or a list of OpenAI-style messages, whose other fields are kept.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Sequence

from .content import PART_SEP as _PART_SEP
from .content import is_text_part as _is_text_part
from .content import message_text, part_text_key
from .segments import FieldPath, Segment, field_name

__all__ = ["Edit", "apply_to_text", "apply_to_messages", "apply_to_fields", "message_text", "REMOVED_TOOL_CONTENT",
           "Unwritable"]


@dataclass(frozen=True)
class Edit:
    segment: Segment
    # None/None drops the whole segment; otherwise replaces segment text [start, end)
    start: int | None = None
    end: int | None = None
    replacement: str = ""
    reason: str = ""

    @property
    def drops_segment(self) -> bool:
        return self.start is None

    def describe(self) -> str:
        s = self.segment
        where = f"{s.kind.value}[{s.index}]"
        if self.drops_segment:
            return f"removed {where}: {self.reason}".rstrip(": ")
        old = s.text[self.start : self.end]
        verb = "replaced" if self.replacement else "removed"
        return f"{verb} {old!r} in {where}: {self.reason}".rstrip(": ")


# (message_index, field, start, end, replacement, is_drop): message_index None is the
# whole text (or, with a field, the request body); field () is the main text
_Range = tuple[int | None, FieldPath, int, int, str, bool]

# What a tool result whose whole content was dropped says instead: the message
# itself must stay, or the assistant's tool call would be left without its answer.
REMOVED_TOOL_CONTENT = "[content removed by promptguard]"
# what a field holds once its whole text is dropped (tool-call arguments stay JSON)
_EMPTY_FIELD = {"arguments": "{}"}

_AFTER_DROP = re.compile(r"[ \t]*(?:\r?\n){0,2}")


class Unwritable(ValueError):
    """An edit that cannot be written back into the value it was read from (a decoded
    view of a field, a range that maps to no source character). Writers raise it
    rather than forward the value unchanged; the inspection step then fails closed."""


def _ranges(edit: Edit) -> list[_Range]:
    seg = edit.segment
    where = f"{seg.kind.value}[{seg.index}]"
    if edit.drops_segment:
        for a in seg.anchors:
            if not a.exact:
                raise Unwritable(f"{where}: cannot remove {field_name(a.field) or 'the text'}: "
                                 "it was checked in decoded form")
        return [(a.message_index, a.field, a.source_start, a.source_start + a.length, "", True)
                for a in seg.anchors]
    loc = seg.locate(edit.start or 0, edit.end)
    if loc is None:
        raise Unwritable(f"{where}: the edit at {edit.start} maps to no source text")
    if not loc.exact:
        raise Unwritable(f"{where}: cannot edit {loc.field_name}: it was checked in decoded form")
    return [(loc.message_index, loc.field, loc.start, loc.end, edit.replacement, False)]


def _disjoint(ranges: list[tuple[int, int, str, bool]]) -> list[tuple[int, int, str, bool]]:
    """Drop ranges that overlap one kept before them (earliest start, then longest,
    wins), so that applying them one by one never corrupts the text."""
    kept: list[tuple[int, int, str, bool]] = []
    last_end = -1
    for r in sorted(ranges, key=lambda r: (r[0], -r[1])):
        if r[0] < last_end:
            continue
        kept.append(r)
        last_end = max(last_end, r[1])
    return kept


def _apply(text: str, ranges: list[tuple[int, int, str, bool]]) -> str:
    """Apply (start, end, replacement, is_drop) ranges, last first."""
    for start, end, rep, is_drop in reversed(_disjoint(ranges)):
        if is_drop and not text[text.rfind("\n", 0, start) + 1 : start].strip():
            # a whole block (it starts a line): its separator goes with it
            after = _AFTER_DROP.match(text, end).end()
            if text[after:].strip():
                # take the separator (blank line, or line break) that followed the block
                end = after
            else:
                # the last block: take the separator before it, keep the text's own tail
                while start > 0 and text[start - 1] in "\r\n \t":
                    start -= 1
        text = text[:start] + rep + text[end:]
    return text


def _flat(edits: Sequence[Edit], prompt: int | None) -> list[_Range]:
    flat = [r for ed in edits if prompt is None or ed.segment.prompt == prompt for r in _ranges(ed)]
    drops = [f for f in flat if f[5]]
    # replacements inside a dropped range are moot
    return drops + [
        f for f in flat
        if not f[5] and not any(d[0] == f[0] and d[1] == f[1] and d[2] <= f[2] and f[3] <= d[3] for d in drops)
    ]


def apply_to_text(text: str, edits: Sequence[Edit], prompt: int | None = None) -> str:
    """Apply edits to a prompt string whose segments were parsed from `text`.

    With several prompts parsed together (a completion request's list, a JSONL
    file), pass `prompt` to apply only the edits of that prompt's segments.
    """
    return _apply(text, [(s, e, r, d) for _, fld, s, e, r, d in _flat(edits, prompt) if not fld])


def _covered(text: str, ranges: list[tuple[int, int, str, bool]]) -> bool:
    """Is every non-blank character of `text` inside a dropped range?"""
    pos = 0
    for s, e, _, is_drop in sorted(ranges):
        if not is_drop:
            continue
        if text[pos:s].strip():
            return False
        pos = max(pos, e)
    return not text[pos:].strip()


def _keeps_message(msg: dict[str, Any]) -> bool:
    """A message that must stay when its text goes: a tool result, a message with
    tool calls, or one with parts other than text (images, audio, files)."""
    content = msg.get("content")
    return (
        msg.get("role") in ("tool", "function")
        or bool(msg.get("tool_calls"))
        or bool(msg.get("function_call"))
        or (isinstance(content, list) and any(not _is_text_part(p) for p in content))
    )


def _clear_text(msg: dict[str, Any]) -> None:
    content = msg.get("content")
    if isinstance(content, list):
        msg["content"] = [p for p in content if not _is_text_part(p)]
        if not msg["content"] and msg.get("role") in ("tool", "function"):
            msg["content"] = REMOVED_TOOL_CONTENT
    else:
        msg["content"] = REMOVED_TOOL_CONTENT if msg.get("role") in ("tool", "function") else ""


def _apply_to_parts(msg: dict[str, Any], ranges: list[tuple[int, int, str, bool]]) -> None:
    """Apply ranges over the joined text to each text part, keeping the other parts
    and the order; a text part emptied by a drop goes."""
    new: list[Any] = []
    pos = 0
    for part in msg["content"]:
        key = part_text_key(part)
        if key is None:
            new.append(part)
            continue
        t = part.get(key, "")
        start, end = pos, pos + len(t)
        pos = end + len(_PART_SEP)
        mine = []
        for s, e, r, d in ranges:
            if e < start or s > end or (e == start and s < start):
                continue
            owns = start <= s <= end
            mine.append((max(s, start) - start, min(e, end) - start, r if owns else "", d))
        if not mine:
            new.append(part)
            continue
        text = _apply(t, mine)
        if not text.strip() and any(d for *_, d in mine):
            continue
        new.append({**part, key: text})
    msg["content"] = new


def apply_to_messages(
    messages: Sequence[dict[str, Any]], edits: Sequence[Edit], prompt: int | None = None
) -> list[dict[str, Any]]:
    """Apply edits to OpenAI-style messages; other fields (name, tool_calls, image
    parts, ...) are kept. A message whose whole text is dropped goes, unless it must
    stay (see `_keeps_message`): then only its text goes. Edits of a message's other
    fields (`name`, a tool call's `arguments`, ...) are applied to those fields."""
    out = copy.deepcopy(list(messages))
    per_msg: dict[int, list[tuple[int, int, str, bool]]] = {}
    fields: dict[int, list[_Range]] = {}
    for r in _flat(edits, prompt):
        mi = r[0]
        if mi is None or not 0 <= mi < len(out):
            continue
        if r[1]:
            fields.setdefault(mi, []).append(r)
        else:
            per_msg.setdefault(mi, []).append(r[2:])
    for mi, frs in fields.items():
        _apply_fields(out[mi], frs)
    gone: set[int] = set()
    for mi, ranges in per_msg.items():
        msg = out[mi]
        if _covered(message_text(msg), ranges):
            if _keeps_message(msg):
                _clear_text(msg)
            else:
                gone.add(mi)
        elif isinstance(msg.get("content"), list):
            _apply_to_parts(msg, ranges)
        else:
            msg["content"] = _apply(message_text(msg), ranges)
    return [m for i, m in enumerate(out) if i not in gone]


def apply_to_fields(value: dict[str, Any], edits: Sequence[Edit], prompt: int | None = None,
                    *, message_index: int | None = None, any_message: bool = False) -> dict[str, Any]:
    """Apply the edits of string fields (`Anchor.field`) to a JSON object: those of the
    object itself (`message_index` None: a request body's `tools`, `suffix`, ...), or,
    with `any_message`, every field edit whatever its message (one answer message).
    Returns a new object; the top-level values it changes are copies."""
    ranges = [r for r in _flat(edits, prompt) if r[1] and (any_message or r[0] == message_index)]
    if not ranges:
        return value
    out = dict(value)
    for top in {r[1][0] for r in ranges}:
        if top in out:
            out[top] = copy.deepcopy(out[top])
    _apply_fields(out, ranges)
    return out


def _apply_fields(obj: Any, ranges: Sequence[_Range]) -> None:
    """Apply ranges to the string fields they name, in place."""
    by_field: dict[FieldPath, list[tuple[int, int, str, bool]]] = {}
    for r in ranges:
        by_field.setdefault(r[1], []).append(r[2:])
    for path, rs in by_field.items():
        parent: Any = obj
        try:
            for key in path[:-1]:
                parent = parent[key]
            text = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise Unwritable(f"field {field_name(path)} is not a string of the value")
        new = _apply(text, list(rs))
        if not new.strip() and any(d for *_, d in rs):
            new = _EMPTY_FIELD.get(str(path[-1]), "")
        parent[path[-1]] = new
