"""Split a completion-style prompt into instruction, worked examples and query.

Few-shot prompts are blocks separated by blank lines. A block that starts with a
question marker (`Question:`, `Q:`, `Problem:`) is an example; it is a
*demonstration* when reasoning lines stand between the question and the answer
line (`The answer is …`, `A: …`, `Answer: …`). The last question block without an
answer is the query. Text before the first question block is the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..segments import Anchor, DemoParts, SegmentBuilder, SegmentKind, TextRange

__all__ = ["parse_completion", "split_blocks", "parse_block", "Block"]

_BLANK = re.compile(r"\r?\n[ \t]*\r?\n(?:[ \t]*\r?\n)*")
_QMARK = re.compile(r"^[ \t]*(?:Question|Q|Problem|Input)[ \t]*[:：][ \t]*", re.IGNORECASE)
_ANSWER_LINE = re.compile(
    r"^[ \t]*(?:(?:So|Thus|Therefore|Hence)[, ]+)?(?:the\s+)?(?:final\s+)?answer\s+is\b"
    r"|^[ \t]*(?:A|Answer|Output|Final answer)[ \t]*[:：]",
    re.IGNORECASE,
)
# answer markers that open the reasoning ("A: Let's think step by step.") rather than end it
_REASONING_OPENER = re.compile(r"^[ \t]*(?:A|Answer)[ \t]*[:：][ \t]*let'?s think", re.IGNORECASE)
# question continuation lines that belong to the question, not the reasoning
_QUESTION_CONT = re.compile(r"^[ \t]*(?:Answer Choices|Choices|Options)[ \t]*[:：]", re.IGNORECASE)


@dataclass
class Block:
    start: int
    end: int
    text: str


def split_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    pos = 0
    for m in _BLANK.finditer(text):
        if text[pos : m.start()].strip():
            blocks.append(Block(pos, m.start(), text[pos : m.start()]))
        pos = m.end()
    if text[pos:].strip():
        end = len(text.rstrip())
        blocks.append(Block(pos, end, text[pos:end]))
    # strip leading whitespace off each block, keeping offsets right
    out = []
    for b in blocks:
        lead = len(b.text) - len(b.text.lstrip())
        trail = len(b.text.rstrip())
        out.append(Block(b.start + lead, b.start + trail, b.text[lead:trail]))
    return out


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty line, end excluding the line break."""
    out = []
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if body.strip():
            s = pos + (len(body) - len(body.lstrip()))
            out.append((s, pos + len(body.rstrip())))
        pos += len(line)
    return out


@dataclass
class ParsedBlock:
    is_question: bool
    parts: DemoParts | None
    question: TextRange | None
    has_reasoning: bool


def parse_block(text: str) -> ParsedBlock:
    """Question, reasoning steps and answer of one block (ranges into `text`)."""
    m = _QMARK.match(text)
    if not m:
        return ParsedBlock(False, None, None, False)
    lines = _lines(text)
    if not lines:
        return ParsedBlock(False, None, None, False)
    q_start = m.end()
    q_end = lines[0][1]
    i = 1
    while i < len(lines) and _QUESTION_CONT.match(text[lines[i][0] : lines[i][1]]):
        q_end = lines[i][1]
        i += 1
    rest = lines[i:]
    answer: TextRange | None = None
    if rest:
        last = text[rest[-1][0] : rest[-1][1]]
        am = _ANSWER_LINE.match(last)
        if am and not last[am.end():].strip(" \t:："):
            rest = rest[:-1]  # an empty "A:" cue awaiting the model's answer
        elif am and not (len(rest) == 1 and _REASONING_OPENER.match(last)):
            answer = TextRange(*rest[-1])
            rest = rest[:-1]
        elif "answer is" in last.lower():
            # reasoning and answer on one line: "... so 5 + 3 = 8. The answer is 8."
            k = last.lower().rfind("the answer is")
            if k < 0:
                k = last.lower().rfind("answer is")
            answer = TextRange(rest[-1][0] + k, rest[-1][1])
            if k > 0:
                rest = rest[:-1] + [(rest[-1][0], rest[-1][0] + k)]
            else:
                rest = rest[:-1]
    steps = tuple(TextRange(s, e) for s, e in rest if text[s:e].strip())
    question = TextRange(q_start, q_end)
    parts = DemoParts(question=question, steps=steps, answer=answer)
    return ParsedBlock(True, parts, question, bool(steps))


def parse_completion(
    text: str,
    builder: SegmentBuilder | None = None,
    *,
    message_index: int | None = None,
    base: int = 0,
    prompt: int = 0,
    plain_kind: SegmentKind = SegmentKind.QUERY,
    role: str | None = None,
    source: str | None = None,
) -> SegmentBuilder:
    """Parse `text` into segments; offsets are `base` + position in `text`.

    `plain_kind` is the kind given to text that holds no question blocks
    (a completion request is a query; a prompt-library file is an instruction).
    """
    b = builder or SegmentBuilder()
    blocks = split_blocks(text)
    parsed = [parse_block(bl.text) for bl in blocks]
    q_idx = [i for i, p in enumerate(parsed) if p.is_question]
    if not q_idx:
        if text.strip():
            lead = len(text) - len(text.lstrip())
            body = text.strip()
            b.add(plain_kind, body, message_index=message_index, source_start=base + lead,
                  role=role, prompt=prompt, source=source)
        return b

    # merge continuation blocks (no question marker) into a preceding unanswered question
    merged: list[tuple[Block, ParsedBlock]] = []
    for bl, p in zip(blocks, parsed):
        if merged and not p.is_question and merged[-1][1].is_question and merged[-1][1].parts \
                and merged[-1][1].parts.answer is None:
            prev, _ = merged[-1]
            joined = Block(prev.start, bl.end, text[prev.start : bl.end])
            merged[-1] = (joined, parse_block(joined.text))
        else:
            merged.append((bl, p))

    last_q = max(i for i, (_, p) in enumerate(merged) if p.is_question)
    first_q = min(i for i, (_, p) in enumerate(merged) if p.is_question)
    for i, (bl, p) in enumerate(merged):
        anchors = (Anchor(0, len(bl.text), message_index, base + bl.start),)
        if not p.is_question:
            kind = SegmentKind.INSTRUCTION if i < first_q else SegmentKind.CONTEXT
            if i > last_q:
                kind = SegmentKind.QUERY if plain_kind is SegmentKind.QUERY else SegmentKind.CONTEXT
            b.add(kind, bl.text, anchors=anchors, role=role, prompt=prompt, source=source)
            continue
        assert p.parts is not None
        unanswered = p.parts.answer is None and not p.has_reasoning
        if i == last_q and (unanswered or p.parts.answer is None):
            # the query: the question text itself (marker excluded), plus any trailing lines
            q = p.parts.question
            qtext = bl.text[q.start :].rstrip()
            qtext_anchor = (Anchor(0, len(qtext), message_index, base + bl.start + q.start),)
            b.add(SegmentKind.QUERY, qtext, anchors=qtext_anchor, role=role, prompt=prompt, source=source)
            continue
        kind = SegmentKind.DEMONSTRATION if p.has_reasoning else SegmentKind.EXAMPLE
        b.add(kind, bl.text, anchors=anchors, parts=p.parts, role=role, prompt=prompt, source=source)
    return b
