"""Typed prompt segments: what a request is made of.

Every face (scanner, proxy, LangChain) turns its input into the same list of
`Segment`s, so every detector sees one shape. A segment remembers where each of
its characters came from (`Anchor`s), which lets findings point at a file line
or a message offset and lets sanitizers rewrite the original request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

__all__ = [
    "SegmentKind",
    "Anchor",
    "TextRange",
    "DemoParts",
    "Segment",
    "Location",
    "SegmentBuilder",
    "FieldPath",
    "field_name",
]


class SegmentKind(str, enum.Enum):
    INSTRUCTION = "instruction"  # system / developer prompt
    EXAMPLE = "example"  # few-shot input/output pair without reasoning
    DEMONSTRATION = "demonstration"  # worked example: question, reasoning steps, answer
    CONTEXT = "context"  # retrieved documents, tool output, quoted material
    QUERY = "query"  # the user's actual question
    ANSWER = "answer"  # a model output

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


# A path to a string inside a JSON value: keys and list positions, e.g.
# ("tools", 0, "function", "description"). Empty: the anchor's main text (below).
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Anchor:
    """Maps `length` characters of the segment text, starting at `offset`, to
    `source_start` in a message's content (`message_index`) or, when
    `message_index` is None, in the whole source text (a prompt string or file).

    With a `field` path the characters come from that string field instead: of the
    message `message_index` (a message's `name`, a tool call's `arguments`), or, when
    `message_index` is None, of the request body itself (`tools`, `response_format`,
    `suffix`, ...). `exact` is False when the segment text is a decoded view of the
    field (a percent-encoded URL, a JSON string with escapes): offsets do not map, so
    an edit there cannot be written back (the writers refuse it; the request blocks)."""

    offset: int
    length: int
    message_index: int | None
    source_start: int
    field: FieldPath = ()
    exact: bool = True


@dataclass(frozen=True, slots=True)
class TextRange:
    """Half-open character range into the segment's text."""

    start: int
    end: int

    def of(self, text: str) -> str:
        return text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class DemoParts:
    """The addressable parts of a worked example, as ranges into the segment text."""

    question: TextRange
    steps: tuple[TextRange, ...] = ()
    answer: TextRange | None = None


@dataclass(frozen=True, slots=True)
class Location:
    message_index: int | None
    start: int
    end: int
    field: FieldPath = ()
    exact: bool = True

    @property
    def field_name(self) -> str:
        """The field path as text (`tool_calls/0/function/arguments`); empty for the main text."""
        return field_name(self.field)


def field_name(path: FieldPath) -> str:
    return "/".join(str(p) for p in path)


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    index: int
    text: str
    anchors: tuple[Anchor, ...] = ()
    parts: DemoParts | None = None
    role: str | None = None
    # Which prompt of a multi-prompt source (a JSONL line, a YAML list item) this belongs to.
    prompt: int = 0
    # Free-form provenance: "system", "tool:search", "retriever", "file", ...
    source: str | None = None
    # Whether the text is the application's own (trusted) or someone else's: a prompt
    # library, a user, a retrieved document. None until the guard applies the policy's
    # trust setting for its face (`Policy.trusted_kinds`); a face that knows better may
    # set it first, and the guard keeps it. Detectors read it as a bool.
    trusted: bool | None = None

    # -- demonstration parts -------------------------------------------------
    @property
    def question(self) -> str:
        return self.parts.question.of(self.text) if self.parts else self.text

    @property
    def steps(self) -> list[str]:
        return [r.of(self.text) for r in self.parts.steps] if self.parts else []

    @property
    def answer(self) -> str | None:
        if self.parts and self.parts.answer:
            return self.parts.answer.of(self.text)
        return None

    @property
    def message_index(self) -> int | None:
        return self.anchors[0].message_index if self.anchors else None

    # -- locating ------------------------------------------------------------
    def locate(self, start: int = 0, end: int | None = None) -> Location | None:
        """Where segment characters [start, end) sit in the source.

        A range that crosses anchors is clipped to the anchor holding `start`.
        """
        end = len(self.text) if end is None else end
        for a in self.anchors:
            if a.offset <= start < a.offset + max(a.length, 1) or (
                a.length == 0 and start == a.offset
            ):
                s = a.source_start + (start - a.offset)
                e = a.source_start + min(end, a.offset + a.length) - a.offset
                return Location(a.message_index, s, max(s, e), a.field, a.exact)
        for a in self.anchors:  # an empty range at the very end of an anchor
            if start == a.offset + a.length:
                s = a.source_start + a.length
                return Location(a.message_index, s, s, a.field, a.exact)
        return None

    def with_index(self, index: int) -> "Segment":
        return replace(self, index=index)

    def with_trust(self, trusted: bool) -> "Segment":
        return self if self.trusted is trusted else replace(self, trusted=trusted)

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind.value, "index": self.index}
        if self.prompt:
            d["prompt"] = self.prompt
        loc = self.locate()
        if loc is not None:
            d["message_index"] = loc.message_index
            d["span"] = [loc.start, loc.end]
            if loc.field:
                d["field"] = loc.field_name
        if self.parts is not None:
            d["steps"] = len(self.parts.steps)
            d["has_answer"] = self.parts.answer is not None
        if self.trusted is not None:
            d["trusted"] = self.trusted
        return d


class SegmentBuilder:
    """Assigns per-kind indices as segments are added, across prompts of one source,
    so that `index` counts segments of a kind in the whole file or request."""

    def __init__(self) -> None:
        self._counts: dict[SegmentKind, int] = {}
        self.segments: list[Segment] = []

    def add(
        self,
        kind: SegmentKind,
        text: str,
        *,
        message_index: int | None = None,
        source_start: int = 0,
        anchors: Sequence[Anchor] | None = None,
        parts: DemoParts | None = None,
        role: str | None = None,
        prompt: int = 0,
        source: str | None = None,
        field: FieldPath = (),
        exact: bool = True,
    ) -> Segment:
        idx = self._counts.get(kind, 0)
        self._counts[kind] = idx + 1
        if anchors is None:
            anchors = (Anchor(0, len(text), message_index, source_start, tuple(field), exact),)
        seg = Segment(
            kind=kind,
            index=idx,
            text=text,
            anchors=tuple(anchors),
            parts=parts,
            role=role,
            prompt=prompt,
            source=source,
        )
        self.segments.append(seg)
        return seg


def of_kind(segments: Iterable[Segment], kind: SegmentKind) -> list[Segment]:
    return [s for s in segments if s.kind is kind]


def by_prompt(segments: Iterable[Segment]) -> dict[int, list[Segment]]:
    """Group segments by the prompt they belong to, keeping order."""
    groups: dict[int, list[Segment]] = {}
    for s in segments:
        groups.setdefault(s.prompt, []).append(s)
    return groups


__all__ += ["of_kind", "by_prompt"]
