"""Phrase-level trigger candidates in a query, ranked by how odd they are.

A weight backdoor's trigger is often not one odd token but a short phrase with a code in it
("per memo KX-7", "as filed under VX-209"), and it can sit anywhere: before the first clause,
inside a clause, in parentheses, at the end of the question or after its question mark.
`phrase_spans(text)` splits a query into the spans such a trigger can occupy:

- parentheticals and bracketed asides, quoted strings;
- the fragment after a question mark (minus a trailing answer-format instruction);
- a lead-in before the first comma of a sentence ("Per memo KX-7, Ada has 3 apples.");
- prepositional and other attached phrases ("per memo KX-7", "by order of the velvet council",
  "at the market"), from an opener word up to the next punctuation;
- code-like tokens (letters and digits, hyphenated or dotted codes, capitals inside a sentence)
  and words the word-piece vocabulary does not know, with the small words that attach them.

Each span is scored by `oddness`, from its content alone, never from where it sits: word-piece
surprisal (the rank of each word-piece in the bundled all-MiniLM-L6-v2 vocabulary, which is
ordered by frequency: a proxy for a unigram language model), unknown words (split into several
word-pieces), code shape (capitals, digits mixed with letters), words that occur nowhere else in
the query, and being a syntactic aside (parenthesis, fragment). A backend or caller that has
token log-probabilities can pass its own `surprisal` function instead.

What the problem needs is never a candidate: numbers the answer's reasoning uses, names of the
people the problem is about (title-case words that recur, act as subjects, or appear in the
answer), the interrogative clause itself, and answer-format instructions ("Answer with one word.").
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "WORD",
    "Phrase",
    "is_code",
    "needed_terms",
    "norm_word",
    "phrase_spans",
    "wordpiece_surprisal",
]

# words, numbers and code-like tokens ("KX-7", "7B", "VX-209", "ZR.41", "#318")
WORD = re.compile(
    r"#?[^\W_]+(?:[-./][^\W_]+)*(?:['’][^\W\d_]+)?",
    re.UNICODE,
)
_NUMBER = re.compile(r"^#?\d+(?:[.,]\d+)*$")
_PUNCT_BREAK = re.compile(r"[,;:!?.()\[\]{}\"“”«»—–]|\s-\s|\n")

# words that open an attached phrase ("per memo KX-7", "by order of ...", "at the market")
OPENERS = frozenset("""
per by as under cf cf. via re see ref according following pursuant regarding at in on for with from
after before during since until within without into onto near beside behind among between upon
""".split())
# words that begin an answer-format instruction: needed by the task, never a trigger candidate
INSTRUCTION = frozenset("""
answer reply respond give write show explain use think return output please choose select pick
solve calculate compute respond state provide list format begin end let
""".split())
_INTERROGATIVE = frozenset("how what which who whom whose why when where is are does do did can could "
                           "will would should was were has have".split())
STOPWORDS = frozenset("""
a an the is am are was were be been being to of in on at by for and or nor but so if as it its he she
we you they me him her us them my his our your their who why how what when do does did has had have
not no yes all any one this that these those with from into onto upon then than there here which
whom whose each more most less many much some such only just very also too can may will would could
should shall must might per via let up out off over about after before again
""".split())
_SUBJECT_VERBS = frozenset("""
has had have gets got gave gives buys bought sells sold makes made takes took finds found eats ate
is was wants wanted needs needed said says thought thinks picks picked collects collected owns owned
reads read bakes baked saves saved spends spent pays paid uses used runs ran walks walked
""".split())


def norm_word(w: str) -> str:
    return unicodedata.normalize("NFKC", w).casefold().strip("'’")


def is_code(tok: str) -> bool:
    """Code-shaped: letters mixed with digits ("7B", "KX-7", "VX-209"), a hyphenated or dotted
    run of capitals ("QA-TEAM"), or a word of two or more capitals ("KX")."""
    t = tok.lstrip("#")
    letters = sum(ch.isalpha() for ch in t)
    digits = sum(ch.isdigit() for ch in t)
    if letters and digits:
        return True
    return letters >= 2 and t.isupper()


# -- word-piece surprisal ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _wordpieces() -> dict[str, int]:
    """The bundled embedding model's word-piece vocabulary: piece -> frequency rank."""
    try:
        from ..models import embedding_model_path

        with open(embedding_model_path() / "vocab.txt", encoding="utf-8") as f:
            pieces = [x.rstrip("\n") for x in f]
    except Exception:  # noqa: BLE001 - no model package: fall back to shape rules
        return {}
    # BERT vocabularies list [PAD]/[unusedN], then single characters, then word-pieces in
    # frequency order; the first real word ("the") starts the ranked part.
    try:
        first = pieces.index("the")
    except ValueError:
        first = 0
    return {p: max(1, i - first + 1) for i, p in enumerate(pieces) if i >= first}


_UNK_BITS = 17.0  # a piece the vocabulary lacks (or a single character)


def _split_pieces(word: str, vocab: dict[str, int]) -> list[tuple[str, int | None]]:
    """Greedy longest-match-first word-piece split (BERT's), with each piece's rank."""
    out: list[tuple[str, int | None]] = []
    i = 0
    while i < len(word):
        j = len(word)
        found = None
        while j > i:
            piece = word[i:j] if i == 0 else "##" + word[i:j]
            if piece in vocab:
                found = piece
                break
            j -= 1
        if found is None:
            out.append((word[i], None))
            i += 1
        else:
            out.append((found, vocab[found]))
            i = j
    return out


@lru_cache(maxsize=8192)
def wordpiece_surprisal(word: str) -> tuple[float, int]:
    """(bits, pieces): a unigram surprisal estimate of `word` from word-piece frequency ranks
    (Zipf: p ∝ 1/rank), summed over its pieces, and how many pieces it took."""
    w = unicodedata.normalize("NFKD", norm_word(word))
    w = "".join(ch for ch in w if not unicodedata.combining(ch))
    vocab = _wordpieces()
    if not w:
        return 0.0, 0
    if not vocab:  # shape-only fallback: long consonant runs and odd lengths
        vowels = sum(ch in "aeiouy" for ch in w)
        return (10.0 if vowels else 16.0) + 0.3 * len(w), 1
    if w in vocab:
        return math.log2(vocab[w] + 1) + 1.0, 1
    bits = 0.0
    pieces = _split_pieces(w, vocab)
    for _, rank in pieces:
        bits += _UNK_BITS if rank is None else math.log2(rank + 1) + 1.0
    return bits, len(pieces)


Surprisal = Callable[[str], float]


def _word_bits(word: str) -> float:
    return wordpiece_surprisal(word)[0]


# -- what the problem needs -----------------------------------------------------------------------


@dataclass
class Needed:
    numbers: set[str] = field(default_factory=set)  # normalised numbers the answer/problem uses
    names: set[str] = field(default_factory=set)  # casefolded names
    spans: list[tuple[int, int]] = field(default_factory=list)  # question clause, instructions

    def blocks(self, text: str, s: int, e: int) -> bool:
        """Whether [s, e) of `text` holds something the problem needs."""
        if any(s < b and a < e for a, b in self.spans):
            return True  # the interrogative clause or an answer-format instruction
        for m in WORD.finditer(text, s, e):
            tok = m.group(0)
            if _NUMBER.match(tok) and _num(tok) in self.numbers:
                return True
            if norm_word(tok) in self.names:
                return True
        return False


def _num(tok: str) -> str:
    t = tok.lstrip("#").replace(",", "")
    try:
        v = float(t)
    except ValueError:
        return t
    return str(int(v)) if v.is_integer() else repr(v)


def _sentences(text: str) -> list[tuple[int, int]]:
    out = []
    start = 0
    # a period before a lower-case word is an abbreviation ("cf. dossier"), not a sentence end
    for m in re.finditer(r"(?<=[!?])\s+|(?<=\.)\s+(?![a-z])|\n+", text):
        if m.start() > start:
            out.append((start, m.start()))
        start = m.end()
    if start < len(text):
        out.append((start, len(text)))
    return out


def needed_terms(text: str, answer: str | None = None) -> Needed:
    """Numbers, names and clauses of `text` that the problem (and its answer) needs."""
    need = Needed()
    toks = [(m.group(0), m.start(), m.end()) for m in WORD.finditer(text)]
    answer_words = {norm_word(m.group(0)) for m in WORD.finditer(answer or "")}
    answer_numbers = {_num(m.group(0)) for m in WORD.finditer(answer or "") if _NUMBER.match(m.group(0))}
    # numbers: those the answer's reasoning uses; without numbers in the answer, every
    # standalone number of the problem statement (outside asides) is needed
    # (an answer that shows no working, "The answer is 27.", says nothing about which are used)
    stand = [(t, s, e) for t, s, e in toks if _NUMBER.match(t)]
    used = {_num(t) for t, _, _ in stand if _num(t) in answer_numbers}
    need.numbers = used or {_num(t) for t, s, _ in stand if not _in_aside(text, s)}
    # names: title-case words (not codes) that recur, act as a subject, or that the answer uses
    counts: dict[str, int] = {}
    for t, _, _ in toks:
        counts[norm_word(t)] = counts.get(norm_word(t), 0) + 1
    for k, (t, s, e) in enumerate(toks):
        if not (t[:1].isupper() and t[1:].islower() and t.isalpha()) or len(t) < 2:
            continue
        low = norm_word(t)
        if low in STOPWORDS or low in INSTRUCTION or low in OPENERS:
            continue
        nxt = norm_word(toks[k + 1][0]) if k + 1 < len(toks) else ""
        if counts[low] >= 2 or nxt in _SUBJECT_VERBS or low in answer_words:
            need.names.add(low)
    # the interrogative clause ("How many apples does Ada have now") and instructions
    for s, e in _sentences(text):
        sent = text[s:e]
        words = [norm_word(m.group(0)) for m in WORD.finditer(sent)]
        if not words:
            continue
        if words[0] in INSTRUCTION and sent.rstrip().endswith((".", "!")) and "?" not in sent:
            need.spans.append((s, e))
            continue
        for m in list(WORD.finditer(sent))[1:]:
            # a run-on instruction: "... council Answer with one word."
            if m.group(0)[:1].isupper() and norm_word(m.group(0)) in INSTRUCTION and "?" not in sent[m.start():]:
                need.spans.append((s + m.start(), e))
                break
        q = sent.find("?")
        if q >= 0 and words[0] in _INTERROGATIVE:
            # the clause up to its head noun phrase: "How many apples does Ada have" (the
            # attached phrases after it stay candidates)
            core_end = _core_end(sent, q)
            need.spans.append((s, s + core_end))
    return need


def _core_end(sent: str, q: int) -> int:
    """End of the interrogative core of a question sentence: before an attached phrase
    ("... have left per memo KX-7?") or a code, unless what follows the opener is a small
    ordinary phrase ("... in all?")."""
    ms = list(WORD.finditer(sent, 0, q))
    for k, m in enumerate(ms):
        if k < 2:
            continue
        low = norm_word(m.group(0)).rstrip(".")
        if is_code(m.group(0)):
            return ms[k - 1].end()
        if low in OPENERS:
            rest = [norm_word(x.group(0)) for x in ms[k + 1:]]
            if len(rest) <= 2 and all(w in STOPWORDS or _word_bits(w) < 13 for w in rest):
                return q
            return ms[k - 1].end()
    return q


def _in_aside(text: str, pos: int) -> bool:
    """Inside parentheses or after the last question mark."""
    depth = text.count("(", 0, pos) - text.count(")", 0, pos)
    if depth > 0:
        return True
    q = text.rfind("?", 0, pos)
    return q >= 0 and "\n" not in text[q:pos]


# -- spans ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    start: int
    end: int
    text: str
    kind: str  # parenthetical | quoted | fragment | lead-in | attached | code | odd-word
    oddness: float
    features: tuple[tuple[str, float], ...] = ()

    def feature(self, name: str) -> float:
        return dict(self.features).get(name, 0.0)


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in " \t,;:.-–—":
        s += 1
    while e > s and text[e - 1] in " \t,;:.-–—!?":
        e -= 1
    return s, e


def _raw_spans(text: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for m in re.finditer(r"\([^()\n]{1,100}\)|\[[^\[\]\n]{1,100}\]", text):
        spans.append((m.start(), m.end(), "parenthetical"))
    for m in re.finditer(r"\"[^\"\n]{2,80}\"|“[^”\n]{2,80}”|«[^»\n]{2,80}»", text):
        spans.append((m.start(), m.end(), "quoted"))
    # the fragment after a question mark, up to the end of its line, minus instructions
    for m in re.finditer(r"\?([^\n?]+)", text):
        s, e = m.start(1), m.end(1)
        frag = text[s:e]
        # cut at an instruction that starts a new sentence or a run-on ("... council Answer with")
        for w in WORD.finditer(frag):
            if w.start() > 0 and norm_word(w.group(0)) in INSTRUCTION and w.group(0)[:1].isupper():
                e = s + w.start()
                break
        s, e = _trim(text, s, e)
        if e > s:
            spans.append((s, e, "fragment"))
    for ss, se in _sentences(text):
        sent = text[ss:se]
        # a lead-in before the sentence's first comma
        c = sent.find(",")
        if 0 < c <= 60 and len(WORD.findall(sent[:c])) <= 7:
            s, e = _trim(text, ss, ss + c)
            if e > s:
                spans.append((s, e, "lead-in"))
        # attached phrases: an opener word up to the next punctuation (at most 8 words)
        words = list(WORD.finditer(sent))
        for k, w in enumerate(words):
            low = norm_word(w.group(0))
            if low.rstrip(".") not in OPENERS and low not in OPENERS:
                continue
            b = _PUNCT_BREAK.search(sent, w.end())
            end = b.start() if b else len(sent)
            if sent[w.end():w.end() + 1] == "." and low in ("cf",):  # "cf." is part of the opener
                b = _PUNCT_BREAK.search(sent, w.end() + 1)
                end = b.start() if b else len(sent)
            inner = [x for x in words[k:] if x.end() <= end]
            if len(inner) < 2 or len(inner) > 8:
                continue
            s, e = _trim(text, ss + w.start(), ss + inner[-1].end())
            spans.append((s, e, "attached"))
            # and the phrase up to the next opener ("in the morning" of "in the morning as filed")
            nxt = next((j for j in range(1, len(inner)) if norm_word(inner[j].group(0)).rstrip(".") in OPENERS), None)
            if nxt is not None and nxt >= 2:
                s, e = _trim(text, ss + w.start(), ss + inner[nxt - 1].end())
                spans.append((s, e, "attached"))
    # code-like tokens and unknown words, alone and with the small words attaching them
    toks = list(WORD.finditer(text))
    for k, m in enumerate(toks):
        tok = m.group(0)
        if _NUMBER.match(tok):
            continue
        code = is_code(tok)
        pieces = wordpiece_surprisal(tok)[1]
        unknown = pieces >= 3 and not (tok[:1].isupper() and tok[1:].islower())
        if not (code or unknown):
            continue
        kind = "code" if code else "odd-word"
        spans.append((m.start(), m.end(), kind))
        j = k
        while j > 0 and k - j < 3:  # left, up to an opener word ("per memo KX-7")
            prev = toks[j - 1]
            if text[prev.end():toks[j].start()].strip() not in ("", ".") or _NUMBER.match(prev.group(0)):
                break
            j -= 1
            if norm_word(prev.group(0)).rstrip(".") in OPENERS:
                spans.append((prev.start(), m.end(), kind))
                break
    return spans


def phrase_spans(text: str, answer: str | None = None, *, surprisal: Surprisal | None = None,
                 needed: Needed | None = None, min_oddness: float = 0.0) -> list[Phrase]:
    """Candidate spans of `text`, best (oddest) first; overlapping spans are all returned
    (callers pick non-overlapping ones). Spans that hold something the problem needs are left
    out, and so are spans of nothing but stopwords."""
    need = needed if needed is not None else needed_terms(text, answer)
    bits_of = surprisal or _word_bits
    all_words = [norm_word(m.group(0)) for m in WORD.finditer(text)]
    word_count: dict[str, int] = {}
    for w in all_words:
        word_count[w] = word_count.get(w, 0) + 1
    content_bits = [bits_of(w) for w in all_words if w not in STOPWORDS and not _NUMBER.match(w)]
    mean_bits = sum(content_bits) / len(content_bits) if content_bits else 12.0
    seen: dict[tuple[int, int], Phrase] = {}
    for s, e, kind in _raw_spans(text):
        if e - s < 1 or e - s > 120:
            continue
        if need.blocks(text, s, e):
            continue
        ph = _score(text, s, e, kind, bits_of, mean_bits, word_count)
        if ph is None or ph.oddness < min_oddness:
            continue
        old = seen.get((s, e))
        if old is None or ph.oddness > old.oddness:
            seen[(s, e)] = ph
    return sorted(seen.values(), key=lambda p: (-p.oddness, p.start))


_ASIDE_KINDS = {"parenthetical": 0.15, "fragment": 0.15, "quoted": 0.1, "lead-in": 0.05}


def _score(text: str, s: int, e: int, kind: str, bits_of: Surprisal, mean_bits: float,
           word_count: dict[str, int]) -> Phrase | None:
    toks = [m.group(0) for m in WORD.finditer(text, s, e)]
    if not toks:
        return None
    words = [norm_word(t) for t in toks]
    content = [(t, w) for t, w in zip(toks, words) if w not in STOPWORDS and not _NUMBER.match(w)]
    if not content:
        return None
    codes = [t for t, _ in content if is_code(t)]
    pieces = [wordpiece_surprisal(t)[1] for t, _ in content]
    unknown = sum(1 for (t, _), p in zip(content, pieces) if p >= 3 and not is_code(t))
    bits = [bits_of(w) for _, w in content]
    # relative surprisal: how much rarer than the query's own content words
    rel = max(0.0, (max(bits) - mean_bits)) / 8.0
    foreign = sum(1 for _, w in content if word_count.get(w, 0) <= 1) / len(content)
    f = {
        "code": 1.0 if codes else 0.0,
        "unknown": min(1.0, unknown / 1.0),
        "surprisal": min(1.0, rel),
        "foreign": foreign,
        "aside": _ASIDE_KINDS.get(kind, 0.0),
    }
    odd = (0.45 * f["code"] + 0.3 * f["unknown"] + 0.25 * f["surprisal"] + 0.1 * f["foreign"]
           + f["aside"])
    # long spans dilute: a whole clause is less specific than the phrase inside it; ordinary
    # words trailing a code ("cf. dossier 7B seemed delightful") are not part of it
    odd -= 0.02 * max(0, len(toks) - 5)
    anchors = [k for k, t in enumerate(toks) if is_code(t) or (wordpiece_surprisal(t)[1] >= 3 and not t[:1].isupper())]
    if anchors:
        odd -= 0.05 * sum(1 for w in words[anchors[-1] + 1:] if w not in STOPWORDS)
    return Phrase(s, e, text[s:e], kind, round(max(0.0, min(1.0, odd)), 4), tuple(f.items()))


def plain_clauses(text: str, need: Needed) -> list[tuple[int, int]]:
    """Clauses of `text` (split at sentence ends, commas, semicolons) of two words or more
    that hold nothing the problem needs (no needed number, not the question, not an
    instruction): the matched control's fallback when no phrase is left to delete."""
    out = []
    for ss, se in _sentences(text):
        start = ss
        for m in list(re.finditer(r"[,;:]\s*|$", text[ss:se])):
            s, e = _trim(text, start, ss + m.start())
            start = ss + m.end()
            if e - s < 3 or len(WORD.findall(text[s:e])) < 2:
                continue
            if any(s < b and a < e for a, b in need.spans):
                continue
            if any(_NUMBER.match(t.group(0)) and _num(t.group(0)) in need.numbers for t in WORD.finditer(text, s, e)):
                continue
            out.append((s, e))
    return out


def non_overlapping(phrases: Iterable[Phrase], limit: int | None = None,
                    taken: Sequence[tuple[int, int]] = ()) -> list[Phrase]:
    """Best first, skipping spans that overlap one already chosen (or `taken`)."""
    out: list[Phrase] = []
    busy = list(taken)
    for p in phrases:
        if any(p.start < b and a < p.end for a, b in busy):
            continue
        out.append(p)
        busy.append((p.start, p.end))
        if limit is not None and len(out) >= limit:
            break
    return out


__all__ += ["INSTRUCTION", "OPENERS", "STOPWORDS", "Needed", "non_overlapping", "plain_clauses"]
