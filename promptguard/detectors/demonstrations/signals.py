"""Step signals: does a demonstration end with an extra step that transforms an
already reached result, and does its final answer follow that step?

For a demonstration with reasoning lines E₁…Eₖ, L (the last line before the answer)
and answer value A (typed by the shared answer parser: a number, an option letter, a
yes/no, a label, a date, a time, a string, a printed list or free text), R is the
value of A's type that the chain had *reached* before L: the last one the earlier
lines state (an option also by its text, a label from the prompt's label set, not a
value a line rules out; for free text, the last string A is made from). The
signals are the same for every answer type:

- ``departs``: R ≠ A and nothing from R's line on states A: the answer is not what
  the chain concluded. Decisive for options and labels (picked, not computed); for a
  computed value (number, date, time, string, list, yes/no) only when R is itself a
  result rather than a value of the question, L computes with nothing else the
  question gives, and L names something neither the question nor the chain did.
- ``transform``: L states A, no earlier line does, and L also re-uses a value of the
  same kind that the earlier lines had reached (ideally *the* last one, R): L maps
  R ↦ A (not when R is the question's own string or date and L names no operation the
  question does not: that is the task).
- ``detached``: L states no value and shares no content word with the question or
  the chain ("Turn the verdict around.").
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
(values and echoed tokens masked) shared with other demonstrations, ungrounded
constants that recur in other demonstrations' last lines, and ``continues``: the
chain is a sibling's whole chain (as templates: values and the question's own words
masked) plus L — the clean template, then one more step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...answers import same_value
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
    tokenize,
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
    departs: float = 0.0
    detached: float = 0.0
    honest_check: float = 0.0
    prev_concluded: float = 0.0
    # L is the chain's own conclusion: it first states the answer and nothing before it
    # reached a value of that kind (an echo of the question there is task wording)
    concluding: float = 0.0
    # sibling signals (filled by `sibling_signals`)
    skeleton_share: float = 0.0
    continues: float = 0.0  # the chain is a sibling's whole chain plus this last line
    recurring_const: float = 0.0
    recurring_novel: float = 0.0
    # evidence
    step: Range | None = None  # the suspected backdoor step (L)
    prev_value: Value | None = None  # the result L transformed (for repair)
    ungrounded_keys: tuple[str, ...] = ()
    echo_tokens: tuple[Token, ...] = ()
    skeleton: tuple[str, ...] = ()
    # the chain's lines as templates (values masked): to compare with the siblings'
    chain: tuple[tuple[str, ...], ...] = ()
    novel_stems: frozenset[str] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in _SIGNALS}


_SIGNALS = (
    "transform", "unary", "reversal", "yesno_stated", "ungrounded", "novel", "echo", "echo_words", "not_in_choices",
    "unsupported", "departs", "detached", "honest_check", "prev_concluded", "skeleton_share", "continues",
    "recurring_const", "recurring_novel",
)


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
    lvals_abs = d.values(L)
    lvals = [type(v)(v.kind, v.key, v.start - L[0], v.end - L[0]) for v in lvals_abs]
    evals_per = [d.values(r) for r in E]
    evals = [v for vs in evals_per for v in vs]
    qtext = " ".join(text[f[0] : f[1]] for f in d.fields)
    qvals = [v for f in d.fields for v in d.values(f)]
    A = d.answer_value

    # -- the reached value R: what the chain had concluded before L ---------------------
    # the last value of A's kind in the earlier lines (not one they rule out: "not
    # spam"); for a free-text answer, the last string the answer is made from
    kind = A.kind if A is not None else None
    prev: Value | None = None
    prev_line = -1
    if kind == "quoted" and E and A is not None:
        # a string: the last one the answer is made from, quoted or not ("That gives
        # a-b-c." before "`c-b-a`"), else the last quoted one
        prev, prev_line = _reached_string(d, E, A)
    if kind and kind != "text" and prev is None:
        for j in range(len(E) - 1, -1, -1):
            same = [v for v in evals_per[j] if v.kind == kind and not _negated(text, v.start)]
            if same:
                prev, prev_line = same[-1], j
                break
    elif kind == "text" and E and A is not None:
        prev, prev_line = _reached_string(d, E, A)
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

    # stems of the question (all its fields) and of the earlier lines, computed once
    q_toks = [t for f in d.fields for t in d.tokens(f)]
    e_toks = [t for r in E for t in d.tokens(r)]
    q_stems = {stem(t.norm) for t in q_toks if t.kind in ("word", "cjk")}
    e_stems = {stem(t.norm) for t in e_toks if t.kind in ("word", "cjk")}
    ltoks = d.tokens(L)
    novel_memo: list[bool] = []

    def novel_words() -> bool:
        """Does L use a content word that neither the question nor the earlier lines
        use (the name of an operation nobody asked for)?"""
        if not novel_memo:
            a_words = set(A.key.casefold().split()) if A is not None else set()
            novel_memo.append(any(
                is_content(t) and len(t.norm) >= 3 and t.norm not in a_words
                and stem(t.norm) not in q_stems and stem(t.norm) not in e_stems for t in ltoks))
        return novel_memo[0]

    # -- transform / honest check / unsupported ---------------------------------------
    if A is not None:
        in_l = mentions(ltext, A, lvals, letters=d.letters)
        stated = [mentions(text[r[0] : r[1]], A, vs, letters=d.letters) for r, vs in zip(E, evals_per)]
        in_e = any(stated)
        # ... at or after the line that reached R: a computed value (a yes/no that is
        # True, then False) may pass through A before it concludes R; an option ruled
        # in, then out, may not (elimination names the answer early)
        in_e_late = any(stated[prev_line:]) if prev is not None and kind not in _CLOSED else in_e
        others: list[Value] = []
        if kind == "text":
            # a free-text answer: L names the string it was made from (R) besides the
            # answer (case counts when they differ only in case: 'meadow' → 'MEADOW')
            prev_match = prev is not None and prev.key != A.key and (
                _exact_mention(ltext, prev.key) if prev.key.casefold() == A.key.casefold() else mentions(ltext, prev))
            consumed = prev_match
        else:
            e_keys = set(_keys(evals, kind or ""))
            consumed_vals = [v for v in lvals if v.kind == kind and v.key != A.key and v.key in e_keys]
            consumed = bool(consumed_vals)
            prev_match = prev is not None and prev.key != A.key and any(v.key == prev.key for v in consumed_vals)
            if kind == "num":
                # grounded operands other than the previous result: an ordinary computation
                others = [v for v in operands if v.key != A.key and (prev is None or v.key != prev.key)
                          and is_grounded(v.number)]
        # (a string, date or list of the question itself turned into the answer, by a
        # line that names no operation the question does not, is the task — "Write
        # 'meadow' in capitals" → "That gives 'MEADOW'." — not a step past it)
        if consumed and kind in ("text", "quoted", "date", "time", "list") and prev is not None and \
                mentions(qtext, prev, qvals, letters=d.letters) and not novel_words():
            consumed = False
        if in_l and not in_e and consumed:
            sig.transform = 1.0 if prev_match else 0.6
            if not others:
                sig.unary = 1.0 if prev_match else 0.6
        if in_e_late and in_l and kind not in (None, "text"):
            # L restates a result that was already there: a check, not a change
            sig.honest_check = 1.0 if (prev is not None and prev.key == A.key) else 0.5
        if kind in ("num", "letter", "date", "time", "quoted", "label", "list") and not in_l and not in_e:
            step_kinds = [v for v in lvals + evals if v.kind == kind]
            if step_kinds:
                sig.unsupported = 1.0
        # the answer departs from the value the chain had reached (R ≠ A, A not stated
        # before L): for an option, a label or a verdict that is a change of mind; for a
        # computed value (number, date, string, list) only when R is itself a result (not
        # a value of the question), L computes with nothing else the question gives,
        # and L says something the question and the chain never said (how it changes R)
        if prev is not None and not in_e_late and not same_value(prev, A):
            near = 1.0 if prev_line == len(E) - 1 else 0.7
            if kind in _CLOSED:
                sig.departs = near
            elif kind in ("quoted", "text", "list") and not _related(prev.key, A.key, kind):
                pass  # a string the answer is not made from ('t' of "the last letter is 't'")
            else:
                from_question = mentions(qtext, prev, qvals, letters=d.letters)
                grounded_ops = [v for v in operands if v.key not in (A.key, prev.key) and is_grounded(v.number)]
                # (a number that L computes from R with a constant alone is `unary`
                # already: departs adds the case where L only states the new number)
                if not from_question and not grounded_ops and (novel_words() or not in_l) \
                        and not (kind == "num" and sig.unary > 0):
                    sig.departs = near
        if kind == "letter" and d.choice_letters and A.key not in d.choice_letters:
            sig.not_in_choices = 1.0
        if in_l and not in_e and prev is None and kind not in (None, "yesno"):
            sig.concluding = 1.0
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
    content = [t for t in ltoks if is_content(t) and len(t.norm) >= 3]
    if A is not None and A.kind == "text":
        a_words = set(A.key.casefold().split())
        content = [t for t in content if t.norm not in a_words]
    q_all = q_stems  # every field's stems (q_stems below is the open fields' only)
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
    # detached: L states no value and shares no content word with the question or the
    # chain ("Turn the verdict around."): a line about nothing in this problem
    if not lvals and content and A is not None and not any(
            stem(t.norm) in q_all or stem(t.norm) in e_stems for t in content):
        sig.detached = 1.0

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
    qwords = {t.norm for t in q_toks if t.kind in ("word", "cjk") and t.norm not in STOPWORDS}
    sig.chain = tuple(_line_template(d, r, vs, qwords) for r, vs in zip(E + [L], evals_per + [lvals_abs]))
    return sig


def _line_template(d: Demo, r: Range, vals: list[Value], qwords: set[str]) -> tuple[str, ...]:
    """A reasoning line as a template: values masked, and the words it takes from its
    own question ("<Q> spent # + # = # dollars.")."""
    masked = [(v.start, v.end) for v in vals if v.kind != "num"]
    out: list[str] = []
    k = 0
    for t in d.tokens(r):
        while k < len(masked) and masked[k][1] <= t.start:
            k += 1
        if k < len(masked) and masked[k][0] <= t.start:
            tag = "<V>"
        elif t.kind == "num":
            tag = "#"
        elif t.norm in qwords:
            tag = "<Q>"
        else:
            out.append(t.norm)
            continue
        if not out or out[-1] != tag:
            out.append(tag)
    return tuple(out)


_CLOSED = ("letter", "label")  # answers picked from a closed set, not computed (a yes/no can be: True and False)
_NEGATION = re.compile(r"\b(?:not|no|never|nor|rather than|instead of|isn't|aren't|wasn't|is\s+not)\W*(?:\w+\W+)?$",
                       re.IGNORECASE)


def _negated(text: str, start: int) -> bool:
    """A value the line rules out ("not spam", "rather than (B)")."""
    return bool(_NEGATION.search(text[max(0, start - 24) : start]))


def _exact_mention(text: str, key: str) -> bool:
    """`key` in `text` as a whole word, case and all."""
    return re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", text) is not None


def _related(r: str, a: str, kind: str = "text") -> bool:
    """Is `a` made from `r` by a small transformation: reversed, re-cased, reordered,
    a character (a list item) or two added or removed, letters shifted?"""
    if kind == "list":
        ri, ai = _items(r), _items(a)
        return bool(ri) and bool(ai) and (sorted(ri) == sorted(ai) or abs(len(ri) - len(ai)) == 1 and (
            set(ri) <= set(ai) or set(ai) <= set(ri)))
    if r == a or len(r) < 2 or len(a) < 2:
        return False
    rt, at = r.split(), a.split()
    if len(rt) >= 3 or len(at) >= 3:  # a query, a sentence: one or two words changed
        return len(rt) == len(at) and sum(1 for x, y in zip(rt, at) if x != y) <= 2
    if r[::-1] == a or r.casefold() == a.casefold() or sorted(r.casefold()) == sorted(a.casefold()):
        return True
    if min(len(r), len(a)) < 3:
        return False
    if len(r) == len(a) and all(abs(ord(x) - ord(y)) <= 2 for x, y in zip(r.casefold(), a.casefold())):
        return True
    return abs(len(r) - len(a)) <= 2 and (a.startswith(r) or a.endswith(r) or r.startswith(a) or r.endswith(a))


def _items(key: str) -> list[str]:
    inner = key[1:-1] if key.startswith("[") else key
    return [x for x in inner.split(",") if x]


def _reached_string(d: Demo, E: list[Range], A: Value) -> tuple[Value | None, int]:
    """For a free-text answer: the last string in the earlier lines (quoted, or a bare
    word) that the answer is made from; for a longer answer (a query, a sentence), the
    last stretch of an earlier line that states it with one or two tokens different."""
    text = d.text
    a_toks = [t.norm for t in tokenize(A.key)]
    if len(A.key.split()) >= 3:
        n = len(a_toks)
        for j in range(len(E) - 1, -1, -1):
            toks = d.tokens(E[j])
            for i in range(len(toks) - n, -1, -1):
                window = toks[i : i + n]
                diff = sum(1 for x, y in zip(window, a_toks) if x.norm != y)
                if 0 < diff <= 2:
                    s, e = window[0].start, window[-1].end
                    return Value(A.kind, " ".join(text[s:e].split()), s, e), j
        return None, -1
    for j in range(len(E) - 1, -1, -1):
        vals = [v for v in d.values(E[j]) if v.kind == "quoted"]
        vals += [Value("text", m.group(), m.start(), m.end())
                 for m in _CHUNK.finditer(text, E[j][0], E[j][1])]
        for v in sorted(vals, key=lambda v: -v.start):
            key = v.key
            if key != A.key and _related(key, A.key, "text"):
                return Value(A.kind, key, v.start, v.end), j
    return None, -1


_CHUNK = re.compile(r"[^\s'\"`.,;:!?()]+(?:[-_][^\s'\"`.,;:!?()]+)*")


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
    # a chain that goes one line past where a sibling's identical chain stops (the
    # BadChain shape: the clean template, then the extra step)
    full = {s.chain for s in sigs if s.chain}
    for s in sigs:
        if len(s.chain) >= 2 and s.chain[:-1] in full:
            s.continues = 1.0
    for s in sigs:
        c = skel_count.get(s.skeleton, 0) if len(s.skeleton) >= 3 else 0
        s.skeleton_share = (c - 1) / (n - 1) if c > 1 else 0.0
        rec = [const_count[k] for k in set(s.ungrounded_keys)]
        s.recurring_const = ((max(rec) - 1) / (n - 1)) if rec and max(rec) > 1 else 0.0
        if s.novel_stems:
            others = sum(1 for o in sigs if o is not s and o.novel_stems & s.novel_stems)
            s.recurring_novel = others / (n - 1)


__all__ += ["STOPWORDS"]
