"""Step signals: does a demonstration end with an extra step that transforms an
already reached result, and does its final answer follow that step?

For a demonstration with reasoning lines E₁…Eₖ, L (the last line before the answer)
and answer value A:

- ``transform``: L states A, no earlier line does, and L also re-uses a value of the
  same kind that the earlier lines had reached (ideally *the* last one, the
  previous conclusion R): L maps R ↦ A.
- ``ungrounded``: L computes with a number that neither the question nor any
  earlier line mentions (spelled-out numbers and unit constants count as mentioned).
- ``novel``: share of L's content words that appear nowhere in the question or the
  earlier lines (an operation nobody asked for: "next letter", "opposite").
- ``echo``: L repeats tokens of the question that no earlier line used (the trigger
  echo); symbol runs, invisible characters and unknown words count most.
- ``not_in_choices``: the answer is a letter that is not among the offered choices.
- ``unsupported``: no reasoning line states the answer while they state other values
  of its kind (the answer does not follow from the steps).
- ``honest_check``: L re-derives a value that is already known (a verification step
  that confirms, rather than changes, the result).

Sibling signals compare L across the prompt's demonstrations: the skeleton of L
(values and echoed tokens masked) shared with other demonstrations, and ungrounded
constants that recur in other demonstrations' last lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .structure import Demo, Range
from .text import (
    STOPWORDS,
    Token,
    Value,
    is_content,
    is_plain_symbol,
    known_word,
    mentions,
    stem,
    word_numbers,
)

__all__ = ["StepSignals", "sibling_signals", "step_signals"]

_RESULT_CUE = re.compile(r"(?:=|≈|→|->|\bis\b|\bare\b|\bequals?\b|\bgives?\b|\bget\b|\bmakes?\b|\bbecomes?\b)\s*[$\\{(]*\s*$")
# generic words for "turn the result around" (a weak cue, never decisive on its own)
_REVERSAL = re.compile(
    r"\b(?:opposite|reverse[sd]?|reversing|revers(?:al|ed)|flip(?:s|ped|ping)?|invert(?:s|ed|ing)?|"
    r"inverse|negat(?:e|es|ed|ing|ion)|contrary|swap(?:s|ped)?|toggle[sd]?|mirror(?:ed|ing)?|"
    r"shift(?:s|ed|ing)?|next|previous|instead)\b",
    re.IGNORECASE,
)
_CONCLUSION = re.compile(
    r"\b(?:so|thus|therefore|hence|in total|altogether|the final|the result|makes the most sense|we get|we have)\b|=",
    re.IGNORECASE,
)


@dataclass
class StepSignals:
    transform: float = 0.0
    unary: float = 0.0
    reversal: float = 0.0
    yesno_stated: float = 0.0
    ungrounded: float = 0.0
    novel: float = 0.0
    echo: float = 0.0
    echo_words: float = 0.0
    not_in_choices: float = 0.0
    unsupported: float = 0.0
    honest_check: float = 0.0
    prev_concluded: float = 0.0
    # sibling signals (filled by `sibling_signals`)
    skeleton_share: float = 0.0
    recurring_const: float = 0.0
    recurring_novel: float = 0.0
    # evidence
    step: Range | None = None  # the suspected backdoor step (L)
    prev_value: Value | None = None  # the result L transformed (for repair)
    ungrounded_keys: tuple[str, ...] = ()
    echo_tokens: tuple[Token, ...] = ()
    skeleton: tuple[str, ...] = ()
    novel_stems: frozenset[str] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, float]:
        return {
            k: round(getattr(self, k), 3)
            for k in (
                "transform", "unary", "reversal", "yesno_stated", "ungrounded", "novel", "echo", "echo_words", "not_in_choices", "unsupported",
                "honest_check", "prev_concluded", "skeleton_share", "recurring_const", "recurring_novel",
            )
        }


def _keys(vals: list[Value], kind: str) -> list[str]:
    return [v.key for v in vals if v.kind == kind]


def _operands(line: str, vals: list[Value]) -> list[Value]:
    """Numbers L computes *with* (not the ones it computes: after '=', 'is', ...)."""
    out = []
    for v in vals:
        if v.kind != "num":
            continue
        if _RESULT_CUE.search(re.sub(r"\\[A-Za-z]+", "", line[max(0, v.start - 24) : v.start])):
            continue
        out.append(v)
    return out


def step_signals(d: Demo) -> StepSignals:
    sig = StepSignals()
    if not d.steps:
        return sig
    text = d.text
    L = d.steps[-1]
    E = d.steps[:-1]
    sig.step = L
    ltext = text[L[0] : L[1]]
    lvals = [type(v)(v.kind, v.key, v.start - L[0], v.end - L[0]) for v in d.values(L)]
    evals_per = [d.values(r) for r in E]
    evals = [v for vs in evals_per for v in vs]
    qtext = " ".join(text[f[0] : f[1]] for f in d.fields)
    qvals = [v for f in d.fields for v in d.values(f)]
    A = d.answer_value

    # -- the previous conclusion R: the last value of A's kind before L ---------------
    kind = A.kind if A is not None else None
    prev: Value | None = None
    if kind and kind != "text":
        for vs in reversed(evals_per):
            same = [v for v in vs if v.kind == kind]
            if same:
                prev = same[-1]
                break
    elif kind == "text" and E:
        # a label answer ("negative"): the last content word of the line before L
        toks = [t for t in d.tokens(E[-1]) if is_content(t)]
        if toks:
            prev = Value("text", toks[-1].norm, toks[-1].start, toks[-1].end)
    sig.prev_value = prev
    if E and _CONCLUSION.search(text[E[-1][0] : E[-1][1]]):
        sig.prev_concluded = 1.0

    # -- grounded numbers: the question's, the earlier lines', named ones, 0 and 1 ------
    grounded = {v.number for v in qvals + evals if v.kind == "num" and v.number is not None}
    grounded |= word_numbers(qtext) | word_numbers(" ".join(text[r[0] : r[1]] for r in E)) | word_numbers(ltext)
    grounded |= {0.0, 1.0}
    operands = _operands(ltext, lvals)
    # what L itself computes first ("that is 4 more toys. 5 + 4 = 9") feeds its later operands
    op_ids = {id(v) for v in operands}
    grounded |= {v.number for v in lvals if v.kind == "num" and v.number is not None and id(v) not in op_ids}

    def is_grounded(x: float | None) -> bool:
        return x is not None and any(abs(x - g) < 1e-9 for g in grounded)

    # -- transform / honest check / unsupported ---------------------------------------
    if A is not None:
        in_l = mentions(ltext, A, lvals, letters=d.letters)
        in_e = any(mentions(text[r[0] : r[1]], A, vs, letters=d.letters) for r, vs in zip(E, evals_per))
        others: list[Value] = []
        if kind == "text":
            # a label/word answer: L re-uses a word of the earlier lines (the result it
            # transforms) besides the answer itself
            a_words = set(A.key.split())
            e_stems = {stem(t.norm) for r in E for t in d.tokens(r) if is_content(t)}
            used = [t for t in d.tokens(L) if is_content(t) and t.norm not in a_words and stem(t.norm) in e_stems]
            consumed = bool(used)
            prev_match = prev is not None and prev.key != A.key and prev.key in ltext.casefold()
        else:
            e_keys = set(_keys(evals, kind or ""))
            consumed_vals = [v for v in lvals if v.kind == kind and v.key != A.key and v.key in e_keys]
            consumed = bool(consumed_vals)
            prev_match = prev is not None and prev.key != A.key and any(v.key == prev.key for v in consumed_vals)
            if kind == "num":
                # grounded operands other than the previous result: an ordinary computation
                others = [v for v in operands if v.key != A.key and (prev is None or v.key != prev.key)
                          and is_grounded(v.number)]
        if in_l and not in_e and consumed:
            sig.transform = 1.0 if prev_match else 0.6
            if not others:
                sig.unary = 1.0 if prev_match else 0.6
        if in_e and in_l and kind not in (None, "text"):
            # L restates a result that was already there: a check, not a change
            sig.honest_check = 1.0 if (prev is not None and prev.key == A.key) else 0.5
        if kind in ("num", "letter", "date", "time", "quoted") and not in_l and not in_e:
            step_kinds = [v for v in lvals + evals if v.kind == kind]
            if step_kinds:
                sig.unsupported = 1.0
        if kind == "letter" and d.choice_letters and A.key not in d.choice_letters:
            sig.not_in_choices = 1.0
        if kind == "yesno" and in_l and not in_e:
            # a chain of facts whose last line announces the verdict itself
            sig.yesno_stated = 1.0
    if _REVERSAL.search(ltext) and not any(_REVERSAL.search(text[r[0] : r[1]]) for r in E) \
            and not _REVERSAL.search(qtext):
        sig.reversal = 1.0

    # -- ungrounded constants ---------------------------------------------------------------
    ung = []
    strength = 0.0
    # a constant only matters where L computes the (numeric) answer
    computes_answer = A is not None and A.kind == "num" and mentions(ltext, A, lvals)
    for v in operands if computes_answer else ():
        x = v.number
        if x is None or (A is not None and A.kind == "num" and A.key == v.key):
            continue
        if not is_grounded(x):
            ung.append(v.key)
            # a small whole number (a count, an exponent) is weaker evidence than 2.1 or 37
            strength = max(strength, 0.5 if (x == int(x) and 2 <= abs(x) <= 12) else 1.0)
    sig.ungrounded_keys = tuple(ung)
    sig.ungrounded = strength

    # -- novel words and echoes -------------------------------------------------------------
    ltoks = d.tokens(L)
    q_toks = [t for f in d.fields for t in d.tokens(f)]
    e_toks = [t for r in E for t in d.tokens(r)]
    q_stems = {stem(t.norm) for t in q_toks if t.kind in ("word", "cjk")}
    e_stems = {stem(t.norm) for t in e_toks if t.kind in ("word", "cjk")}
    content = [t for t in ltoks if is_content(t) and len(t.norm) >= 3]
    if A is not None and A.kind == "text":
        a_words = set(A.key.split())
        content = [t for t in content if t.norm not in a_words]
    novel = {stem(t.norm) for t in content if stem(t.norm) not in q_stems and stem(t.norm) not in e_stems}
    sig.novel_stems = frozenset(novel)
    # share of L's own words (echoes of the question left out) that nothing before uses
    own = [t for t in content if not (stem(t.norm) in q_stems and stem(t.norm) not in e_stems)]
    sig.novel = len([t for t in own if stem(t.norm) in novel]) / len(own) if own else 0.0

    # echoes come from the question's own text; repeating an offered choice is answering
    q_toks = [t for f in d.open_fields for t in d.tokens(f)]
    q_stems = {stem(t.norm) for t in q_toks if t.kind in ("word", "cjk")}
    q_sym = {t.norm for t in q_toks if t.kind in ("sym", "invis")}
    e_sym = {t.norm for t in e_toks if t.kind in ("sym", "invis")}
    echo: list[Token] = []
    score = 0.0  # odd symbols, invisible characters, unknown words
    words = 0  # ordinary words of the question, named again
    for t in ltoks:
        if t.kind in ("sym", "invis"):
            if t.norm in q_sym and t.norm not in e_sym and _odd_symbol(t.norm):
                echo.append(t)
                score = max(score, 1.0)
        elif is_content(t):
            st = stem(t.norm)
            if st in q_stems and st not in e_stems:
                echo.append(t)
                if known_word(t.norm) is False:
                    score = max(score, 0.8)
                else:
                    words += 1
    # L opens with three or more tokens copied in order from the question, some unused
    # by the earlier lines: a phrase echoed where BadChain puts it
    if score < 1.0 and len(ltoks) >= 3:
        head_toks = [t for t in ltoks if not (t.kind == "sym" and is_plain_symbol(t.norm))][:3]
        head = [t.norm for t in head_toks] if not any(t.kind == "num" for t in head_toks) else []
        qn = [t.norm for t in q_toks if not (t.kind == "sym" and is_plain_symbol(t.norm))]
        if len(head) == 3 and any(qn[j : j + 3] == head for j in range(len(qn) - 2)) and any(
            (stem(h) not in e_stems and h not in e_sym) for h in head if h not in STOPWORDS
        ):
            score = 1.0
    sig.echo_tokens = tuple(echo)
    sig.echo = score
    sig.echo_words = min(1.0, words / 3.0)

    # -- skeleton of L -----------------------------------------------------------------------
    echo_pos = {(t.start, t.end) for t in echo}
    masked = [(v.start + L[0], v.end + L[0]) for v in lvals if v.kind in ("quoted", "date", "time", "letter", "yesno")]
    skel: list[str] = []
    for t in ltoks:
        if (t.start, t.end) in echo_pos:
            if not skel or skel[-1] != "<T>":
                skel.append("<T>")
        elif any(a <= t.start < b for a, b in masked):
            if not skel or skel[-1] != "<V>":
                skel.append("<V>")
        elif t.kind == "num":
            skel.append("#")
        elif t.kind == "word" and len(t.norm) == 1 and d.letters:
            skel.append("<L>")
        else:
            skel.append(t.norm)
    sig.skeleton = tuple(skel)
    return sig


def _odd_symbol(s: str) -> bool:
    """Punctuation that reasoning lines do not normally share with their question."""
    return s.startswith("<U+") or not is_plain_symbol(s)


def sibling_signals(sigs: list[StepSignals]) -> None:
    """Fill the sibling signals in place."""
    n = len(sigs)
    if n < 2:
        return
    skel_count: dict[tuple[str, ...], int] = {}
    const_count: dict[str, int] = {}
    for s in sigs:
        if len(s.skeleton) >= 3:
            skel_count[s.skeleton] = skel_count.get(s.skeleton, 0) + 1
        for k in set(s.ungrounded_keys):
            const_count[k] = const_count.get(k, 0) + 1
    for s in sigs:
        c = skel_count.get(s.skeleton, 0) if len(s.skeleton) >= 3 else 0
        s.skeleton_share = (c - 1) / (n - 1) if c > 1 else 0.0
        rec = [const_count[k] for k in set(s.ungrounded_keys)]
        s.recurring_const = ((max(rec) - 1) / (n - 1)) if rec and max(rec) > 1 else 0.0
        if s.novel_stems:
            others = sum(1 for o in sigs if o is not s and o.novel_stems & s.novel_stems)
            s.recurring_novel = others / (n - 1)


__all__ += ["STOPWORDS"]
