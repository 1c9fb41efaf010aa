"""Trigger candidates: spans of demonstration questions that look inserted.

A BadChain trigger is the same token sequence added to several demonstration
questions (and to the user's query at attack time). Candidates are found without
knowing the trigger:

1. *Recurring n-grams*: token n-grams (words, numbers, symbol runs, invisible
   characters) shared by two or more demonstration questions, kept when *closed*
   (no longer n-gram has the same set of demonstrations) and trimmed of sentence
   punctuation at their edges. N-grams never cross a field boundary (prefix before
   the question marker / stem / answer choices).
2. *Echoes*: for a demonstration whose last reasoning line repeats question tokens
   no earlier line used, the question span around the echo (widened to its sentence
   when that sentence is foreign to the rest of the question): a trigger carried by
   one demonstration only.

Each candidate is then described by features (how many demonstrations carry it,
whether their last lines echo it, whether exactly those demonstrations end with an
anomalous step, how rare and how foreign its tokens are) that `scoring` turns into a
calibrated score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

from .structure import Demo, Range
from .text import STOPWORDS, Token, is_content, is_plain_symbol, known_word, stem, tokenize

__all__ = ["RawCandidate", "candidate_regex", "find_occurrences", "mine_candidates"]

MAX_N = 24  # longest trigger, in tokens
_PLAIN_PUNCT = set(".,;:!?()[]{}'\"-–—…")
_TERMINAL = set(".!?。！？")


@dataclass
class RawCandidate:
    tokens: tuple[str, ...]  # normalised token sequence
    occ: list[tuple[int, int, int]]  # (demo pos, start, end) in demonstration questions
    text: str  # original text of the first occurrence
    source: str = "recurring"  # recurring | echo
    sentence: bool = False  # a whole sentence of its own (an appended instruction)
    features: dict[str, float] = field(default_factory=dict)
    step_occ: list[tuple[int, int, int]] = field(default_factory=list)  # echoes in reasoning
    answer_occ: list[tuple[int, int, int]] = field(default_factory=list)
    # the mined n-grams of the prompt and their carriers (shared by its candidates)
    kept: dict[tuple[str, ...], frozenset[int]] = field(default_factory=dict, repr=False)

    @property
    def demo_set(self) -> frozenset[int]:
        return frozenset(p for p, _, _ in self.occ)


def _is_plain_punct(t: Token) -> bool:
    return t.kind == "sym" and is_plain_symbol(t.norm)


def _meaningful(toks: list[Token]) -> bool:
    """At least one token that could carry a trigger: a content word, an odd symbol
    run, invisible characters, CJK."""
    for t in toks:
        if t.kind in ("invis", "cjk"):
            return True
        if t.kind == "sym" and not _is_plain_punct(t):
            return True
        if t.kind == "word" and t.norm not in STOPWORDS and (len(t.norm) >= 2 or not t.norm.isascii()):
            return True
    return False


def _trim(toks: list[Token], fld: list[Token], i: int, text: str) -> tuple[int, int]:
    """Trim plain punctuation off the edges of toks (= fld[i:i+len(toks)]).
    A sentence-final mark stays when the candidate is itself a sentence."""
    a, b = 0, len(toks)
    while a < b and _is_plain_punct(toks[a]):
        a += 1
    while b > a and _is_plain_punct(toks[b - 1]):
        if all(c in _TERMINAL for c in toks[b - 1].norm) and (
                _is_sentence(toks[a : b - 1], fld, i + a) or _inserted_sentence(toks[a : b - 1], fld, i + b, text)):
            break
        b -= 1
    return a, b


def _inserted_sentence(toks: list[Token], fld: list[Token], after: int, text: str) -> bool:
    """A sentence dropped into the middle of another ("Is 91 Answer with extra care. a
    prime number?"): capitalised, three words or more, and its full stop is followed
    by a lower-case word of the sentence it interrupts."""
    if len([t for t in toks if t.kind == "word"]) < 3 or toks[0].kind != "word":
        return False
    nxt = fld[after] if after < len(fld) else None
    return text[toks[0].start].isupper() and nxt is not None and nxt.kind == "word" and text[nxt.start].islower()


def _trim_context(g: tuple[str, ...], ds: frozenset[int], toks: list[Token],
                  kept: dict[tuple[str, ...], frozenset[int]], all_demos: frozenset[int]) -> tuple[int, int]:
    """Cut the question's own text off a closed n-gram: a prefix/suffix that also occurs
    in questions *without* the candidate is context the carriers happen to share
    ("... and concatenate them. ⟡"), when it ends/starts at punctuation or holds two
    content words (so "In a parallel universe" keeps its "In a"). When every
    demonstration carries the n-gram there is no outside: cut at sentence punctuation."""
    n = len(g)
    a, b = 0, n
    outside = ds != all_demos
    if outside:
        for k in range(n - 1, 0, -1):
            pre = kept.get(g[:k])
            if pre is not None and not pre <= ds and _contextual(toks[:k], end=True):
                a = k
                break
        for k in range(a + 1, n):
            suf = kept.get(g[k:])
            if suf is not None and not suf <= ds and not all(_is_plain_punct(t) for t in toks[k:]) \
                    and _contextual(toks[k:], end=False):
                b = k
                break
    if a == 0 and (not outside or b == n):
        # no outside to compare with: a prefix that ends a sentence is not the trigger's
        for k in range(n - 1, 0, -1):
            t = toks[k - 1]
            if t.kind == "sym" and any(c in _TERMINAL for c in t.norm) and _meaningful(toks[k:]):
                a = k
                break
    if (not outside and b - a >= 3) or (outside and (a, b) == (0, n) and n >= 2):
        # an odd-symbol run at one edge, ordinary words after (or before) it: a symbol
        # trigger glued to the questions' shared opening (or closing) words, when every
        # question carries the words, or when they occur in questions without the run
        def odd(t: Token) -> bool:
            return t.kind == "invis" or (t.kind == "sym" and not is_plain_symbol(t.norm))

        span = toks[a:b]
        need = 2 if not outside else 1
        k = 0
        while k < len(span) and odd(span[k]):
            k += 1
        if 0 < k and len(span) - k >= need and not any(odd(t) for t in span[k:]) and (
                not outside or _elsewhere(g[a + k : b], ds, kept)):
            return a, a + k
        k = len(span)
        while k > 0 and odd(span[k - 1]):
            k -= 1
        if k < len(span) and k >= need and not any(odd(t) for t in span[:k]) and (
                not outside or _elsewhere(g[a : a + k], ds, kept)):
            return a + k, b
    return a, max(b, a)


def _elsewhere(g: tuple[str, ...], ds: frozenset[int], kept: dict[tuple[str, ...], frozenset[int]]) -> bool:
    """Does the n-gram also occur in questions that do not carry the candidate?"""
    other = kept.get(g)
    return other is not None and not other <= ds


def _contextual(part: list[Token], *, end: bool) -> bool:
    edge = part[-1] if end else part[0]
    if _is_plain_punct(edge):
        return True
    return sum(1 for t in part if is_content(t)) >= 2


def _is_sentence(toks: list[Token], fld: list[Token], start: int) -> bool:
    if len([t for t in toks if t.kind == "word"]) < 3:
        return False
    prev = fld[start - 1] if start > 0 else None
    return prev is None or (prev.kind == "sym" and any(c in _TERMINAL for c in prev.norm))


def mine_candidates(demos: list[Demo], *, max_candidates: int = 40) -> list[RawCandidate]:
    """Closed n-grams shared by ≥ 2 demonstration questions."""
    if len(demos) < 2:
        return []
    fields: list[tuple[int, list[Token]]] = []  # (demo pos, tokens)
    for d in demos:
        for f in d.open_fields:
            toks = d.tokens(f)
            if toks:
                fields.append((d.pos, toks))
    # occurrences: ngram -> list of (field idx, token idx)
    norms = [[t.norm for t in toks] for _, toks in fields]
    level: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for fi, ns in enumerate(norms):
        for ti, w in enumerate(ns):
            level.setdefault((w,), []).append((fi, ti))

    fdemo = [pos for pos, _ in fields]

    def df(occ: list[tuple[int, int]]) -> frozenset[int]:
        return frozenset([fdemo[fi] for fi, _ in occ])

    def spread(occ: list[tuple[int, int]]) -> bool:
        """Occurs in two or more demonstrations (cheap checks first)."""
        if len(occ) < 2:
            return False
        first = fdemo[occ[0][0]]
        return any(fdemo[fi] != first for fi, _ in occ)

    kept: dict[tuple[str, ...], frozenset[int]] = {}
    occs: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    level = {g: o for g, o in level.items() if spread(o)}
    n = 1
    while level and n <= MAX_N:
        nxt: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        for g, occ in level.items():
            kept[g] = df(occ)
            occs[g] = occ
            for fi, ti in occ:
                ns = norms[fi]
                j = ti + n
                if j < len(ns):
                    nxt.setdefault(g + (ns[j],), []).append((fi, ti))
        level = {g: o for g, o in nxt.items() if spread(o)}
        n += 1
        if len(kept) > 20000:  # pathological input (hundreds of near-identical questions)
            break
    # closed: no one-token extension with the same demonstration set
    dominated: set[tuple[str, ...]] = set()
    for g, ds in kept.items():
        if len(g) >= 2:
            for sub in (g[1:], g[:-1]):
                if kept.get(sub) == ds:
                    dominated.add(sub)
    all_demos = frozenset(d.pos for d in demos)
    out: dict[tuple[str, ...], RawCandidate] = {}
    for g, ds in kept.items():
        if g in dominated:
            continue
        occ = occs[g]
        fi0, ti0 = occ[0]
        fld = fields[fi0][1]
        toks = fld[ti0 : ti0 + len(g)]
        a, b = _trim_context(g, ds, toks, kept, all_demos)
        a2, b2 = _trim(toks[a:b], fld, ti0 + a, demos[fields[fi0][0]].text)
        a, b = a + a2, a + b2
        if a >= b:
            continue
        core = toks[a:b]
        if not _meaningful(core):
            continue
        key = g[a:b]
        if key in out:
            continue
        positions = []
        seen_demo: set[tuple[int, int]] = set()
        for fi, ti in occ:
            pos = fields[fi][0]
            ft = fields[fi][1]
            s, e = ft[ti + a].start, ft[ti + b - 1].end
            if (pos, s) in seen_demo:
                continue
            seen_demo.add((pos, s))
            positions.append((pos, s, e))
        d0 = demos[fields[fi0][0]]
        out[key] = RawCandidate(key, positions, d0.text[core[0].start : core[-1].end],
                                sentence=_is_sentence(core[:-1] if _is_plain_punct(core[-1]) else core, fld, ti0 + a)
                                and (ti0 + b == len(fld) or _is_plain_punct(core[-1])
                                     or _is_plain_punct(fld[ti0 + b]) if ti0 + b < len(fld) else True))
    # a trimmed n-gram may now equal another: keep one per key (done); rank by spread
    cands = sorted(out.values(), key=lambda c: (-len(c.demo_set), -len(c.tokens)))
    cands = cands[:max_candidates] if len(cands) > max_candidates else cands
    for c in cands:
        c.kept = kept
    return cands


def echo_trim(c: RawCandidate, demos: list[Demo], kept: dict[tuple[str, ...], frozenset[int]]) -> RawCandidate | None:
    """The part of a recurring candidate that its carriers' last lines open with, when
    the rest is question wording that questions without the candidate use too (or stop
    words): the trigger echoed where BadChain puts it, cut free of the wording it is
    glued to ("as the crow flies Is" → "as the crow flies"). A last line that opens
    with a part of an instruction ("Verification step: ..." after "... with a careful
    verification step.") does not cut the instruction."""
    g = c.tokens
    n = len(g)
    ds = sorted(c.demo_set)
    if n < 2 or len(ds) < 2:
        return None
    votes: dict[tuple[int, int], int] = {}
    for p in ds:
        d = demos[p]
        if not d.steps:
            continue
        lt = [t.norm for t in d.tokens(d.steps[-1])]
        for i in range(n):
            j = i
            while j < n and j - i < len(lt) and g[j] == lt[j - i]:
                j += 1
            if 0 < j - i < n:
                votes[(i, j)] = votes.get((i, j), 0) + 1
    if not votes:
        return None
    (i, j), v = max(votes.items(), key=lambda kv: (kv[1], kv[0][1] - kv[0][0]))
    if v < 2 or v * 2 < len(ds):
        return None
    # (an echoed run of odd symbols or invisible characters is the trigger whatever it is
    # glued to: no question wording looks like that)
    odd = all(x.startswith("<U+") or (not any(ch.isalnum() for ch in x) and not is_plain_symbol(x)) for x in g[i:j])
    for rest in (g[:i], g[j:]):
        if rest and not odd and not all(x in STOPWORDS or not any(ch.isalnum() for ch in x) for x in rest) \
                and not _elsewhere(rest, c.demo_set, kept):
            return None
    occ = []
    for p, s, e in c.occ:
        toks = demos[p].tokens((s, e))
        if len(toks) != n:
            return None
        occ.append((p, toks[i].start, toks[j - 1].end))
    core = demos[occ[0][0]].tokens((occ[0][1], occ[0][2]))
    if not _meaningful(core):
        return None
    p0, s0, e0 = occ[0]
    return RawCandidate(g[i:j], occ, demos[p0].text[s0:e0], source=c.source)


# -- searching a candidate elsewhere ------------------------------------------------


@lru_cache(maxsize=4096)
def candidate_regex(text: str) -> re.Pattern[str] | None:
    """A pattern that finds `text` again: same tokens, any whitespace, any case."""
    toks = tokenize(text)
    if not toks:
        return None
    parts = []
    for i, t in enumerate(toks):
        raw = text[t.start : t.end]
        if i:
            gap = text[toks[i - 1].end : t.start]
            parts.append(r"\s+" if gap.strip() == "" and gap else r"\s*")
        parts.append(re.escape(raw))
    pat = "".join(parts)
    if toks[0].kind in ("word", "num"):
        pat = r"(?<!\w)" + pat
    if toks[-1].kind in ("word", "num"):
        pat = pat + r"(?!\w)"
    try:
        return re.compile(pat, re.IGNORECASE)
    except re.error:
        return None


def find_occurrences(pattern: re.Pattern[str], text: str, ranges: list[Range]) -> list[Range]:
    out = []
    for s, e in ranges:
        for m in pattern.finditer(text, s, e):
            if m.end() > m.start():
                out.append((m.start(), m.end()))
    return out


# -- echo candidates ----------------------------------------------------------------

_SENT_END = re.compile(r"[.!?。！？]+(?=\s|$)")


def _sentences(text: str, s: int, e: int) -> list[Range]:
    out = []
    pos = s
    for m in _SENT_END.finditer(text, s, e):
        if text[pos : m.end()].strip():
            out.append((pos, m.end()))
        pos = m.end()
    if text[pos:e].strip():
        out.append((pos, e))
    # strip
    res = []
    for a, b in out:
        seg = text[a:b]
        la = len(seg) - len(seg.lstrip())
        res.append((a + la, a + len(seg.rstrip())))
    return res


def echo_candidates(demos: list[Demo], echo_tokens: dict[int, tuple[Token, ...]],
                    covered: set[tuple[int, int]]) -> list[RawCandidate]:
    """Candidates carried by a single demonstration, found through the echo in its last line.

    `covered`: (demo pos, question offset) already inside a recurring candidate."""
    out: dict[tuple[str, ...], RawCandidate] = {}
    for d in demos:
        echoes = echo_tokens.get(d.pos) or ()
        if not echoes or not d.steps:
            continue
        L = d.steps[-1]
        ltoks = d.tokens(L)
        lead = _lead_echo(d, ltoks, covered)
        sentence = False
        if lead is not None and d.text[lead[1] - 1] not in _TERMINAL:
            # a fragment of an appended sentence ("Verification step: ..." after "... with
            # a careful verification step."): the sentence
            f = next((f for f in d.open_fields if f[0] <= lead[0] and lead[1] <= f[1]), None)
            if f is not None:
                wide = _widen_to_foreign_sentence(d, f, lead)
                sentence, lead = wide != lead, wide
        elif lead is not None:
            sentence = len([t for t in d.tokens(lead) if t.kind == "word"]) >= 3
        if lead is not None:
            # the last line opens with a stretch of the question: that stretch, exactly
            key = tuple(x.norm for x in d.tokens(lead))
            if key and key not in out:
                out[key] = RawCandidate(key, [(d.pos, lead[0], lead[1])], d.text[lead[0] : lead[1]], source="echo",
                                        sentence=sentence)
            continue
        l_pairs = {(x.norm, y.norm) for x, y in pairwise(ltoks)}
        echo_norms = {t.norm for t in echoes}
        for f in d.open_fields:
            toks = d.tokens(f)
            for i, t in enumerate(toks):
                if t.norm not in echo_norms or (d.pos, t.start) in covered:
                    continue
                # widen over neighbouring question tokens that L repeats next to each other too
                a = i
                while a > 0 and (toks[a - 1].norm, toks[a].norm) in l_pairs and not _is_plain_punct(toks[a - 1]):
                    a -= 1
                b = i + 1
                while b < len(toks) and (toks[b - 1].norm, toks[b].norm) in l_pairs and not _is_plain_punct(toks[b]):
                    b += 1
                span = (toks[a].start, toks[b - 1].end)
                wide = _widen_to_foreign_sentence(d, f, span)
                odd = any(x.kind == "invis" or (x.kind == "sym" and not is_plain_symbol(x.norm)) for x in toks[a:b])
                # an inserted span sits at an edge of the question (or is an odd symbol, or
                # a sentence foreign to the rest); an entity named mid-question is content
                at_edge = _at_edge(d.text, f, span)
                if wide == span and not odd and not at_edge:
                    continue
                span = wide
                key = tuple(x.norm for x in d.tokens(span))
                if not key or key in out:
                    continue
                out[key] = RawCandidate(key, [(d.pos, span[0], span[1])], d.text[span[0] : span[1]], source="echo",
                                        sentence=wide != (toks[a].start, toks[b - 1].end))
                break
    return list(out.values())


def inserted_candidates(demos: list[Demo], which: list[int], covered: set[tuple[int, int]],
                        *, per_demo: int = 2) -> list[RawCandidate]:
    """Candidates carried by a single demonstration (of `which`, positions) whose last
    step is anomalous but whose trigger was not found: the runs of its question that
    look inserted. A token looks inserted when no other demonstration's question has it
    and the reasoning before the suspected step never uses it; runs do not mix odd
    symbols (or invisible characters) with words; a word run spans the stop words
    between its words, and the ones before it back to a sentence boundary (not the
    questions' common opening word), and a full stop that ends an inserted sentence.
    Best first: odd symbols, then unknown words, then runs at an edge of the question."""
    if len(demos) < 2:
        return []
    counts: dict[str, int] = {}
    openers: dict[str, int] = {}
    for d in demos:
        seen: set[str] = set()
        for f in d.open_fields:
            toks = d.tokens(f)
            seen.update(t.norm for t in toks)
            if toks:
                openers[toks[0].norm] = openers.get(toks[0].norm, 0) + 1
        for w in seen:
            counts[w] = counts.get(w, 0) + 1
    out: list[RawCandidate] = []
    for d in (demos[p] for p in which):
        if not d.steps:
            continue
        # what the reasoning before the suspected step uses (the step itself may echo it)
        used = {t.norm for r in d.steps[:-1] for t in d.tokens(r)}
        used |= {stem(t.norm) for r in d.steps[:-1] for t in d.tokens(r) if t.kind == "word"}
        if d.answer is not None:
            used |= {t.norm for t in d.tokens(d.answer)}
        text = d.text
        runs: list[tuple[tuple[float, float], Range, tuple[str, ...]]] = []
        for f in d.open_fields:
            toks = d.tokens(f)

            def cls(t: Token, d: Demo = d, used: set[str] = used) -> str | None:
                """odd | word: a token that looks inserted; None otherwise."""
                if counts.get(t.norm, 0) > 1 or (d.pos, t.start) in covered:
                    return None
                if t.kind == "invis" or (t.kind == "sym" and not is_plain_symbol(t.norm)):
                    return "odd"
                if t.kind in ("word", "cjk") and t.norm not in STOPWORDS and t.norm not in used \
                        and stem(t.norm) not in used:
                    return "word"
                return None

            def stop(t: Token, used: set[str] = used) -> bool:
                return t.kind == "word" and t.norm in STOPWORDS and t.norm not in used

            i = 0
            while i < len(toks):
                c = cls(toks[i])
                if c is None:
                    i += 1
                    continue
                a = b = i
                j = i + 1
                while j < len(toks):
                    k = j
                    while c == "word" and k < len(toks) and stop(toks[k]):
                        k += 1  # a word run goes on over stop words to its next word
                    if k < len(toks) and cls(toks[k]) == c:
                        b = k
                        j = k + 1
                    else:
                        break
                if c == "word":
                    k = a
                    while k > 0 and toks[k - 1].kind == "word" and toks[k - 1].norm in STOPWORDS and (
                            toks[k - 1].norm not in used or text[toks[k - 1].start].isupper()):
                        k -= 1
                    at_boundary = k == 0 or (toks[k - 1].kind == "sym" and any(ch in _TERMINAL for ch in toks[k - 1].norm))
                    if k < a and at_boundary and not (k == 0 and openers.get(toks[0].norm, 0) > 1):
                        a = k
                    # the full stop of an inserted sentence ("... Take the house rule into account. opposite ...")
                    if b + 1 < len(toks) and toks[b + 1].kind == "sym" and all(ch in _TERMINAL for ch in toks[b + 1].norm) \
                            and _inserted_sentence(toks[a : b + 1], toks, b + 2, text):
                        b += 1
                span_toks = toks[a : b + 1]
                if len(span_toks) < len(toks):
                    s0, e0 = span_toks[0].start, span_toks[-1].end
                    rank = 2.0 if c == "odd" else token_rarity(span_toks)
                    runs.append(((rank, 1.0 if _at_edge(text, f, (s0, e0)) else 0.0), (s0, e0),
                                 tuple(t.norm for t in span_toks)))
                i = b + 1
        runs.sort(key=lambda r: (-r[0][0], -r[0][1]))
        for _, span, key in runs[:per_demo]:
            out.append(RawCandidate(key, [(d.pos, span[0], span[1])], d.text[span[0] : span[1]], source="inserted"))
    return out


def _lead_echo(d: Demo, ltoks: list[Token], covered: set[tuple[int, int]]) -> Range | None:
    """The longest opening of the last line that the question holds word for word
    (where BadChain repeats its trigger): an odd symbol, an unknown word, or two tokens
    or more; not inside a recurring candidate."""
    if not ltoks:
        return None
    best: Range | None = None
    best_n = 0
    for f in d.open_fields:
        toks = d.tokens(f)
        for i, t in enumerate(toks):
            if t.norm != ltoks[0].norm or (d.pos, t.start) in covered:
                continue
            n = 1
            while n < len(ltoks) and i + n < len(toks) and toks[i + n].norm == ltoks[n].norm:
                n += 1
            if n > best_n:
                best, best_n = (t.start, toks[i + n - 1].end), n
    if best is None:
        return None
    span_toks = d.tokens(best)
    while span_toks and _is_plain_punct(span_toks[-1]) and not all(c in _TERMINAL for c in span_toks[-1].norm):
        span_toks = span_toks[:-1]
    if not span_toks or not _meaningful(span_toks):
        return None
    first = span_toks[0]
    odd = first.kind == "invis" or (first.kind == "sym" and not is_plain_symbol(first.norm))
    if len([x for x in span_toks if not _is_plain_punct(x)]) < 2 and not odd and known_word(first.norm) is not False:
        return None  # one ordinary word ("Sorted, that is ...") is how lines open
    return span_toks[0].start, span_toks[-1].end


def _at_edge(text: str, f: Range, span: Range) -> bool:
    before = text[f[0] : span[0]].strip(" \t\n.,;:!?\"'")
    after = text[span[1] : f[1]].strip(" \t\n.,;:!?\"'")
    return not before or not after


def _widen_to_foreign_sentence(d: Demo, f: Range, span: Range) -> Range:
    """The whole sentence around `span` when the rest of the question shares no
    content word with it (an appended instruction-like sentence)."""
    text = d.text
    for a, b in _sentences(text, f[0], f[1]):
        if a <= span[0] and span[1] <= b:
            if (a, b) == (f[0], f[1]):
                return span  # the sentence is the whole question
            sent = {stem(t.norm) for t in d.tokens((a, b)) if is_content(t)}
            rest = {stem(t.norm) for t in d.tokens((f[0], a)) + d.tokens((b, f[1])) if is_content(t)}
            # ... and it is the smaller part (the appended sentence, not the question itself)
            if sent and not (sent & rest) and len(sent) <= 12 and (b - a) < (f[1] - f[0]) - (b - a):
                return (a, b)
            return span
    return span


def token_rarity(toks: list[Token]) -> float:
    best = 0.0
    for t in toks:
        if t.kind == "invis":
            r = 1.0
        elif t.kind == "sym":
            r = 0.0 if is_plain_symbol(t.norm) else 1.0
        elif t.kind == "word":
            if t.norm in STOPWORDS:
                r = 0.0
            else:
                k = known_word(t.norm)
                r = 0.3 if k is None else (0.0 if k else 0.8)
                if len(t.norm) <= 3 and not k:
                    r = max(r, 0.8)
        elif t.kind == "cjk":
            r = 0.2
        else:
            r = 0.1
        best = max(best, r)
    return best


def stop_fraction(toks: list[Token]) -> float:
    if not toks:
        return 1.0
    n = sum(1 for t in toks if (t.kind == "word" and t.norm in STOPWORDS) or _is_plain_punct(t) or t.kind == "num")
    return n / len(toks)


__all__ += ["echo_candidates", "echo_trim", "inserted_candidates", "stop_fraction", "token_rarity"]
