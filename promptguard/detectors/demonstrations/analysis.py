"""The analysis: demonstrations → step signals → trigger candidates → scores.

The part that depends only on the demonstrations (the few-shot *template*) is cached
under a hash of their texts, so repeated traffic with the same few-shot block pays
for it once; matching the user's query against the cached triggers is per request.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...segments import Segment, SegmentKind
from .scoring import Weights, load_weights, logistic
from .signals import StepSignals, sibling_signals, step_signals
from .structure import Demo, Range, demos_of, queries_of
from .text import Value, is_content, is_plain_symbol, stem, tokenize
from .triggers import (
    RawCandidate,
    candidate_regex,
    echo_candidates,
    echo_trim,
    find_occurrences,
    inserted_candidates,
    mine_candidates,
    stop_fraction,
    token_rarity,
)

__all__ = [
    "CACHE",
    "DemoVerdict",
    "DemonstrationReport",
    "TemplateCache",
    "TriggerCandidate",
    "TriggerSpan",
    "analyze_demonstrations",
    "clear_caches",
    "find_trigger_candidates",
    "query_carries_trigger",
]


# -- public result types ------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerSpan:
    segment_kind: SegmentKind
    segment_index: int
    start: int
    end: int
    part: str  # question | step | answer | query

    def to_dict(self) -> dict:
        return {"segment_kind": self.segment_kind.value, "segment_index": self.segment_index,
                "span": [self.start, self.end], "part": self.part}


@dataclass(frozen=True)
class TriggerCandidate:
    text: str
    score: float
    demonstrations: tuple[int, ...]
    spans: tuple[TriggerSpan, ...]
    features: dict = field(default_factory=dict, compare=False)
    # (kind, index) of the carrying segments: `demonstrations` holds indices only, and
    # a chat prompt's short worked examples are segments of kind `example`
    carriers: tuple[tuple[SegmentKind, int], ...] = ()

    @property
    def query_spans(self) -> tuple[TriggerSpan, ...]:
        return tuple(s for s in self.spans if s.part == "query")

    @property
    def in_query(self) -> bool:
        return any(s.part == "query" for s in self.spans)

    def to_dict(self) -> dict:
        return {"text": self.text, "score": round(self.score, 4), "demonstrations": list(self.demonstrations),
                "spans": [s.to_dict() for s in self.spans]}


@dataclass(frozen=True)
class DemoVerdict:
    index: int
    score: float
    signals: dict[str, float]
    backdoor_step: tuple[int, int] | None
    trigger_spans: tuple[TriggerSpan, ...]
    step_score: float = 0.0
    trigger_score: float = 0.0
    # the result the backdoor step transformed (for repair), as written in the reasoning
    restored_answer: str | None = None
    segment_kind: SegmentKind = SegmentKind.DEMONSTRATION


@dataclass(frozen=True)
class DemonstrationReport:
    score: float
    demos: tuple[DemoVerdict, ...]
    candidates: tuple[TriggerCandidate, ...]
    active: TriggerCandidate | None
    cached: bool
    template: str = ""  # hash of the demonstrations

    def demo(self, index: int, kind: SegmentKind = SegmentKind.DEMONSTRATION) -> DemoVerdict | None:
        return next((d for d in self.demos if d.index == index and d.segment_kind is kind), None)


# -- positional core (cached per template) ------------------------------------------------


@dataclass(frozen=True)
class _CoreCand:
    text: str
    score: float
    demo_pos: tuple[int, ...]
    occ: tuple[tuple[int, str, int, int], ...]  # (demo pos, part, start, end)
    features: dict


@dataclass(frozen=True)
class _Core:
    n: int
    demo_scores: tuple[float, ...]
    step_scores: tuple[float, ...]
    trig_scores: tuple[float, ...]
    signals: tuple[dict, ...]
    steps: tuple[Range | None, ...]
    restore: tuple[str | None, ...]
    cands: tuple[_CoreCand, ...]
    score: float


def _anomaly(s: StepSignals) -> float:
    # (a verdict announced in the last line is not itself a change: a template of
    # "So the result is yes." lines is not a backdoor)
    return max(s.unary, s.ungrounded, s.not_in_choices, s.reversal, s.departs, s.continues)


def _step_features(s: StepSignals, sigs: list[StepSignals] | None = None) -> dict[str, float]:
    f = s.as_dict()
    anomaly = _anomaly(s)
    # siblings ending the same way, counted only as far as that ending is itself anomalous
    # (a prompt whose every example ends alike is a template, not a backdoor)
    purity = 1.0
    if sigs is not None and anomaly > 0 and len(s.skeleton) >= 3:
        same = [o for o in sigs if o.skeleton == s.skeleton]
        purity = sum(1 for o in same if _anomaly(o) > 0) / len(same)
    f["skel_x_anomaly"] = s.skeleton_share * anomaly * purity
    return f


def _item(t) -> str | None:
    """What a token contributes to echo / foreignness: a content stem or an odd symbol."""
    if t.kind == "invis" or (t.kind == "sym" and not is_plain_symbol(t.norm)):
        return t.norm
    if is_content(t):
        return stem(t.norm)
    return None


class _Context:
    """Per-prompt token items, computed once for all candidates."""

    def __init__(self, demos: list[Demo]):
        self.e_items: list[set[str]] = []
        self.l_items: list[set[str]] = []
        self.items: list[list[tuple[int, str]]] = []  # (start, item) in fields + earlier steps
        self.total: dict[str, int] = {}
        for d in demos:
            e: set[str] = set()
            lst: list[tuple[int, str]] = []
            for r in d.fields:
                for t in d.tokens(r):
                    it = _item(t)
                    if it is not None:
                        lst.append((t.start, it))
            for r in d.steps[:-1]:
                for t in d.tokens(r):
                    it = _item(t)
                    if it is not None:
                        lst.append((t.start, it))
                        e.add(it)
            lt = {it for t in d.tokens(d.steps[-1]) if (it := _item(t)) is not None} if d.steps else set()
            self.e_items.append(e)
            self.l_items.append(lt)
            self.items.append(lst)
            for _, it in lst:
                self.total[it] = self.total.get(it, 0) + 1


def _quantile(xs: list[float], q: float) -> float:
    """The q-quantile of sorted xs (linear interpolation)."""
    k = (len(xs) - 1) * q
    i = int(k)
    return xs[i] if i + 1 >= len(xs) else xs[i] + (xs[i + 1] - xs[i]) * (k - i)


def _candidate_features(c: RawCandidate, demos: list[Demo], step_p: list[float],
                        ctx: _Context, sigs: list[StepSignals] | None = None) -> dict[str, float]:
    n = len(demos)
    ds = c.demo_set
    toks = tokenize(c.text)
    cand_items = {it for t in toks if (it := _item(t)) is not None}
    odd = any(t.kind == "invis" or (t.kind == "sym" and not is_plain_symbol(t.norm)) for t in toks)
    # echo: the demonstration's last line repeats the candidate, exactly, or in part
    # (tokens of the candidate that the last line uses and no earlier line does)
    echo = 0.0
    exact = 0
    lead = 0
    in_last: list[tuple[int, int, int]] = []
    for p in ds:
        d = demos[p]
        if not d.steps:
            continue
        L = d.steps[-1]
        # an echo in the line that draws the chain's only conclusion is the task's own
        # wording ("... with hyphens." → "With hyphens between them: 'a-b-c'."), not a step
        w = 0.25 if sigs is not None and sigs[p].concluding else 1.0
        here = [o for o in c.step_occ if o[0] == p and o[1] >= L[0] and o[2] <= L[1]]
        if here:
            in_last.extend(here)
            if d.text[L[0] : min(o[1] for o in here)].strip(" \t:-–—*>") == "":
                lead += w  # the last line opens with it, where the attack puts it
            elif not odd:
                # ordinary words of the question named again inside the conclusion ("So
                # 2015 is not a leap year.") are what conclusions do
                w *= 0.4
            echo += w
            exact += w
            continue
        hit = len([x for x in cand_items if x in ctx.l_items[p] and x not in ctx.e_items[p]])
        echo += 0.5 * min(hit, 2) * w
    echo_rate = echo / len(ds) if ds else 0.0
    step_in = sum(step_p[p] for p in ds) / len(ds) if ds else 0.0
    if n > 1 and len(ds) == n:
        # every question carries it (the task's own wording, or an 8+0 attack): with no
        # demonstration to contrast, it is supported only as far as (nearly) all of them
        # end anomalously, not by the few that do (a trigger elsewhere explains those):
        # the lower quartile of their step probabilities
        step_in = _quantile(sorted(step_p[p] for p in ds), 0.25)
    outside = [step_p[p] for p in range(n) if p not in ds]
    step_out = sum(outside) / len(outside) if outside else 0.0
    contrast = max(0.0, step_in - step_out) if outside else 0.0
    # separation: how often a carrier ends more suspiciously than a non-carrier (scale-free)
    sep = 0.0
    if outside and ds:
        pairs = [(step_p[p], q) for p in ds for q in outside]
        sep = sum(1.0 if a > b + 0.02 else 0.0 for a, b in pairs) / len(pairs)
    # the carriers' last lines share a template that no other demonstration's has
    template_in = 0.0
    if sigs is not None and ds:
        skel_out = {sigs[p].skeleton for p in range(n) if p not in ds}
        hits = 0
        for p in ds:
            sk = sigs[p].skeleton
            if len(sk) >= 3 and sk not in skel_out and any(sigs[q].skeleton == sk for q in ds if q != p):
                hits += 1
        template_in = hits / len(ds)
    # ... and that shared last line changes the result it was given
    anomaly_in = 0.0
    if sigs is not None and ds:
        anomaly_in = sum(
            max(sigs[p].transform, sigs[p].unary, sigs[p].reversal, sigs[p].ungrounded,
                sigs[p].yesno_stated, sigs[p].not_in_choices, sigs[p].departs) for p in ds) / len(ds)
    # foreign: the candidate's tokens occur nowhere else in the demonstrations
    inside: dict[str, int] = {}
    for p, s, e in list(c.occ) + in_last:
        for start, it in ctx.items[p]:
            if s <= start < e and it in cand_items:
                inside[it] = inside.get(it, 0) + 1
    foreign = (
        len([x for x in cand_items if ctx.total.get(x, 0) <= inside.get(x, 0)]) / len(cand_items)
        if cand_items else 0.0
    )
    # edge: occurrences at the start or end of their field (after punctuation)
    edge = 0
    for p, s, e in c.occ:
        d = demos[p]
        for f in d.fields:
            if f[0] <= s and e <= f[1]:
                before = d.text[f[0] : s].strip(" \t\n.,;:!?")
                after = d.text[e : f[1]].strip(" \t\n.,;:!?")
                if not before or not after or d.text[f[0]:s].rstrip().endswith((".", "?", "!")):
                    edge += 1
                break
    rarity = token_rarity(toks)
    stop = stop_fraction(toks)
    # how specific the span is: an odd symbol, or several content words (not "mg")
    n_content = sum(1 for t in toks if is_content(t))
    specific = 1.0 if odd else min(1.0, n_content / 2.0)
    edge_f = edge / len(c.occ) if c.occ else 0.0
    # how much the span looks inserted (odd, foreign to the demonstrations, at an edge)
    plaus = (rarity + foreign + edge_f) / 3.0 * (1.0 - 0.5 * stop)
    single = len(ds) < 2
    lead_echo = (lead / len(ds) if ds else 0.0) * specific
    if single:
        # an echo candidate is built from its echo, and one carrier always "separates":
        # neither says anything for a single carrier
        echo_rate = 0.0
        sep = 0.0
    sentence = 1.0 if c.sentence else 0.0
    return {
        "sentence_step": sentence * step_in,
        "lead_echo_step": lead_echo * step_in,
        "echo_rate": echo_rate,
        "step_in": step_in,
        "contrast": contrast,
        "rarity": rarity,
        "foreign": foreign,
        "stop_frac": stop,
        "edge": edge_f,
        "plaus": plaus,
        "echo_x_plaus": echo_rate * plaus,
        # carriers whose last line repeats the span verbatim, weighted by how specific it is
        # (one carrier proves nothing: a question's own entity is often named again last)
        "exact_echo": (exact / len(ds) if len(ds) >= 2 else 0.0) * specific * foreign,
        "step_x_plaus": step_in * plaus,
        "contrast_x_plaus": contrast * plaus,
        "sep": sep,
        "template_in": template_in,
        "sep_x_plaus": sep * plaus,
        "template_x_plaus": template_in * plaus,
        "template_anomaly": template_in * anomaly_in * plaus,
        "single": 1.0 if single else 0.0,
        # one question holds an odd symbol run nothing else has, and ends anomalously
        "single_odd_step": (1.0 if single and odd else 0.0) * step_in,
        "all_demos": 1.0 if len(ds) == n and n > 1 else 0.0,
        "df_frac": len(ds) / n if n else 0.0,
    }


class _ReasoningIndex:
    """Where each token occurs in the demonstrations' reasoning lines and answers, so
    that every candidate is found again there by its tokens (no pattern per candidate)."""

    def __init__(self, demos: list[Demo]):
        self.where: dict[str, list[tuple[int, bool, list, int]]] = {}
        for d in demos:
            parts = [(r, True) for r in d.steps] + ([(d.answer, False)] if d.answer and d.steps else [])
            for r, is_step in parts:
                toks = d.tokens(r)
                for i, t in enumerate(toks):
                    self.where.setdefault(t.norm, []).append((d.pos, is_step, toks, i))

    def locate(self, c: RawCandidate) -> None:
        """Fill c.step_occ / c.answer_occ: the candidate again in reasoning lines and answers."""
        g = c.tokens
        n = len(g)
        if not n:
            return
        for pos, is_step, toks, i in self.where.get(g[0], ()):
            if i + n <= len(toks) and all(toks[i + k].norm == g[k] for k in range(1, n)):
                occ = (pos, toks[i].start, toks[i + n - 1].end)
                (c.step_occ if is_step else c.answer_occ).append(occ)


def _restorable(d: Demo, s: StepSignals) -> str | None:
    """What the answer was before the backdoor step (for repair), as written: the
    value the chain had reached (a stretch of an earlier line, for a long answer)."""
    if not d.steps:
        return None
    pv: Value | None = s.prev_value
    if pv is None or pv.end > len(d.text):
        return None
    # an option the chain named by its text ("Cairo is listed ...") is restored as its letter
    return pv.key if pv.kind == "letter" else d.text[pv.start : pv.end]


def stage_steps(demos: list[Demo], weights: Weights) -> tuple[list[StepSignals], list[dict], list[float]]:
    """Stage 1: step signals, their features and the step probabilities."""
    sigs = [step_signals(d) for d in demos]
    sibling_signals(sigs)
    feats = [_step_features(s, sigs) for s in sigs]
    step_p = [logistic(weights["step"], f) if d.steps else 0.0 for d, f in zip(demos, feats)]
    return sigs, feats, step_p


def stage_candidates(demos: list[Demo], sigs: list[StepSignals], step_p: list[float],
                     trigger_weights: dict[str, float] | None = None
                     ) -> list[tuple[RawCandidate, dict[str, float]]]:
    """Stage 2: trigger candidates and their features. With `trigger_weights`, the runs
    that look inserted are looked for only in the demonstrations that end anomalously
    and carry no candidate that scores as a trigger (the cheap common case first)."""
    cands = mine_candidates(demos)
    # a candidate whose carriers end anomalously and whose carriers' last lines open
    # with a part of it: that part
    for k, c in enumerate(cands):
        if sum(step_p[p] for p in c.demo_set) < 0.3 * len(c.demo_set):
            continue
        t = echo_trim(c, demos, c.kept)
        if t is not None and not any(o.tokens == t.tokens for o in cands):
            cands[k] = t
    # where each recurring candidate also occurs in reasoning lines and answers
    index = _ReasoningIndex(demos)
    for c in cands:
        index.locate(c)
    covered = {(p, s) for c in cands for p, s, _ in c.occ}
    # single-demonstration candidates through echoes (only where no recurring candidate explains it)
    echo_map = {d.pos: sigs[d.pos].echo_tokens for d in demos if sigs[d.pos].echo_tokens}
    for c in echo_candidates(demos, echo_map, covered):
        index.locate(c)
        if not any(set(c.tokens) <= set(o.tokens) for o in cands):
            cands.append(c)
    ctx = _Context(demos)
    out = [(c, _candidate_features(c, demos, step_p, ctx, sigs)) for c in cands]
    # ... and, for a demonstration that ends anomalously with no trigger found, the runs
    # of its question that look inserted
    orphans = [p for p, sp in enumerate(step_p) if sp >= INSERTED_MIN_STEP]
    if orphans and trigger_weights is not None:
        found = {p for c, f in out if logistic(trigger_weights, f) >= 0.5 for p in c.demo_set}
        orphans = [p for p in orphans if p not in found]
    if orphans:
        covered |= {(p, s) for c in cands for p, s, _ in c.occ}
        for c in inserted_candidates(demos, orphans, covered):
            if not any(c.tokens == o.tokens for o in cands):
                index.locate(c)
                cands.append(c)
                out.append((c, _candidate_features(c, demos, step_p, ctx, sigs)))
    return out


INSERTED_MIN_STEP = 0.5


def demo_features(n: int, step_p: list[float], scored: list[tuple[float, RawCandidate, dict]]) -> list[dict[str, float]]:
    """Stage 3 inputs: per demonstration, its step probability and its best trigger."""
    trig = [0.0] * n
    echo_of = [0.0] * n
    for sc, c, _f in scored:
        for p in c.demo_set:
            if sc > trig[p]:
                trig[p] = sc
                # the step repeats the trigger: as telling as the trigger is
                echo_of[p] = sc if any(o[0] == p for o in c.step_occ) else 0.0
    return [{"step": step_p[i], "trigger": trig[i], "step_x_trigger": step_p[i] * trig[i],
             "echo_of_trigger": echo_of[i]} for i in range(n)]


def _analyze_core(demos: list[Demo], weights: Weights) -> _Core:
    n = len(demos)
    sigs, feats, step_p = stage_steps(demos, weights)
    scored = [(logistic(weights["trigger"], f), c, f) for c, f in stage_candidates(demos, sigs, step_p, weights["trigger"])]
    scored.sort(key=lambda x: -x[0])
    dfeats = demo_features(n, step_p, scored)
    trig = [x["trigger"] for x in dfeats]
    demo_p = [logistic(weights["demo"], x) for x in dfeats]

    core_cands = []
    for sc, c, f in scored[:8]:
        occ = [(p, "question", s, e) for p, s, e in c.occ]
        occ += [(p, "step", s, e) for p, s, e in c.step_occ]
        occ += [(p, "answer", s, e) for p, s, e in c.answer_occ]
        occ.sort(key=lambda o: (o[0], o[2]))
        core_cands.append(_CoreCand(c.text, sc, tuple(sorted(c.demo_set)), tuple(occ),
                                    {k: round(v, 3) for k, v in f.items()} | {"source": c.source}))
    restore = [_restorable(d, s) for d, s in zip(demos, sigs)]
    signals = []
    for f, sp in zip(feats, step_p):
        signals.append({k: round(v, 3) for k, v in f.items() if v} | {"step_score": round(sp, 3)})
    return _Core(
        n=n,
        demo_scores=tuple(demo_p),
        step_scores=tuple(step_p),
        trig_scores=tuple(trig),
        signals=tuple(signals),
        steps=tuple(s.step for s in sigs),
        restore=tuple(restore),
        cands=tuple(core_cands),
        score=max(demo_p, default=0.0),
    )


# -- the cache ---------------------------------------------------------------------------


class TemplateCache:
    """A small thread-safe LRU of template analyses."""

    def __init__(self, maxsize: int = 2048):
        self.maxsize = maxsize
        self._data: OrderedDict[str, _Core] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> _Core | None:
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return v

    def put(self, key: str, value: _Core) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)


CACHE = TemplateCache()


def clear_caches() -> None:
    """Forget everything memoised (the template cache and the small token / pattern
    caches): what a cold start sees. For benchmarks and tests."""
    from ...answers import _as_float
    from .text import _tokenize_whole, is_plain_symbol, stem

    CACHE.clear()
    candidate_regex.cache_clear()
    _tokenize_whole.cache_clear()
    _as_float.cache_clear()
    stem.cache_clear()
    is_plain_symbol.cache_clear()


def template_key(demos: list[Demo], weights_name: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(weights_name.encode())
    for d in demos:
        h.update(b"\x00demo\x00")
        h.update(d.text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


# -- the public entry points --------------------------------------------------------------


def analyze_demonstrations(
    segments: Sequence[Segment],
    *,
    weights: str = "auto",
    cache: TemplateCache | None = CACHE,
) -> DemonstrationReport:
    """Analyse one prompt's demonstrations (and match its query against the triggers)."""
    demos = demos_of(segments)
    queries = queries_of(segments)
    if not demos:
        return DemonstrationReport(0.0, (), (), None, False, "")
    w = load_weights(weights)
    key = template_key(demos, weights)
    core = cache.get(key) if cache is not None else None
    hit = core is not None
    if core is None:
        core = _analyze_core(demos, w)
        if cache is not None:
            cache.put(key, core)
    return _materialize(core, demos, queries, hit, key)


def _materialize(core: _Core, demos: list[Demo], queries: list[Segment], hit: bool, key: str) -> DemonstrationReport:
    cands: list[TriggerCandidate] = []
    for c in core.cands:
        spans = [TriggerSpan(demos[p].seg.kind, demos[p].index, s, e, part) for p, part, s, e in c.occ]
        pat = candidate_regex(c.text)
        if pat is not None:
            for q in queries:
                for s, e in find_occurrences(pat, q.text, [(0, len(q.text))]):
                    spans.append(TriggerSpan(q.kind, q.index, s, e, "query"))
        cands.append(TriggerCandidate(c.text, c.score, tuple(demos[p].index for p in c.demo_pos),
                                      tuple(spans), dict(c.features),
                                      tuple((demos[p].seg.kind, demos[p].index) for p in c.demo_pos)))
    verdicts = []
    for d in demos:
        p = d.pos
        tspans: list[TriggerSpan] = []
        # trigger occurrences in this demonstration: from the best candidate carried by it
        best = next((c for c in cands if (d.seg.kind, d.index) in c.carriers), None)
        if best is not None:
            tspans = [s for s in best.spans if s.segment_kind is d.seg.kind and s.segment_index == d.index]
        verdicts.append(DemoVerdict(
            index=d.index,
            score=core.demo_scores[p],
            signals=dict(core.signals[p]),
            backdoor_step=core.steps[p],
            trigger_spans=tuple(tspans),
            step_score=core.step_scores[p],
            trigger_score=core.trig_scores[p],
            restored_answer=core.restore[p],
            segment_kind=d.seg.kind,
        ))
    active = next((c for c in cands if c.in_query and c.score >= 0.5), None)
    return DemonstrationReport(core.score, tuple(verdicts), tuple(cands), active, hit, key)


def find_trigger_candidates(segments: Sequence[Segment], *, min_score: float = 0.0) -> list[TriggerCandidate]:
    """Trigger candidates of the prompt's demonstrations, best first."""
    return [c for c in analyze_demonstrations(segments).candidates if c.score >= min_score]


def query_carries_trigger(segments: Sequence[Segment], *, min_score: float = 0.5) -> TriggerCandidate | None:
    """The best candidate (score ≥ min_score) that also occurs in a query segment."""
    for c in analyze_demonstrations(segments).candidates:
        if c.score >= min_score and c.in_query:
            return c
    return None
