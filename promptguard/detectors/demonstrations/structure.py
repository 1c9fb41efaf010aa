"""The anatomy of a worked example, as the demonstrations detector sees it.

A demonstration segment (from a completion prompt or a user/assistant pair) is
split into *fields* of its question zone (a prefix before the question marker,
the stem, the answer choices), its reasoning lines, and its answer line. All
ranges are offsets into `Segment.text`, so findings and edits can point at them.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...answers import WEEKDAYS, labels_of
from ...segments import Segment, SegmentKind
from .text import Token, Value, parse_answer, tokenize, values_in

__all__ = ["Demo", "demos_of", "queries_of"]

_MARKER_TAIL = re.compile(r"(?:Question|Q|Problem|Input)[ \t]*[:：][ \t]*$", re.IGNORECASE)
# a marker inside the question range, after a short prefix (the parser keeps a prefix
# such as a trigger placed before "Question:" in the question)
_MARKER_IN = re.compile(r"(?:^|(?<=\s))(?:Question|Q|Problem|Input)[ \t]*[:：][ \t]*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])[ \t]+(?=\S)")
_CHOICES = re.compile(r"(?:Answer\s+Choices|Choices|Options)[ \t]*[:：]|\(A\)|\(a\)|(?m:^[ \t]*A[.)][ \t])")
_CHOICE_LETTER = re.compile(r"\(([A-Za-z])\)|(?m:^[ \t]*([A-Z])[.)][ \t])")
_OPTION_TEXT = re.compile(r"[ \t]*([^()\n]{1,60}?)[ \t]*(?=\([A-Za-z]\)|\n|$)")

Range = tuple[int, int]


@dataclass
class Demo:
    seg: Segment
    pos: int  # position among the prompt's demonstrations (0-based)
    fields: list[Range]  # question-zone fields: prefix, stem, choices (n-grams never cross them)
    question: Range  # the whole question zone, prefix included
    steps: list[Range]
    answer: Range | None
    choice_letters: frozenset[str]
    answer_value: Value | None
    choices: Range | None = None  # the answer-choices field (not mined for triggers, not an echo source)
    # multiple choice: letter -> the option's text (case-folded); a reasoning line that
    # names an option's text names that option
    options: dict[str, str] = field(default_factory=dict)
    # the prompt's closed label set (answers shared across demonstrations, weekdays)
    labels: tuple[str, ...] = ()
    _tokens: dict[Range, list[Token]] = field(default_factory=dict, repr=False)
    _values: dict[Range, list[Value]] = field(default_factory=dict, repr=False)
    _starts: list[int] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        return self.seg.text

    @property
    def index(self) -> int:
        return self.seg.index

    @property
    def letters(self) -> bool:
        """Multiple choice: bare capital letters are values."""
        return bool(self.choice_letters) or (self.answer_value is not None and self.answer_value.kind == "letter")

    def tokens(self, r: Range) -> list[Token]:
        t = self._tokens.get(r)
        if t is None:
            # tokenize the whole text once, then slice (ranges end at token boundaries;
            # a token that straddles one is re-tokenized inside the range)
            alltoks = self._tokens.get((-1, -1))
            if alltoks is None:
                alltoks = self._tokens[(-1, -1)] = tokenize(self.text)
                self._starts = [x.start for x in alltoks]
            i = bisect_left(self._starts, r[0])
            j = bisect_left(self._starts, r[1])
            t = alltoks[i:j]
            if (t and t[-1].end > r[1]) or (i > 0 and alltoks[i - 1].end > r[0]):
                t = tokenize(self.text, r[0], r[1])
            self._tokens[r] = t
        return t

    def values(self, r: Range) -> list[Value]:
        v = self._values.get(r)
        if v is None:
            v = [
                Value(x.kind, x.key, x.start + r[0], x.end + r[0])
                for x in values_in(self.text[r[0] : r[1]], letters=self.letters, labels=self.labels)
            ]
            if self.options and r != self.choices:
                v = _with_option_mentions(self, r, v)
            self._values[r] = v
        return v

    def question_tokens(self) -> list[list[Token]]:
        return [self.tokens(f) for f in self.fields]

    @property
    def open_fields(self) -> list[Range]:
        """The question's own text: prefix and stem, not the offered choices."""
        return [f for f in self.fields if f != self.choices]

    def line(self, r: Range) -> str:
        return self.text[r[0] : r[1]]


def _with_option_mentions(d: Demo, r: Range, vals: list[Value]) -> list[Value]:
    """Add the options a line names by their text ("Nairobi is the capital" names
    option (C) Nairobi); such a mention replaces a bare letter read at the same place
    (in "X is option (E)", X is the text of option E, not choice X)."""
    raw = d.text[r[0] : r[1]]
    line = raw.casefold()
    if len(line) != len(raw):  # offsets must stay put ("ß" folds to "ss")
        line = raw.lower() if len(raw.lower()) == len(raw) else raw
    extra = []
    for letter, opt in d.options.items():
        i = line.find(opt)
        while i >= 0:
            j = i + len(opt)
            if (i == 0 or not (line[i - 1].isalnum() or line[i - 1] in "_(")) and \
                    (j >= len(line) or not (line[j].isalnum() or line[j] in "_)")):
                extra.append(Value("letter", letter, r[0] + i, r[0] + j))
            i = line.find(opt, j)
    if not extra:
        return vals
    spans = [(x.start, x.end) for x in extra]
    kept = [v for v in vals if not (v.kind == "letter" and any(a <= v.start and v.end <= b for a, b in spans))]
    return sorted(kept + extra, key=lambda v: v.start)


def _options(text: str, choices: Range) -> dict[str, str]:
    out: dict[str, str] = {}
    for lm in re.finditer(r"\(([A-Za-z])\)", text[choices[0] : choices[1]]):
        m = _OPTION_TEXT.match(text, choices[0] + lm.end(), choices[1])
        if m and m.group(1).strip():
            t = " ".join(m.group(1).casefold().split())
            if t not in out.values():
                out[lm.group(1).upper()] = t
    return out if len(out) >= 2 else {}


def _demo(seg: Segment, pos: int) -> Demo | None:
    parts = seg.parts
    text = seg.text
    if parts is None:
        return None
    q = parts.question
    fields: list[Range] = []
    head = text[: q.start]
    if head.strip():
        m = _MARKER_TAIL.search(head)
        prefix_end = m.start() if m else len(head)
        pre = head[:prefix_end]
        if pre.strip():
            s = len(pre) - len(pre.lstrip())
            fields.append((s, len(pre.rstrip())))
    q_start = q.start
    if not fields:
        mm = _MARKER_IN.search(text, q.start, min(q.end, q.start + 80))
        if mm and mm.start() > q.start and "\n" not in text[q.start : mm.start()]:
            pre = text[q.start : mm.start()]
            if pre.strip():
                s0 = q.start + len(pre) - len(pre.lstrip())
                fields.append((s0, q.start + len(pre.rstrip())))
            q_start = mm.end()
    qtext = text[q_start : q.end]
    cm = _CHOICES.search(qtext)
    letters: set[str] = set()
    if cm and cm.start() > 0:
        stem = (q_start, q_start + len(qtext[: cm.start()].rstrip()))
        choices = (q_start + cm.start(), q.end)
        fields.append(stem)
        fields.append(choices)
        for lm in _CHOICE_LETTER.finditer(text, choices[0], choices[1]):
            letters.add((lm.group(1) or lm.group(2)).upper())
    else:
        fields.append((q_start, q.end))
    if len(letters) < 2:
        letters = set()
    # reasoning units: the parser's steps (lines; the sentences of a one-line chain)
    steps: list[Range] = [(r.start, r.end) for r in parts.steps]
    answer = (parts.answer.start, parts.answer.end) if parts.answer else None
    zone = (fields[0][0], q.end)
    d = Demo(seg, pos, fields, zone, steps, answer, frozenset(letters), None,
             choices=fields[-1] if cm and cm.start() > 0 else None)
    if d.choices is not None and letters:
        d.options = _options(text, d.choices)
    if answer is not None:
        d.answer_value = parse_answer(text[answer[0] : answer[1]], letters=bool(letters))
    return d


def demos_of(segments: Sequence[Segment]) -> list[Demo]:
    """The prompt's worked examples, in order: demonstrations, and examples that carry
    at least one reasoning line (a chat pair with a short chain)."""
    out: list[Demo] = []
    for s in segments:
        if s.kind is SegmentKind.DEMONSTRATION or (
            s.kind is SegmentKind.EXAMPLE and s.parts is not None and s.parts.steps and s.parts.answer is not None
        ):
            d = _demo(s, len(out))
            if d is not None:
                out.append(d)
    # labels: a closed set of short answers the demonstrations share (sentiment, topic,
    # weekday ...): their answers and their lines then hold label values
    labels = labels_of([d.answer_value for d in out])
    if labels or any(d.answer_value is not None and d.answer_value.kind == "label" for d in out):
        labels = tuple(sorted(set(labels) | _listed_alternatives(out, labels)))
        if any(x in WEEKDAYS for x in labels) or any(
                d.answer_value is not None and d.answer_value.key in WEEKDAYS for d in out):
            labels = tuple(sorted(set(labels) | set(WEEKDAYS)))
        for d in out:
            d.labels = labels
            v = d.answer_value
            if v is not None and v.kind in ("text", "quoted") and v.key.casefold() in labels:
                d.answer_value = Value("label", v.key.casefold())
    return out


_ALTERNATIVES = re.compile(r"[^\W\d_]+(?:[ \t]*,[ \t]*[^\W\d_]+)*,?[ \t]+or[ \t]+[^\W\d_]+", re.IGNORECASE)


def _listed_alternatives(demos: list[Demo], labels: tuple[str, ...]) -> set[str]:
    """Labels a question lists beside known ones ("joy, anger, fear or sadness")."""
    known = set(labels) | {d.answer_value.key for d in demos if d.answer_value is not None and d.answer_value.kind == "label"}
    out: set[str] = set()
    for d in demos:
        for f in d.open_fields:
            for m in _ALTERNATIVES.finditer(d.text, f[0], f[1]):
                words = [w.casefold() for w in re.split(r"[ \t]*,[ \t]*|,?[ \t]+or[ \t]+", m.group()) if w]
                if len(words) >= 2 and any(w in known for w in words):
                    out.update(w for w in words if len(w) <= 24)
    return out


def queries_of(segments: Sequence[Segment]) -> list[Segment]:
    return [s for s in segments if s.kind is SegmentKind.QUERY]
