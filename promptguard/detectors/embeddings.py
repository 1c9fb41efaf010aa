"""The `embeddings` detector: nearest known attacks plus a learned head.

Each segment is cut into overlapping token windows (so an injection in the tail
of a long document is not truncated away); every window is embedded and
compared with the known-attack index. With a head (the default), a window's
score is the head's probability; without one (`head: none`), it is the
calibrated similarity to the nearest known attack. A segment's score is its best
window's, and the finding carries that window's span and the nearest attack
(id, category, text, cosine similarity and distance) as evidence.

Policy options (all optional)::

    detectors:
      embeddings:
        model: default          # a model folder or an installed package shipping one
        exemplars: null         # attack exemplars JSONL (default: the packaged ones)
        head: default           # default | none | path/to/head.npz
        kinds: [instruction, example, demonstration, context, query]
        min_score: 0.3          # findings below this are not reported
        k: 3                    # nearest attacks per window
        max_windows: 512        # per segment; beyond it the rest is not embedded (and said so)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..findings import Finding, Severity
from ..limits import checkpoint
from ..sanitize import Edit
from ..segments import Segment, SegmentKind
from .base import DetectorError

__all__ = ["REPLACEMENT", "EmbeddingsDetector"]

_DEFAULT_KINDS = [k for k in SegmentKind if k is not SegmentKind.ANSWER]
REPLACEMENT = "[removed by promptguard: suspected prompt injection]"
# Kinds whose flagged window can be cut out of the request; an attacking
# instruction or query is the request itself, so it is blocked instead.
_SANITIZABLE = {SegmentKind.CONTEXT, SegmentKind.EXAMPLE, SegmentKind.DEMONSTRATION}


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for cand in (base_dir / p, Path.cwd() / p):
        if cand.exists():
            return cand
    return base_dir / p


class EmbeddingsDetector:
    name = "embeddings"

    def __init__(
        self,
        *,
        model: str | None = None,
        exemplars: str | Path | None = None,
        head: str | Path | None = "default",
        kinds: Sequence[SegmentKind | str] | None = None,
        min_score: float = 0.3,
        k: int = 3,
        max_windows: int = 512,
        window_tokens: int | None = None,
        overlap_tokens: int | None = None,
        embedder: Any = None,
    ) -> None:
        from ..embeddings import EmbeddingError, get_embedder
        from ..embeddings.attacks import AttackIndex, ExemplarError
        from ..embeddings.head import Head, HeadError

        try:
            self.head = None if head in (None, "none", False) else Head.load(None if head == "default" else head)
        except HeadError as e:
            raise DetectorError(str(e)) from None
        # Similarity -> probability without a head: the Platt calibration stored with the
        # packaged head (fitted on the data its README section describes).
        self.platt = self.head.platt if self.head else _packaged_platt()
        wt = window_tokens or (self.head.window_tokens if self.head else 128)
        ot = overlap_tokens if overlap_tokens is not None else (self.head.overlap_tokens if self.head else 32)
        try:
            self.embedder = embedder or get_embedder(model, window_tokens=wt, overlap_tokens=ot)
            _ = self.embedder.model  # load now: a broken model fails at start-up, not on a request
            self.index = AttackIndex.load(self.embedder, exemplars)
        except (EmbeddingError, ExemplarError) as e:
            raise DetectorError(str(e)) from None
        if self.head is not None and self.head.model and self.head.model != self.embedder.name:
            raise DetectorError(
                f"head was trained on embeddings of {self.head.model}, not {self.embedder.name}: "
                "retrain it with `promptguard train head` or set `head: none`"
            )
        self.kinds = {SegmentKind(k) for k in (kinds or _DEFAULT_KINDS)}
        self.min_score = float(min_score)
        self.k = int(self.head.k if self.head else k)
        self.max_windows = max(1, int(max_windows))

    @classmethod
    def from_config(cls, options: Mapping[str, Any], base_dir: Path) -> EmbeddingsDetector:
        opts = dict(options)
        for key in ("exemplars", "head"):
            v = opts.get(key)
            if isinstance(v, str) and v not in ("default", "none"):
                opts[key] = _resolve(v, base_dir)
        m = opts.get("model")
        if isinstance(m, str) and ("/" in m or m.startswith(".")):
            opts["model"] = str(_resolve(m, base_dir))
        known = {"model", "exemplars", "head", "kinds", "min_score", "k", "max_windows",
                 "window_tokens", "overlap_tokens"}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise DetectorError(f"embeddings: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**opts)

    # -- scoring -------------------------------------------------------------
    def score_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Per text: score, best window span, nearest attack and per-window scores."""
        per_text = []
        flat: list[str] = []
        for t in texts:
            wins = self.embedder.windows(t)
            truncated = len(wins) > self.max_windows
            wins = wins[: self.max_windows]
            per_text.append((wins, truncated))
            flat.extend(w.text for w in wins)
        vecs = self._embed(flat)
        sims, ids = self.index.nearest(vecs, self.k)
        if self.head is not None:
            probs = self.head.predict_windows(vecs, sims)
        else:
            a, b = self.platt
            probs = (1.0 / (1.0 + np.exp(-np.clip(a * sims[:, 0] + b, -40, 40)))).astype(np.float32)
        out = []
        i = 0
        for wins, truncated in per_text:
            n = len(wins)
            if n == 0:
                out.append({"score": 0.0, "windows": 0})
                i += n
                continue
            p, s, ix = probs[i : i + n], sims[i : i + n], ids[i : i + n]
            b = int(np.argmax(p))
            out.append({
                "score": float(p[b]),
                "window": (wins[b].start, wins[b].end),
                "windows": n,
                "truncated": truncated,
                "window_scores": p,
                "window_spans": [(w.start, w.end) for w in wins],
                "similarity": float(s[b, 0]),
                "nearest": [(int(j), float(v)) for j, v in zip(ix[b], s[b]) if j >= 0],
            })
            i += n
        return out

    def _embed(self, windows: list[str], batch: int = 64) -> np.ndarray:
        """The windows' vectors, a batch at a time: between batches a check that ran out
        of time, or whose client went away, stops here (`limits.checkpoint`)."""
        if len(windows) <= batch:
            return self.embedder.embed(windows)
        parts = []
        for i in range(0, len(windows), batch):
            checkpoint()
            parts.append(self.embedder.embed(windows[i:i + batch]))
        return np.vstack(parts)

    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        todo = [s for s in segments if s.kind in self.kinds and s.text.strip()]
        if not todo:
            return []
        findings: list[Finding] = []
        for seg, r in zip(todo, self.score_texts([s.text for s in todo])):
            if r.get("truncated"):
                findings.append(Finding.on(
                    seg, detector=self.name, rule="too-long", score=0.4, severity=Severity.LOW,
                    message=f"only the first {self.max_windows} of its windows were checked",
                ))
            if r["score"] < self.min_score:
                continue
            findings.append(self._finding(seg, r))
        return findings

    def _finding(self, seg: Segment, r: dict[str, Any]) -> Finding:
        j, sim = r["nearest"][0]
        ex = self.index.exemplars[j]
        hot = [list(sp) for sp, p in zip(r["window_spans"], r["window_scores"]) if p >= self.min_score]
        details: dict[str, Any] = {
            "nearest_attack": {
                "id": ex.id, "category": ex.category, "lang": ex.lang, "text": ex.text[:200],
                "similarity": round(sim, 4), "distance": round(1.0 - sim, 4),
            },
            "similarity": round(r["similarity"], 4),
            "scorer": "head" if self.head is not None else "similarity",
            "windows": r["windows"],
        }
        if r["windows"] > 1:
            details["window"] = list(r["window"])
            details["hot_windows"] = hot[:20]
        how = "the learned head" if self.head is not None else "similarity to known attacks"
        msg = (
            f"resembles a known {ex.category} attack ({ex.id}, cosine {sim:.2f}); "
            f"{how} scores it {r['score']:.2f}"
        )
        span = tuple(r["window"]) if r["windows"] > 1 else (0, len(seg.text))
        return Finding.on(
            seg, detector=self.name, rule="known-attack", score=r["score"], message=msg,
            span=span, details=details,
        )

    # -- repair --------------------------------------------------------------
    def sanitize(self, segments: Sequence[Segment], findings: Sequence[Finding]) -> list[Edit] | None:
        """Cut the flagged windows out of context / example / demonstration segments.

        Returns None (so the request is blocked) when a finding is on an
        instruction or a query, which cannot be repaired by removing text."""
        by_key = {(s.prompt, s.kind, s.index): s for s in segments}
        edits: list[Edit] = []
        for f in findings:
            seg = by_key.get((f.prompt, f.segment_kind, f.segment_index))
            if seg is None or seg.kind not in _SANITIZABLE:
                return None
            spans = f.details.get("hot_windows") or [list(f.span or (0, len(seg.text)))]
            # A window starts and ends mid-sentence; cut whole sentences so that the
            # head or tail of the injected instruction is not left behind.
            spans = [_to_sentences(seg.text, a, b) for a, b in spans]
            for start, end in _merge(spans):
                if start <= 0 and end >= len(seg.text):
                    edits.append(Edit(seg, reason="suspected prompt injection (embeddings)"))
                else:
                    edits.append(Edit(seg, start, end, REPLACEMENT, reason="suspected prompt injection (embeddings)"))
        return edits


_SENTENCE_END = re.compile(r"[.!?](?:\s|$)|\n")


def _to_sentences(text: str, start: int, end: int, reach: int = 400) -> list[int]:
    """[start, end) widened to sentence boundaries (at most `reach` characters each way)."""
    lo = max(0, start - reach)
    ends = [m.end() for m in _SENTENCE_END.finditer(text, lo, start)]
    new_start = ends[-1] if ends else (0 if lo == 0 else start)
    m = _SENTENCE_END.search(text, max(end - 1, 0), min(len(text), end + reach))
    new_end = m.end() if m else (len(text) if end + reach >= len(text) else end)
    return [new_start, max(new_end, end)]


def _merge(spans: list[list[int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted((int(a), int(b)) for a, b in spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _packaged_platt() -> tuple[float, float]:
    from ..embeddings.head import Head, HeadError

    try:
        return Head.load(None).platt
    except HeadError:
        return _FALLBACK_PLATT


# Used only when the packaged head is missing: 0.5 at cosine 0.65, 0.85 at 0.8.
_FALLBACK_PLATT = (11.6, -7.5)
