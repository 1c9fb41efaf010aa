"""Trigger candidates: spans of the user's query that may be a backdoor trigger.

Sources, best first:

0. *answer echo* (`echo.py`): a query span that the answer's reasoning repeats in a step that
   does not follow from the problem: the strongest candidate there is;
1. static findings that point into the query (the demonstrations detector's
   `PG-DEMO-TRIGGER`, or any finding with a span on a query segment);
2. the demonstrations detector's `find_trigger_candidates` (when that module is
   installed) — triggers found in the demonstrations that also occur in the query;
3. our own fallbacks, used when the above give nothing:
   - *shared rare n-grams*: an n-gram of the query that also occurs in two or more
     demonstration questions (or in one, and echoed in a reasoning step), and is
     rare (symbols, unknown words, odd short words);
   - *rare tokens* of the query alone (a backdoor in the weights leaves no trace
     in the prompt): runs of symbols, words no vocabulary knows, odd short words,
     and a short fragment trailing the question after its question mark.
4. *phrases* of the query (`phrases.py`), always: parentheticals, fragments after the question
   mark, lead-ins, attached phrases, codes, ranked by oddness, never by position; names and
   numbers the problem needs are never candidates.

All sources are merged into one list of non-overlapping spans, best first: the group test
(`grouptest.py`) covers them all in one probe.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Sequence

from ..findings import Finding
from ..segments import Segment, SegmentKind

__all__ = ["Candidate", "find_candidates", "phrase_candidates", "demo_suspects", "rare_spans", "shared_ngrams",
           "DemoInfo"]


@dataclass(frozen=True)
class Candidate:
    """A span of query segment `query_index` ([start, end) into its text)."""

    text: str
    query_index: int
    start: int
    end: int
    score: float
    source: str
    demonstrations: tuple[int, ...] = ()
    kind: str = ""  # phrase kind (parenthetical, fragment, attached, code, ...) when from phrases
    echo: float = 0.0  # strength of the answer's echo of this span (0: none)

    @property
    def from_demonstrations(self) -> bool:
        """Found in the demonstrations too (not just odd in the query)."""
        return bool(self.demonstrations) or self.source.startswith(
            ("demonstrations", "shared-ngram", "finding:demonstrations"))

    def to_dict(self) -> dict:
        d = {"text": self.text, "query_index": self.query_index, "span": [self.start, self.end],
             "score": round(self.score, 3), "source": self.source}
        if self.demonstrations:
            d["demonstrations"] = list(self.demonstrations)
        if self.kind:
            d["kind"] = self.kind
        if self.echo:
            d["echo"] = round(self.echo, 3)
        return d


@dataclass
class DemoInfo:
    """What static analysis says about the demonstrations."""

    suspects: list[int] = field(default_factory=list)  # Segment.index of suspect demonstrations
    # (Segment.index, start, end) of suspected backdoor steps inside demonstrations
    steps: list[tuple[int, int, int]] = field(default_factory=list)
    source: str = ""


# -- tokens and rarity ---------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)*)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<sym>(?:[^\w\s]|_)+)"
)
_PLAIN_PUNCT = re.compile(r"^[.,;:!?'\"“”‘’()\[\]{}\-–—/…%$€£&+*=<>^×÷±]+$")

# Short words that are ordinary English (the vocabulary lists many abbreviations too).
_SHORT_COMMON = frozenset("""
a an the is am are was be to of in on at by for and or nor but so if as it its he she we you
they me him her us them my his our your their who why how what when do does did has had have
not no yes all any one two six ten few per via off out up down over new old big bad can may
let get got put set see saw say said own way day man men boy girl dog cat car sun far now too
also each than then that this these those with from into onto upon will would could should
shall must might more most less many much some such only just very well here there where which
whom whose ago age ate eat fed buy pay lot box bag egg pen cup hat red low top end use ran run
sum add odd mom dad son kid job toy key map cow pig hen bus war art law oil sea ice tea pie
""".split())


@lru_cache(maxsize=1)
def _vocab() -> frozenset[str]:
    """Whole words of the bundled embedding model's word-piece vocabulary (optional)."""
    try:
        from ..models import embedding_model_path

        with open(embedding_model_path() / "vocab.txt", encoding="utf-8") as f:
            return frozenset(w for w in (x.strip() for x in f) if w.isalpha() and not w.startswith("["))
    except Exception:  # noqa: BLE001 - rarity falls back to the shape rules
        return frozenset()


def _known(word: str) -> bool:
    w = unicodedata.normalize("NFKC", word).casefold()
    v = _vocab()
    if not v:
        return len(w) > 3 and bool(re.search(r"[aeiouy]", w))
    for form in (w, w[:-1] if w.endswith("s") else w, w[:-2] if w.endswith("es") else w,
                 w[:-2] if w.endswith("ed") else w, w[:-3] if w.endswith("ing") else w,
                 w[:-2] if w.endswith("ly") else w):
        if form in v:
            return True
    return False


def token_rarity(tok: str, kind: str, at_sentence_start: bool = False) -> float:
    """0 (ordinary) .. 1 (very unusual) for one token."""
    if kind == "num":
        return 0.0
    if kind == "sym":
        return 0.0 if _PLAIN_PUNCT.match(tok) else 0.9
    low = tok.casefold()
    if low in _SHORT_COMMON or len(low) == 1:
        return 0.0  # everyday words; single letters are choice labels and variables
    if len(low) <= 3:
        # short words that are not everyday words: "cf", "mn", "jtk", "lol"
        return 0.6 if not (tok[0].isupper() and not at_sentence_start and len(tok) > 1) else 0.3
    if _known(tok):
        return 0.0
    # unknown words; capitalised mid-sentence words are more likely names
    return 0.35 if tok[0].isupper() and not at_sentence_start else 0.7


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    out = []
    for m in _TOKEN.finditer(text):
        out.append((m.group(0), m.lastgroup or "word", m.start(), m.end()))
    return out


def _norm(tok: str) -> str:
    return unicodedata.normalize("NFKC", tok).casefold()


# -- query-only candidates -----------------------------------------------------------


def rare_spans(query: Segment, *, limit: int = 4) -> list[Candidate]:
    """Rare tokens of one query (adjacent rare tokens merged), and a short fragment
    trailing the question, best first."""
    text = query.text
    toks = _tokens(text)
    scored = []
    for i, (tok, kind, s, e) in enumerate(toks):
        prev = text[:s].rstrip()
        at_start = not prev or prev[-1] in ".?!:\n"
        scored.append((tok, kind, s, e, token_rarity(tok, kind, at_start)))
    cands: list[Candidate] = []
    i = 0
    while i < len(scored):
        if scored[i][4] < 0.5:
            i += 1
            continue
        j = i
        best = scored[i][4]
        while j + 1 < len(scored) and scored[j + 1][4] >= 0.5 and "\n" not in text[scored[j][3]:scored[j + 1][2]]:
            j += 1
            best = max(best, scored[j][4])
        s, e = scored[i][2], scored[j][3]
        # an odd span at either edge of the query is a classic trigger position
        edge = not text[:s].strip() or not text[e:].strip(" .?!\n")
        cands.append(Candidate(text[s:e], query.index, s, e, min(1.0, best + (0.1 if edge else 0.0)),
                               "rare-token"))
        i = j + 1
    # a short fragment after the question's last "?" ("… how many? <trigger>")
    q = text.rfind("?")
    if 0 <= q < len(text) - 1:
        tail = text[q + 1:]
        body = tail.strip()
        words = [token_rarity(t, k) for t, k, _, _ in _tokens(body) if k != "sym" or token_rarity(t, k) > 0]
        odd = bool(words) and sum(r >= 0.3 for r in words) * 2 >= len(words)
        # only a mostly odd fragment: "Answer in one word." is an ordinary instruction, and in
        # "xqj Answer in one word." the odd word alone is the candidate
        if body and odd and len(body.split()) <= 6 and not re.search(r"\d", body) and "?" not in body:
            s = q + 1 + (len(tail) - len(tail.lstrip()))
            e = s + len(body.rstrip(" ."))
            inside = [c for c in cands if s <= c.start and c.end <= e]
            if not any(c.start <= s and e <= c.end for c in cands):
                # the whole odd fragment ("In arcane parlance") beats the odd words inside it
                score = max([0.55] + [c.score + 0.05 for c in inside])
                cands = [c for c in cands if c not in inside]
                cands.append(Candidate(text[s:e], query.index, s, e, min(1.0, score), "trailing-fragment"))
    cands.sort(key=lambda c: -c.score)
    return cands[:limit]


# -- shared n-grams (query and demonstrations) ----------------------------------------


def _demo_segments(segments: Sequence[Segment]) -> list[Segment]:
    return [s for s in segments if s.kind in (SegmentKind.DEMONSTRATION, SegmentKind.EXAMPLE)]


def shared_ngrams(segments: Sequence[Segment], *, max_n: int = 6, limit: int = 4) -> list[Candidate]:
    """Query n-grams that also occur in the demonstrations' questions and are rare."""
    demos = _demo_segments(segments)
    queries = [s for s in segments if s.kind is SegmentKind.QUERY]
    if not demos or not queries:
        return []
    dq = [[_norm(t[0]) for t in _tokens(d.question)] for d in demos]
    ds = [[_norm(t[0]) for st in d.steps for t in _tokens(st)] for d in demos]
    out: list[Candidate] = []
    for q in queries:
        toks = _tokens(q.text)
        norm = [_norm(t[0]) for t in toks]
        rar = [token_rarity(t[0], t[1], k == 0) for k, t in enumerate(toks)]
        found: list[tuple[float, int, int, tuple[int, ...]]] = []
        for n in range(min(max_n, len(toks)), 0, -1):
            for i in range(0, len(toks) - n + 1):
                if any(a <= i and i + n <= b for _, a, b, _ in found):
                    continue  # inside a longer kept n-gram
                if toks[i][1] == "sym" and rar[i] == 0 or toks[i + n - 1][1] == "sym" and rar[i + n - 1] == 0:
                    continue  # no n-gram starts or ends on plain punctuation
                gram = norm[i:i + n]
                r = max(rar[i:i + n])
                if r < 0.5 or all(k == "num" for k in (t[1] for t in toks[i:i + n])):
                    continue
                where = tuple(d.index for d, words in zip(demos, dq) if _contains(words, gram))
                echo = sum(1 for words in ds if _contains(words, gram))
                if len(where) >= 2 or (where and echo):
                    score = min(1.0, 0.45 + 0.1 * min(len(where), 4) + (0.15 if echo else 0.0) + 0.1 * r)
                    found.append((score, i, i + n, where))
        for score, a, b, where in found:
            # trim template words off the edges: tokens more demonstrations share than the n-gram
            # ("~~ Answer Choices: (A" -> "~~")
            def df(k: int) -> int:
                return sum(1 for words in dq if norm[k] in words)

            while b - a > 1 and rar[b - 1] < 0.5 and (df(b - 1) > len(where) or toks[b - 1][1] == "sym"):
                b -= 1
            while b - a > 1 and rar[a] < 0.5 and (df(a) > len(where) or toks[a][1] == "sym"):
                a += 1
            s, e = toks[a][2], toks[b - 1][3]
            out.append(Candidate(q.text[s:e], q.index, s, e, score, "shared-ngram", where))
    out.sort(key=lambda c: -c.score)
    return out[:limit]


def _contains(words: list[str], gram: list[str]) -> bool:
    n = len(gram)
    return any(words[k:k + n] == gram for k in range(len(words) - n + 1))


# -- the demonstrations detector, when installed ---------------------------------------


def _detector_module():
    try:
        from ..detectors import demonstrations as mod  # noqa: F401

        if hasattr(mod, "find_trigger_candidates"):
            return mod
    except Exception:  # noqa: BLE001 - not there yet, or broken: fall back
        return None
    return None


def _from_detector(segments: Sequence[Segment], min_score: float = 0.5
                   ) -> tuple[list[Candidate], DemoInfo | None]:
    mod = _detector_module()
    if mod is None:
        return [], None
    try:
        report = mod.analyze_demonstrations(segments)
    except Exception:  # noqa: BLE001
        return [], None
    queries = {s.index: s for s in segments if s.kind is SegmentKind.QUERY}
    cands: list[Candidate] = []
    for c in getattr(report, "candidates", ()) or ():
        if float(getattr(c, "score", 0.0)) < min_score:
            continue
        for sp in getattr(c, "query_spans", ()) or ():
            q = queries.get(sp.segment_index)
            if q is None or not (0 <= sp.start < sp.end <= len(q.text)):
                continue
            cands.append(Candidate(q.text[sp.start:sp.end], q.index, sp.start, sp.end,
                                   float(c.score), "demonstrations", tuple(c.demonstrations)))
    info = DemoInfo(source="demonstrations")
    for v in getattr(report, "demos", ()) or ():
        if v.score >= 0.5:
            info.suspects.append(v.index)
            if v.backdoor_step:
                info.steps.append((v.index, v.backdoor_step[0], v.backdoor_step[1]))
    return cands, info


# -- putting it together ----------------------------------------------------------------


def _from_findings(segments: Sequence[Segment], findings: Sequence[Finding]) -> tuple[list[Candidate], DemoInfo]:
    queries = {s.index: s for s in segments if s.kind is SegmentKind.QUERY}
    cands: list[Candidate] = []
    info = DemoInfo(source="findings")
    for f in findings:
        if f.detector == "audit":
            continue
        if f.segment_kind is SegmentKind.QUERY and f.span and f.segment_index in queries:
            q = queries[f.segment_index]
            s, e = f.span
            if 0 <= s < e <= len(q.text) and e - s <= max(80, len(q.text) // 2):
                cands.append(Candidate(q.text[s:e], q.index, s, e, f.score,
                                       f"finding:{f.detector}/{f.rule or ''}".rstrip("/")))
        elif f.segment_kind is SegmentKind.DEMONSTRATION and f.score >= 0.5:
            if f.segment_index not in info.suspects:
                info.suspects.append(f.segment_index)
            step = f.details.get("backdoor_step") if isinstance(f.details, dict) else None
            if f.rule == "PG-DEMO-STEP" and f.span:
                info.steps.append((f.segment_index, f.span[0], f.span[1]))
            elif isinstance(step, (list, tuple)) and len(step) == 2:
                info.steps.append((f.segment_index, int(step[0]), int(step[1])))
    return cands, info


def phrase_candidates(segments: Sequence[Segment], answer: str | None = None) -> list[Candidate]:
    """Phrase candidates of every query segment, scored by oddness and the answer's echo."""
    from .echo import find_echoes
    from .phrases import needed_terms, phrase_spans

    out: list[Candidate] = []
    for q in (s for s in segments if s.kind is SegmentKind.QUERY):
        need = needed_terms(q.text, answer)
        phrases = phrase_spans(q.text, answer, needed=need)
        echoes = {(e.phrase.start, e.phrase.end): e.strength for e in find_echoes(q.text, answer, phrases)}
        for p in phrases:
            echo = echoes.get((p.start, p.end), 0.0)
            out.append(Candidate(p.text, q.index, p.start, p.end, 0.8 * p.oddness + echo,
                                 f"phrase:{p.kind}" + ("+echo" if echo else ""), kind=p.kind, echo=echo))
        # the older single-token rarity (symbol runs such as "‡‡" are not words)
        for c in rare_spans(q):
            if not need.blocks(q.text, c.start, c.end):
                out.append(Candidate(c.text, c.query_index, c.start, c.end, 0.8 * c.score, c.source))
    return out


def find_candidates(segments: Sequence[Segment], findings: Sequence[Finding] = (), *,
                    limit: int = 3, answer: str | None = None) -> list[Candidate]:
    """Trigger candidates in the query, best first, non-overlapping.

    Static evidence (findings, the demonstrations detector, shared n-grams) ranks first; the
    query's own phrases, scored by oddness and by the answer's echo (when `answer` is given),
    fill the rest of the `limit`."""
    cands, _ = _from_findings(segments, findings)
    if not cands:
        cands, _ = _from_detector(segments)
    if not cands:
        cands = shared_ngrams(segments)
    cands = [replace(c, score=c.score + 0.5) for c in cands]  # evidence from outside the query
    cands.extend(phrase_candidates(segments, answer))
    out: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (-c.score, c.start)):
        if any(o.query_index == c.query_index and not (c.end <= o.start or o.end <= c.start) for o in out):
            continue
        out.append(c)
    return out[:limit]


def demo_suspects(segments: Sequence[Segment], findings: Sequence[Finding] = ()) -> DemoInfo:
    """Which demonstrations static analysis suspects (findings, else the detector)."""
    _, info = _from_findings(segments, findings)
    if info.suspects:
        return info
    _, det = _from_detector(segments)
    if det is not None and det.suspects:
        return det
    # fallback: demonstrations whose question carries a shared rare n-gram
    shared = shared_ngrams(segments)
    if shared:
        return DemoInfo(suspects=sorted({i for c in shared[:1] for i in c.demonstrations}),
                        source="shared-ngram")
    return DemoInfo()
