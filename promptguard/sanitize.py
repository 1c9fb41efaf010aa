"""Rewrite a request from segment-level edits.

Detectors that can repair what they find (drop a poisoned demonstration, strip a
trigger, remove invisible characters) return `Edit`s against segments. The edits
are mapped through the segments' anchors back to the original request shape: a
prompt string, or a list of OpenAI-style messages, whose other fields are kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

from .segments import Segment

__all__ = ["Edit", "apply_to_text", "apply_to_messages", "message_text"]


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


# (message_index, start, end, replacement); message_index None means the whole text
_Range = tuple[int | None, int, int, str]


def _ranges(edit: Edit) -> list[_Range]:
    seg = edit.segment
    if edit.drops_segment:
        return [(a.message_index, a.source_start, a.source_start + a.length, "") for a in seg.anchors]
    loc = seg.locate(edit.start or 0, edit.end)
    if loc is None:
        return []
    return [(loc.message_index, loc.start, loc.end, edit.replacement)]


def _apply(text: str, ranges: list[tuple[int, int, str, bool]]) -> str:
    """Apply non-overlapping (start, end, replacement, is_drop) ranges, last first."""
    for start, end, rep, is_drop in sorted(ranges, key=lambda r: r[0], reverse=True):
        if is_drop:
            # take the blank-line separator that followed a dropped block with it
            while end < len(text) and text[end] in " \t":
                end += 1
            nl = 0
            while end < len(text) and text[end] == "\n" and nl < 2:
                end += 1
                nl += 1
            if end >= len(text):  # dropped the last block: remove the separator before it
                while start > 0 and text[start - 1] in "\n \t":
                    start -= 1
        text = text[:start] + rep + text[end:]
    return text


def _flat(edits: Sequence[Edit]) -> list[tuple[int | None, int, int, str, bool]]:
    flat = [(mi, s, e, r, ed.drops_segment) for ed in edits for mi, s, e, r in _ranges(ed)]
    drops = [f for f in flat if f[4]]
    # replacements inside a dropped range are moot
    return drops + [
        f for f in flat
        if not f[4] and not any(d[0] == f[0] and d[1] <= f[1] and f[2] <= d[2] for d in drops)
    ]


def apply_to_text(text: str, edits: Sequence[Edit]) -> str:
    """Apply edits to a prompt string whose segments were parsed from `text`."""
    return _apply(text, [(s, e, r, d) for _, s, e, r, d in _flat(edits)])


def message_text(msg: dict[str, Any]) -> str:
    """The text of a message: a string, or text parts joined by blank lines."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _set_message_text(msg: dict[str, Any], text: str) -> None:
    content = msg.get("content")
    if isinstance(content, list):
        others = [p for p in content if not (isinstance(p, dict) and p.get("type") == "text")]
        first = next(
            (i for i, p in enumerate(content) if isinstance(p, dict) and p.get("type") == "text"), 0
        )
        msg["content"] = others[:first] + [{"type": "text", "text": text}] + others[first:]
    else:
        msg["content"] = text


def apply_to_messages(messages: Sequence[dict[str, Any]], edits: Sequence[Edit]) -> list[dict[str, Any]]:
    """Apply edits to OpenAI-style messages; a message whose whole text is dropped goes."""
    out = copy.deepcopy(list(messages))
    per_msg: dict[int, list[tuple[int, int, str, bool]]] = {}
    whole_drop: set[int] = set()
    for mi, s, e, r, is_drop in _flat(edits):
        if mi is None or mi >= len(out):
            continue
        text = message_text(out[mi])
        if is_drop and text[:s].strip() == "" and text[e:].strip() == "":
            whole_drop.add(mi)
        else:
            per_msg.setdefault(mi, []).append((s, e, r, is_drop))
    for mi, ranges in per_msg.items():
        if mi not in whole_drop:
            _set_message_text(out[mi], _apply(message_text(out[mi]), ranges))
    return [m for i, m in enumerate(out) if i not in whole_drop]
