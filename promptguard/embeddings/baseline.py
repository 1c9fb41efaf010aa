"""Baselines: what an application's normal segments look like, per segment kind.

`build_baseline` embeds normal segments (token windows, as everywhere) into one
faiss index per segment kind and calibrates, per kind, a distance threshold at a
target false-positive rate on held-out data:

- the anomaly score of a window is its **mean cosine distance to its k nearest
  normal windows** (k=3 by default; cosine distance = 1 - cosine similarity);
  a segment's score is the max over its windows;
- calibration is k-fold by segment: each fold's segments are scored against an
  index of the other folds' windows (never against windows of their own
  segment), and the threshold is the (1 - target_fpr) quantile of those
  held-out segment scores. The saved index then holds every window, so fresh
  clean data sits at least as close to it as the held-out folds did.

The directory holds `baseline.json` (format version, model, window settings, k,
thresholds and counts per kind) and `<kind>.faiss` per kind. Loading checks the
format version and the model, and refuses a mismatch with a clear message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import Embedder
from .knn import index_type, load_index, make_index, save_index, search

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MIN_SEGMENTS",
    "Baseline",
    "BaselineError",
    "KindBaseline",
    "build_baseline",
    "distance_score",
]

FORMAT = "promptguard-baseline"
FORMAT_VERSION = 1
MIN_SEGMENTS = 10  # per kind; fewer cannot be calibrated at all
DEFAULT_K = 3
DEFAULT_FOLDS = 5
MAX_CALIBRATION_SEGMENTS = 5000  # held-out segments scored for calibration (sampled above)


class BaselineError(ValueError):
    """A baseline cannot be built (too little data) or loaded (missing, corrupt, wrong version)."""


def distance_score(d: float | np.ndarray, threshold: float) -> float | np.ndarray:
    """Map a kNN cosine distance to a 0-1 score: 0.5 exactly at the calibrated
    threshold, linear in distance below it (0 at distance 0) and above it (1 at
    cosine distance 1, i.e. orthogonal to every normal window)."""
    d = np.asarray(d, dtype=np.float64)
    t = min(max(float(threshold), 1e-6), 0.999)
    below = 0.5 * d / t
    above = 0.5 + 0.5 * (d - t) / (1.0 - t)
    out = np.clip(np.where(d < t, below, above), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


@dataclass
class KindBaseline:
    kind: str
    index: Any
    threshold: float
    segments: int
    vectors: int
    calibration: dict[str, Any] = field(default_factory=dict)

    def window_distances(self, vecs: np.ndarray, k: int) -> np.ndarray:
        """Mean cosine distance of each vector to its k nearest normal windows."""
        sims, ids = search(self.index, vecs, k)
        sims = np.where(ids >= 0, sims, -1.0)  # HNSW pads missing neighbours with -1
        return (1.0 - sims).mean(axis=1) if len(vecs) else np.zeros(0)


@dataclass
class Baseline:
    kinds: dict[str, KindBaseline]
    model: str
    window_tokens: int
    overlap_tokens: int
    k: int = DEFAULT_K
    target_fpr: float = 0.01
    meta: dict[str, Any] = field(default_factory=dict)

    # -- scoring -------------------------------------------------------------
    def score_windows(self, kind: str, vecs: np.ndarray) -> np.ndarray | None:
        kb = self.kinds.get(kind)
        if kb is None:
            return None
        return kb.window_distances(vecs, self.k)

    # -- persistence ---------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        kinds = {}
        for name, kb in self.kinds.items():
            fname = f"{name}.faiss"
            save_index(kb.index, d / fname)
            kinds[name] = {
                "index": fname, "index_type": index_type(kb.index), "threshold": kb.threshold,
                "segments": kb.segments, "vectors": kb.vectors, "calibration": kb.calibration,
            }
        from .. import __version__

        doc = {
            "format": FORMAT, "version": FORMAT_VERSION, "promptguard": __version__,
            "model": self.model, "window_tokens": self.window_tokens, "overlap_tokens": self.overlap_tokens,
            "k": self.k, "metric": f"mean cosine distance to the {self.k} nearest normal windows",
            "target_fpr": self.target_fpr, "kinds": kinds, **self.meta,
        }
        (d / "baseline.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, model: str | None = None) -> Baseline:
        """Read a baseline directory; `model` (an embedder name), when given, must match."""
        d = Path(directory)
        meta_p = d / "baseline.json"
        if not d.is_dir():
            raise BaselineError(f"baseline directory not found: {d}")
        if not meta_p.is_file():
            raise BaselineError(f"{d} is not a baseline (no baseline.json); build one with `promptguard baseline build`")
        try:
            doc = json.loads(meta_p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BaselineError(f"{meta_p}: unreadable ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BaselineError(f"{meta_p} is not a promptguard baseline file")
        if doc.get("version") != FORMAT_VERSION:
            raise BaselineError(
                f"{d} is baseline format version {doc.get('version')}, this promptguard reads version "
                f"{FORMAT_VERSION}: rebuild it with `promptguard baseline build`"
            )
        if model is not None and doc.get("model") != model:
            raise BaselineError(
                f"{d} was built with embedding model {doc.get('model')!r}, not {model!r}: rebuild it"
            )
        kinds: dict[str, KindBaseline] = {}
        try:
            for name, k in doc["kinds"].items():
                p = d / k["index"]
                if not p.is_file():
                    raise BaselineError(f"{d}: index file {k['index']} for kind {name!r} is missing")
                try:
                    index = load_index(p)
                except RuntimeError as e:
                    raise BaselineError(f"{p}: not a faiss index ({str(e).splitlines()[0]})") from None
                if index.ntotal != int(k["vectors"]):
                    raise BaselineError(f"{p}: holds {index.ntotal} vectors, baseline.json says {k['vectors']}")
                kinds[name] = KindBaseline(name, index, float(k["threshold"]), int(k["segments"]),
                                           int(k["vectors"]), k.get("calibration", {}))
            base = cls(kinds, doc["model"], int(doc["window_tokens"]), int(doc["overlap_tokens"]),
                       int(doc["k"]), float(doc.get("target_fpr", 0.01)))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, BaselineError):
                raise
            raise BaselineError(f"{meta_p}: malformed ({type(e).__name__}: {e})") from None
        if not kinds:
            raise BaselineError(f"{d}: the baseline has no segment kinds")
        return base


def _embed_segments(embedder: Embedder, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All windows' vectors, and for each window the segment it came from."""
    flat: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(texts):
        for w in embedder.windows(t):
            flat.append(w.text)
            owner.append(i)
    vecs = embedder.embed(flat) if flat else np.zeros((0, 1), np.float32)
    return vecs, np.asarray(owner, dtype=np.int64)


def _segment_max(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, owner, values)
    return out


def calibrate(
    vecs: np.ndarray, owner: np.ndarray, n_segments: int, *, k: int, folds: int, target_fpr: float, seed: int = 0
) -> tuple[float, dict[str, Any]]:
    """Threshold at the (1 - target_fpr) quantile of held-out segment scores (k-fold by segment)."""
    rng = np.random.default_rng(seed)
    folds = max(2, min(folds, n_segments))
    assign = rng.permutation(n_segments) % folds
    # Score at most MAX_CALIBRATION_SEGMENTS held-out segments (sampled evenly over folds).
    scored = np.ones(n_segments, dtype=bool)
    if n_segments > MAX_CALIBRATION_SEGMENTS:
        scored[:] = False
        scored[rng.choice(n_segments, MAX_CALIBRATION_SEGMENTS, replace=False)] = True
    scores = np.full(n_segments, np.nan)
    for f in range(folds):
        held = assign[owner] == f
        train = ~held
        if not train.any():
            continue
        q = held & scored[owner]
        if not q.any():
            continue
        index = make_index(vecs[train], "flat")  # exact; only <= 5,000 held-out queries are scored
        sims, ids = search(index, vecs[q], k)
        sims = np.where(ids >= 0, sims, -1.0)
        d = (1.0 - sims).mean(axis=1)
        seg = _segment_max(d, owner[q], n_segments)
        mask = np.isfinite(seg)
        scores[mask] = seg[mask]
    held_scores = scores[np.isfinite(scores)]
    if not len(held_scores):
        raise BaselineError("calibration scored no held-out segment")
    # "higher": the smallest held-out score with at most target_fpr of scores above it.
    q_level = 1.0 - target_fpr
    threshold = float(np.quantile(held_scores, q_level, method="higher"))
    info = {
        "folds": folds,
        "held_out_segments": len(held_scores),
        "held_out_fpr_at_threshold": float((held_scores > threshold).mean()),
        "distance_quantiles": {
            str(p): round(float(np.quantile(held_scores, p)), 4) for p in (0.5, 0.9, 0.95, 0.99)
        },
        "max_distance": round(float(held_scores.max()), 4),
    }
    if len(held_scores) * target_fpr < 1:
        info["warning"] = (
            f"only {len(held_scores)} held-out segments: the threshold is the largest held-out distance "
            f"and the false-positive rate cannot be calibrated below 1/{len(held_scores)}"
        )
    return threshold, info


def build_baseline(
    segments: Mapping[str, Sequence[str]],
    embedder: Embedder,
    *,
    target_fpr: float = 0.01,
    k: int = DEFAULT_K,
    folds: int = DEFAULT_FOLDS,
    min_segments: int = MIN_SEGMENTS,
    index_kind: str = "auto",
    seed: int = 0,
) -> tuple[Baseline, list[str]]:
    """A calibrated baseline from normal texts grouped by segment kind, and warnings.

    Kinds with fewer than `min_segments` distinct texts are left out (with a
    warning); if none is left, BaselineError says what was found.
    """
    if not 0.0 < target_fpr < 0.5:
        raise BaselineError(f"target false-positive rate must be in (0, 0.5), not {target_fpr}")
    if k < 1:
        raise BaselineError(f"k must be at least 1, not {k}")
    warnings: list[str] = []
    kinds: dict[str, KindBaseline] = {}
    counts = {}
    for kind, texts in segments.items():
        uniq = list(dict.fromkeys(t for t in texts if t and t.strip()))
        counts[kind] = len(uniq)
        if len(uniq) < min_segments:
            if uniq:
                warnings.append(
                    f"{kind}: only {len(uniq)} distinct segment(s), need {min_segments} to calibrate; kind left out"
                )
            continue
        t0 = time.perf_counter()
        vecs, owner = _embed_segments(embedder, uniq)
        threshold, info = calibrate(vecs, owner, len(uniq), k=k, folds=folds, target_fpr=target_fpr, seed=seed)
        info["seconds"] = round(time.perf_counter() - t0, 2)
        if "warning" in info:
            warnings.append(f"{kind}: {info['warning']}")
        index = make_index(vecs, index_kind)
        kinds[kind] = KindBaseline(kind, index, threshold, len(uniq), len(vecs), info)
    if not kinds:
        found = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no segments at all"
        raise BaselineError(
            f"not enough normal data for a baseline: need at least {min_segments} distinct segments "
            f"of one kind, found {found}"
        )
    base = Baseline(kinds, embedder.name, embedder.window_tokens, embedder.overlap_tokens, k, target_fpr)
    return base, warnings


__all__ += ["calibrate"]
