"""Exact and near-duplicate removal.

Public datasets copy each other, so a row held out with its source may also sit,
slightly edited, in another source used for training. Two passes:

1. exact: NFKC + case-fold + whitespace-collapse keys (`rows.normalise`);
2. near: character 3–5-gram TF-IDF cosine ≥ `threshold` (0.9), found without an
   all-pairs product: MinHash signatures over character 5-gram shingles, banded
   (LSH) to propose candidate pairs, each candidate then checked with the exact
   TF-IDF cosine.

Rows come in priority order; of a duplicate pair from different sources the
later one is dropped (so a held-out source keeps its rows and the training side
loses the copy). Copies that disagree on the label are all dropped.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .rows import Row, normalise

__all__ = ["DedupReport", "deduplicate", "near_duplicate_pairs"]

_MAX_CHARS = 4000
_PRIME = (1 << 61) - 1


@dataclass
class DedupReport:
    exact_same_source: int = 0
    exact_cross_source: int = 0
    label_conflicts: int = 0
    near_cross_source: int = 0
    near_pairs_found: int = 0
    dropped_by_source: dict[str, int] = field(default_factory=dict)

    def drop(self, row: Row) -> None:
        self.dropped_by_source[row.source] = self.dropped_by_source.get(row.source, 0) + 1

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _shingles(text: str, k: int = 5) -> np.ndarray:
    t = normalise(text)[:_MAX_CHARS]
    if len(t) < k:
        t = t.ljust(k)
    grams = {t[i : i + k] for i in range(len(t) - k + 1)}
    return np.fromiter((zlib.crc32(g.encode("utf-8", "surrogatepass")) for g in grams), dtype=np.uint64, count=len(grams))


def _signatures(texts: Sequence[str], n_perm: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, n_perm, dtype=np.uint64)
    b = rng.integers(0, _PRIME, n_perm, dtype=np.uint64)
    sig = np.empty((len(texts), n_perm), dtype=np.uint64)
    for i, t in enumerate(texts):
        h = _shingles(t)
        # (a*h + b) mod p on 64 bits: fine as a hash family (overflow wraps), not a strict universal hash
        sig[i] = ((h[:, None] * a[None, :] + b[None, :]) % np.uint64(_PRIME)).min(axis=0)
    return sig


def near_duplicate_pairs(texts: Sequence[str], threshold: float = 0.9, *, bands: int = 10, rows_per_band: int = 3,
                         allowed=None) -> list[tuple[int, int, float]]:
    """(i, j, cosine) with i < j and char 3–5-gram TF-IDF cosine ≥ threshold.

    `allowed(i, j)` filters candidate pairs before the exact check (e.g. only
    pairs from different sources)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    if n < 2:
        return []
    sig = _signatures(texts, bands * rows_per_band)
    cands: set[tuple[int, int]] = set()
    for bnd in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        part = np.ascontiguousarray(sig[:, bnd * rows_per_band : (bnd + 1) * rows_per_band])
        for i in range(n):
            buckets[part[i].tobytes()].append(i)
        for members in buckets.values():
            if 1 < len(members) <= 2000:
                for x in range(len(members)):
                    for y in range(x + 1, len(members)):
                        i, j = members[x], members[y]
                        if allowed is None or allowed(i, j):
                            cands.add((i, j))
    if not cands:
        return []
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True, dtype=np.float32)
    X = vec.fit_transform([normalise(t)[:_MAX_CHARS] for t in texts])
    pairs = np.array(sorted(cands), dtype=np.int64)
    out = []
    for s in range(0, len(pairs), 20000):
        p = pairs[s : s + 20000]
        sims = np.asarray(X[p[:, 0]].multiply(X[p[:, 1]]).sum(axis=1)).ravel()
        for (i, j), v in zip(p.tolist(), sims.tolist()):
            if v >= threshold:
                out.append((i, j, float(v)))
    return out


def deduplicate(rows: Sequence[Row], threshold: float = 0.9) -> tuple[list[Row], DedupReport]:
    """`rows` (in priority order) without exact duplicates, label conflicts and
    cross-source near-duplicates."""
    rep = DedupReport()
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_key[normalise(r.text)].append(i)
    keep = [True] * len(rows)
    for idx in by_key.values():
        if len(idx) == 1:
            continue
        if len({rows[i].label for i in idx}) > 1:
            rep.label_conflicts += len(idx)
            for i in idx:
                keep[i] = False
                rep.drop(rows[i])
            continue
        first = rows[idx[0]]
        for i in idx[1:]:
            keep[i] = False
            rep.drop(rows[i])
            if rows[i].source == first.source:
                rep.exact_same_source += 1
            else:
                rep.exact_cross_source += 1
    kept = [i for i in range(len(rows)) if keep[i]]
    texts = [rows[i].text for i in kept]
    srcs = [rows[i].source for i in kept]
    pairs = near_duplicate_pairs(texts, threshold, allowed=lambda a, b: srcs[a] != srcs[b])
    rep.near_pairs_found = len(pairs)
    for a, b, _ in pairs:
        # a < b: b comes later in priority order
        if keep[kept[a]] and keep[kept[b]]:
            keep[kept[b]] = False
            rep.near_cross_source += 1
            rep.drop(rows[kept[b]])
    return [r for i, r in enumerate(rows) if keep[i]], rep
