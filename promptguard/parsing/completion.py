"""Split a completion-style prompt into instruction, worked examples and query.

Few-shot prompts are blocks separated by blank lines (a block that holds several
`Q:` lines one after another is split at each of them). A block whose first line
carries a question marker (`Question:`, `Q:`, `Problem:`, `Input:`, possibly after a
short prefix such as a trigger) is an example; it is a *demonstration* when
reasoning stands between the question and the answer (`The answer is …`,
`A: …`, `Answer: …`, `#### …`), on separate lines or inline before
"The answer is". The last question block without an answer is the query. Text
before the first question block is instruction; text between question blocks is
context; text after the last one gets the caller's `plain_kind`.

Every range is a half-open character range into the source text, so segments map
back to the exact source characters (CRLF files included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..sanitize import apply_to_fields, apply_to_text
from ..segments import Anchor, DemoParts, Segment, SegmentBuilder, SegmentKind, TextRange
from .errors import ParseError

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["parse_completion", "split_blocks", "parse_block", "Block", "ParsedBlock", "answer_parts",
           "prompt_segments", "PROMPT", "COMPLETION"]

# a blank-line separator; it starts at "\n" (a literal first character lets the regex
# engine skip ahead fast on large files), a "\r" before it is added back by hand
_BLANK = re.compile(r"\n[ \t]*\r?\n(?:[ \t]*\r?\n)*")
_MARKER_WORDS = r"(?:Question|Q|Problem|Input)"
# a question marker at the start of a line
_QMARK = re.compile(rf"^[ \t]*({_MARKER_WORDS})[ \t]*[:：][ \t]*", re.IGNORECASE)
# A short foreign prefix before the marker ("@_@ Question: ...": a trigger placed before
# the question) must not hide the block: up to 60 characters without a colon on the
# block's first line, then a capitalised marker.
_QMARK_PREFIXED = re.compile(rf"^[ \t]*[^\r\n:：]{{1,60}}?[ \t]({_MARKER_WORDS})[ \t]*[:：][ \t]*")
# a line that starts with a question marker, anywhere in a block (compact Q/A lists)
_QMARK_LINE = re.compile(rf"\n[ \t]*({_MARKER_WORDS})[ \t]*[:：]", re.IGNORECASE)
# an answer given as a sentence: "The answer is 8.", "So the final answer is (B)."
_ANSWER_SENTENCE = re.compile(
    r"[ \t]*(?:(?:So|Thus|Therefore|Hence)[, ]+)?(?:the\s+)?(?:final\s+)?answer\s+is\b",
    re.IGNORECASE,
)
# an answer given after a marker: "A: 8", "Answer: (B)", "#### 72"
_ANSWER_MARKER = re.compile(
    r"[ \t]*(?:(?:A|Answer|Output|Solution|Final answer)[ \t]*[:：]|####)[ \t]*", re.IGNORECASE
)
# (pattern.match(text, pos, endpos) anchors at pos; these patterns carry no "^" for that reason)
# "the answer is" inside a line that reasons first
_INLINE_ANSWER = re.compile(r"(?:(?:so|thus|therefore|hence)[, ]+)?the\s+(?:final\s+)?answer\s+is\b", re.IGNORECASE)
# the chain-of-thought cue, which is neither question nor reasoning
_COT_CUE = re.compile(r"let'?s\s+think\s+step\s+by\s+step\b[.!:]?", re.IGNORECASE)
_COT_CUE_AT_END = re.compile(r"[ \t]*let'?s\s+think\s+step\s+by\s+step\b[.!:]?[ \t]*$", re.IGNORECASE)
# question continuation lines that belong to the question, not the reasoning
_QUESTION_CONT = re.compile(
    r"[ \t]*(?:(?:Answer Choices|Choices|Options)[ \t]*[:：]|\(?[A-Ea-e]\)[ \t])", re.IGNORECASE
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[ \t]+(?=\S)")


@dataclass
class Block:
    start: int
    end: int
    text: str


def split_blocks(text: str, compact: bool = True) -> list[Block]:
    """Blocks separated by blank lines, stripped (offsets still exact).

    With `compact`, a block holding several question-marker lines (`Q: …` /
    `A: …` pairs without blank lines between them) is split before each of them,
    and text before its first marker line becomes a block of its own.
    """
    raw: list[tuple[int, int]] = []
    pos = 0
    for m in _BLANK.finditer(text):
        start = m.start() - 1 if m.start() > 0 and text[m.start() - 1] == "\r" else m.start()
        raw.append((pos, start))
        pos = m.end()
    raw.append((pos, len(text)))
    out: list[Block] = []
    for start, end in raw:
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        body = chunk.strip()
        if not body:
            continue
        s = start + lead
        pieces = _compact_split(body) if compact else [(0, len(body))]
        for ps, pe in pieces:
            piece = body[ps:pe]
            p_lead = len(piece) - len(piece.lstrip())
            p_body = piece.strip()
            if p_body:
                out.append(Block(s + ps + p_lead, s + ps + p_lead + len(p_body), p_body))
    return out


def _compact_split(body: str) -> list[tuple[int, int]]:
    if ":" not in body and "：" not in body:
        return [(0, len(body))]
    # (line start, marker word) of every line that opens with a question marker
    marks = [(m.start() + 1, m.group(1).lower()) for m in _QMARK_LINE.finditer(body)]
    first = _QMARK.match(body)
    if first:
        marks.insert(0, (0, first.group(1).lower()))
    if not marks:
        return [(0, len(body))]
    word = marks[0][1]
    cuts = [start for start, w in marks if w == word]
    if len(cuts) == 1 and cuts[0] == 0:
        return [(0, len(body))]
    if cuts[0] != 0:  # text before the first marker line is a block of its own
        cuts = [0] + cuts
    return [(a, b) for a, b in zip(cuts, cuts[1:] + [len(body)])]


def _lines(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each non-empty line of text[start:end], whitespace trimmed,
    end excluding the line break."""
    out = []
    end = len(text) if end is None else end
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl < 0 else nl
        s, e = pos, stop
        while s < e and text[s] in " \t\r":
            s += 1
        while e > s and text[e - 1] in " \t\r":
            e -= 1
        if e > s:
            out.append((s, e))
        pos = stop + 1
    return out


@dataclass
class ParsedBlock:
    is_question: bool
    parts: DemoParts | None
    question: TextRange | None
    has_reasoning: bool
    # where the question text (with anything the asker added after it) ends, trailing
    # cues ("Let's think step by step.", an empty "A:") excluded; used for queries
    query_end: int = 0


def _skip_cue(text: str, s: int, e: int) -> int:
    """Start of the line's content after an opening "Let's think step by step." cue."""
    m = _COT_CUE.match(text, s, e)
    if not m:
        return s
    s = m.end()
    while s < e and text[s] in " \t":
        s += 1
    return s


def answer_parts(text: str, lines: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """Reasoning steps and answer among `lines` (the answer region of a worked
    example), as (start, end) ranges into `text`. An opening answer marker ("A:")
    and a "Let's think step by step." cue are neither."""
    lines = list(lines)
    if not lines:
        return [], None
    marker_first = False
    # an opening answer marker: "A: ...", "Answer: ..."
    s, e = lines[0]
    m = _ANSWER_MARKER.match(text, s, e)
    if m:
        marker_first = True
        s = m.end()
    s = _skip_cue(text, s, e)
    if s >= e:
        lines = lines[1:]
    else:
        lines[0] = (s, e)
    if not lines:
        return [], None
    # the answer: the last line, or the tail of it after inline reasoning
    s, e = lines[-1]
    answer: tuple[int, int] | None = None
    m = _ANSWER_MARKER.match(text, s, e)
    if _ANSWER_SENTENCE.match(text, s, e):
        answer = (s, e)
        lines = lines[:-1]
    elif m and not (len(lines) == 1 and marker_first):
        if m.end() < e:
            answer = (m.end(), e)
        lines = lines[:-1]  # an empty trailing marker is a cue, not a step
    else:
        inline = None
        for im in _INLINE_ANSWER.finditer(text, s, e):
            inline = im
        if inline is not None and inline.start() > s:
            answer = (inline.start(), e)
            head_end = inline.start()
            while head_end > s and text[head_end - 1] in " \t":
                head_end -= 1
            lines = lines[:-1] + ([(s, head_end)] if head_end > s else [])
        elif marker_first and len(lines) == 1:
            answer = (s, e)  # "A: 8": the answer alone
            lines = []
    steps: list[tuple[int, int]] = []
    if len(lines) == 1 and answer is not None:
        # reasoning written as one line: its sentences are the steps
        s, e = lines[0]
        pos = s
        for br in _SENTENCE_BREAK.finditer(text, s, e):
            steps.append((pos, br.start()))
            pos = br.end()
        steps.append((pos, e))
    else:
        steps = lines
    return [st for st in steps if st[1] > st[0]], answer


def _is_cue_line(text: str, s: int, e: int) -> bool:
    """An empty answer marker ("A:") or "Let's think step by step.", alone or together."""
    m = _ANSWER_MARKER.match(text, s, e)
    if m:
        s = m.end()
    return s >= e or _COT_CUE.fullmatch(text, s, e) is not None


def parse_block(text: str) -> ParsedBlock:
    """Question, reasoning steps and answer of one block (ranges into `text`)."""
    m = _QMARK.match(text)
    prefixed = False
    if not m:
        m = _QMARK_PREFIXED.match(text)
        prefixed = m is not None
    if not m:
        return ParsedBlock(False, None, None, False)
    lines = _lines(text)
    if not lines:
        return ParsedBlock(False, None, None, False)
    # a prefix before the marker (a trigger, say) belongs to the question
    q_start = lines[0][0] if prefixed else m.end()
    q_end = lines[0][1]
    i = 1
    # the question runs to a cue line ("Let's think step by step", "A: ...") when
    # there is one; otherwise it is the first line plus choice lines
    cue_at = None
    for j in range(1, len(lines)):
        s, e = lines[j]
        if _COT_CUE.match(text, s, e) or (_ANSWER_MARKER.match(text, s, e) and not text.startswith("#", s)):
            cue_at = j  # "####" closes a solution; it does not open one
            break
        if _ANSWER_SENTENCE.match(text, s, e):
            break
    if cue_at is not None:
        i = cue_at
        q_end = lines[cue_at - 1][1]
    else:
        while i < len(lines) and _QUESTION_CONT.match(text, lines[i][0], lines[i][1]):
            q_end = lines[i][1]
            i += 1
    # "... hunted? Let's think step by step." on the question line: the cue is not question
    cm = _COT_CUE_AT_END.search(text, q_start, q_end)
    if cm and cm.start() > q_start:
        q_end = cm.start()
    q_end = max(q_end, q_start)
    steps, answer = answer_parts(text, lines[i:])
    question = TextRange(q_start, q_end)
    parts = DemoParts(
        question=question,
        steps=tuple(TextRange(s, e) for s, e in steps),
        answer=TextRange(*answer) if answer else None,
    )
    # the query's end: everything the asker wrote, minus trailing cues
    query_end = q_end
    for s, e in lines[i:]:
        if not _is_cue_line(text, s, e):
            query_end = e
    return ParsedBlock(True, parts, question, bool(steps), query_end)


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

    `plain_kind` is the kind given to text that holds no question blocks, and to
    text after the last one (a completion request's is the query; a system
    prompt's or a prompt-library file's is instruction).
    """
    b = builder or SegmentBuilder()
    blocks = split_blocks(text)
    parsed = [parse_block(bl.text) for bl in blocks]
    if not any(p.is_question for p in parsed):
        if text.strip():
            lead = len(text) - len(text.lstrip())
            body = text.strip()
            b.add(plain_kind, body, message_index=message_index, source_start=base + lead,
                  role=role, prompt=prompt, source=source)
        return b

    # merge continuation blocks (no question marker) into a preceding unanswered question:
    # reasoning that contains blank lines, or an answer set apart by one
    merged: list[tuple[Block, ParsedBlock]] = []
    for bl, p in zip(blocks, parsed):
        if merged and not p.is_question and merged[-1][1].is_question and merged[-1][1].parts \
                and merged[-1][1].parts.answer is None:
            prev, _ = merged[-1]
            joined = Block(prev.start, bl.end, text[prev.start : bl.end])
            merged[-1] = (joined, parse_block(joined.text))
        else:
            merged.append((bl, p))

    q_positions = [i for i, (_, p) in enumerate(merged) if p.is_question]
    first_q, last_q = q_positions[0], q_positions[-1]
    # text after the last question block is one segment of the caller's plain kind
    tail = merged[last_q + 1 :]
    for i, (bl, p) in enumerate(merged[: last_q + 1]):
        if not p.is_question:
            kind = SegmentKind.INSTRUCTION if i < first_q else SegmentKind.CONTEXT
            b.add(kind, bl.text, message_index=message_index, source_start=base + bl.start,
                  role=role, prompt=prompt, source=source)
            continue
        assert p.parts is not None
        if i == last_q and p.parts.answer is None:
            # the query: the question (marker excluded) and what follows it, cues excluded
            q = p.parts.question
            qtext = bl.text[q.start : p.query_end]
            b.add(SegmentKind.QUERY, qtext, message_index=message_index,
                  source_start=base + bl.start + q.start, role=role, prompt=prompt, source=source)
            continue
        kind = SegmentKind.DEMONSTRATION if p.has_reasoning else SegmentKind.EXAMPLE
        anchors = (Anchor(0, len(bl.text), message_index, base + bl.start),)
        b.add(kind, bl.text, anchors=anchors, parts=p.parts, role=role, prompt=prompt, source=source)
    if tail:
        start, end = tail[0][0].start, tail[-1][0].end
        b.add(plain_kind, text[start:end], message_index=message_index, source_start=base + start,
              role=role, prompt=prompt, source=source)
    return b


# -- shapes: a prompt (or a list of them), and a completion request body ------------------


def prompt_segments(prompt: str | Sequence[str], plain_kind: SegmentKind = SegmentKind.QUERY,
                    builder: SegmentBuilder | None = None) -> list[Segment]:
    """A completion prompt (or a list of them, one `prompt` group each)."""
    b = builder or SegmentBuilder()
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ParseError(f"prompt[{i}] must be a string, got {type(p).__name__}")
        parse_completion(p, b, prompt=i, plain_kind=plain_kind)
    return b.segments


class Prompts:
    """A prompt string, or a list of them (prompts 0, 1, ...): reader and writer."""

    name = "prompt"

    def read(self, prompt: Any) -> list[Segment]:
        if not isinstance(prompt, (str, list, tuple)):
            raise ParseError("a prompt must be a string or a list of strings")
        return prompt_segments(prompt)

    def write(self, prompt: Any, result: "GuardResult") -> Any:
        if isinstance(prompt, str):
            return apply_to_text(prompt, result.edits)
        return [apply_to_text(p, result.edits, prompt=i) for i, p in enumerate(prompt)]

    def text(self, prompt: Any) -> str:
        if isinstance(prompt, str):
            return prompt
        return "\n\n".join(p for p in prompt or [] if isinstance(p, str))


class CompletionBody:
    """An OpenAI completion request body (`prompt`, and `suffix`, the text after the
    insertion point, as context): reader and writer; every other field is kept."""

    name = "completion"

    def read(self, body: Any) -> list[Segment]:
        if not isinstance(body, dict) or "prompt" not in body:
            raise ParseError("'prompt' is required")
        if not isinstance(body["prompt"], (str, list)):
            raise ParseError("'prompt' must be a string or a list of strings")
        b = SegmentBuilder()
        prompt_segments(body["prompt"], builder=b)
        # the suffix (text after the insertion point) is read by the model too
        suffix = body.get("suffix")
        if isinstance(suffix, str) and suffix.strip():
            b.add(SegmentKind.CONTEXT, suffix, field=("suffix",), source="suffix")
        return b.segments

    def write(self, body: dict[str, Any], result: "GuardResult") -> dict[str, Any]:
        return apply_to_fields({**body, "prompt": PROMPT.write(body["prompt"], result)}, result.edits)

    def text(self, body: dict[str, Any]) -> str:
        return PROMPT.text(body.get("prompt"))


PROMPT = Prompts()
COMPLETION = CompletionBody()
