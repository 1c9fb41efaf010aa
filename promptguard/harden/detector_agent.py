"""The Detector agent: retrain the trainable parts under a false-positive constraint.

What it trains, each round:

- the hardened head (two logistic models over `features`), refit from scratch on
  every successful evasion so far (replayed across rounds so it does not forget),
  their clean twins (same items, same document, no poison: hard negatives) and
  clean prompts sampled from the attack space's domains and carriers;
- the operating thresholds, on *held* clean calibration prompts, maximising recall
  on the attacks generated so far (never on the fixed validation set). Two modes:

  * ``added`` (default): the base detectors keep the policy's thresholds (so
    nothing they caught is lost) and the head may add at most
    `target_fpr × margin` false positives on top of theirs;
  * ``total`` (`tune_base=True`): one threshold per base detector too (the
    policy's own, or stricter: 0.6 ... 0.99, or off), chosen jointly with the
    head's so that the whole detector (base OR head) stays within `target_fpr` —
    the way to bring a base policy that is already over budget back under it, at
    the cost of what its detectors catch.

  "Stays within" is a statement about clean prompts the agent has not seen: the
  number of calibration false positives allowed is the largest `k` whose Wilson
  upper confidence bound (one-sided, `confidence`, 0.9 by default) on `k / n` is
  at most the target, so a small calibration set buys a conservative threshold.

The base detectors run once per prompt (through a real `Guard` on the base
policy); for every finding we keep its score if it reaches the policy's own
`flag_at`, so any stricter per-detector threshold can be evaluated without
re-running them, and exactly reproduced by a policy file (see `loop.write_policy`).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..guard import Guard
from ..policy import Policy
from ..segments import Segment, SegmentKind
from .detector import Head, calibrate
from .dut import prompt_key
from .features import Featurizer, PromptFeatures

__all__ = ["BaseScorer", "PromptRecord", "DetectorState", "DetectorAgent", "TAU_GRID"]

# per base detector: 0.0 = the policy's own thresholds; higher = stricter; > 1 = off
TAU_GRID = (0.0, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01)


class BaseScorer:
    """Runs the base policy's detectors once per prompt and keeps, per detector, the
    highest score among findings at or above their own flag threshold."""

    def __init__(self, policy: Policy, cache_size: int = 100_000, detectors: Sequence[Any] | None = None) -> None:
        self.policy = policy
        self.guard = Guard(policy, detectors=detectors)
        self.names = [d.name for d in self.guard.detectors]
        self.fail_closed = policy.on_error != "allow"
        self._cache: OrderedDict[str, tuple[np.ndarray, bool]] = OrderedDict()
        self._cache_size = cache_size

    def scores(self, segments: Sequence[Segment], key: str | None = None) -> tuple[np.ndarray, bool]:
        key = key or prompt_key(segments)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        res = self.guard.check(list(segments))
        s = np.full(len(self.names), -1.0)
        idx = {n: i for i, n in enumerate(self.names)}
        for f in res.findings:
            if f.detector not in idx:
                continue
            if f.score >= self.policy.threshold_for(f).flag_at:
                i = idx[f.detector]
                s[i] = max(s[i], f.score)
        err = bool(res.decision.errors) and self.fail_closed
        out = (s, err)
        self._cache[key] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out


@dataclass
class PromptRecord:
    key: str
    is_attack: bool
    pf: PromptFeatures
    text_labels: list[int | None]
    demo_labels: list[int | None]
    base: np.ndarray
    base_error: bool
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectorState:
    """One version of the whole detector: base thresholds + head + its threshold."""

    taus: np.ndarray
    head: Head | None
    threshold: float = math.inf
    high: float = 1.0
    round: int = 0
    id: str | None = None

    def base_flagged(self, base: np.ndarray, err: bool) -> bool:
        return bool(err or np.any(base >= np.maximum(self.taus, 0.0)))

    def flagged_record(self, r: PromptRecord) -> bool:
        if self.base_flagged(r.base, r.base_error):
            return True
        return self.head is not None and self.head.prompt_score(r.pf) >= self.threshold


class DetectorAgent:
    def __init__(
        self,
        base: BaseScorer,
        featurizer: Featurizer,
        *,
        target_fpr: float = 0.05,
        confidence: float = 0.9,
        tune_base: bool = False,
        C: float = 1.0,
        feature_cache: int = 20_000,
    ) -> None:
        if not 0.0 < target_fpr < 1.0:
            raise ValueError("target_fpr must be within (0, 1)")
        self.base = base
        self.fz = featurizer
        self.target_fpr = float(target_fpr)
        if not 0.5 <= confidence < 1.0:
            raise ValueError("confidence must be within [0.5, 1)")
        self.confidence = float(confidence)
        self.tune_base = tune_base
        self.C = float(C)
        self._pf: OrderedDict[str, PromptFeatures] = OrderedDict()
        self._pf_size = feature_cache

    # -- features and records ------------------------------------------------------------
    def features(self, segments: Sequence[Segment], key: str | None = None) -> PromptFeatures:
        key = key or prompt_key(segments)
        pf = self._pf.get(key)
        if pf is None:
            pf = self.fz.prompt(segments)
            self._pf[key] = pf
            if len(self._pf) > self._pf_size:
                self._pf.popitem(last=False)
        return pf

    def record(
        self,
        segments: Sequence[Segment],
        labels: dict[tuple[SegmentKind, int], int | None] | None = None,
        *,
        ranges: dict[tuple[SegmentKind, int], list[tuple[int, int]]] | None = None,
        is_attack: bool = False,
        weight: float = 1.0,
        meta: dict[str, Any] | None = None,
    ) -> PromptRecord:
        key = prompt_key(segments)
        # base first: the demonstrations detector's analysis is then cached for the features
        base, err = self.base.scores(segments, key)
        pf = self.features(segments, key)
        labels = labels or {}
        ranges = ranges or {}
        tl: list[int | None] = []
        for k, (a, b) in zip(pf.text_keys, pf.text_spans):
            y = labels.get(k, 0)
            if y == 1 and k[0] is SegmentKind.DEMONSTRATION and k not in ranges:
                y = None  # a poisoned demonstration is not an injection: keep it out of the text view
            elif y == 1 and k in ranges:
                # only the windows that hold the payload; the rest of the document is clean text
                y = 1 if any(lo < b and a < hi for lo, hi in ranges[k]) else 0
            tl.append(y)
        dl = [labels.get(k, 0) for k in pf.demo_keys]
        return PromptRecord(key, is_attack, pf, tl, dl, base, err, weight, dict(meta or {}))

    def record_attack(self, attack: Any, weight: float = 1.0, meta: dict[str, Any] | None = None) -> PromptRecord:
        segs = attack.segments()
        return self.record(segs, attack.labels(segs), ranges=attack.payload_ranges(segs), is_attack=True,
                           weight=weight, meta=meta)

    def judge(self, state: DetectorState, segments: Sequence[Segment]) -> tuple[bool, float]:
        """(flagged, suspicion): a base detector's flag is 1.0; the head's calibrated
        score otherwise (0.5 at its threshold)."""
        key = prompt_key(segments)
        base, err = self.base.scores(segments, key)
        if state.base_flagged(base, err):
            return True, 1.0
        if state.head is None:
            return False, 0.0
        raw = state.head.prompt_score(self.features(segments, key))
        return raw >= state.threshold, calibrate(raw, state.threshold, state.high)

    def flagged(self, state: DetectorState, segments: Sequence[Segment]) -> bool:
        key = prompt_key(segments)
        base, err = self.base.scores(segments, key)
        if state.base_flagged(base, err):
            return True
        if state.head is None:
            return False
        return state.head.prompt_score(self.features(segments, key)) >= state.threshold

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, records: Sequence[PromptRecord], parent: Head | None = None) -> tuple[Head, dict[str, Any]]:
        from scipy.sparse import csr_matrix
        from sklearn.linear_model import LogisticRegression

        head = Head.empty(self.fz) if parent is None else Head(parent.text_coef.copy(), parent.text_bias,
                                                               parent.demo_coef.copy(), parent.demo_bias)
        info: dict[str, Any] = {}
        for view, dim in (("text", self.fz.text_dim), ("demo", self.fz.demo_dim)):
            rows: list[dict[int, float]] = []
            ys: list[int] = []
            ws: list[float] = []
            for r in records:
                feats = r.pf.text_rows if view == "text" else r.pf.demo_rows
                labs = r.text_labels if view == "text" else r.demo_labels
                for x, y in zip(feats, labs):
                    if y is None:
                        continue
                    rows.append(x)
                    ys.append(int(y))
                    ws.append(r.weight)
            y = np.asarray(ys, dtype=np.int64)
            info[view] = {"rows": len(ys), "positives": int(y.sum()) if len(y) else 0}
            if len(y) == 0 or y.min() == y.max():
                info[view]["fitted"] = False
                continue
            indptr = [0]
            indices: list[int] = []
            data: list[float] = []
            for x in rows:
                indices.extend(x.keys())
                data.extend(x.values())
                indptr.append(len(indices))
            X = csr_matrix((np.asarray(data, np.float64), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
                           shape=(len(rows), dim))
            w = np.asarray(ws, dtype=np.float64)
            # balanced classes, then the per-record weights on top
            pos = y == 1
            w = w * np.where(pos, 0.5 / max(pos.mean(), 1e-9), 0.5 / max((~pos).mean(), 1e-9))
            clf = LogisticRegression(C=self.C, solver="liblinear", max_iter=300)
            clf.fit(X, y, sample_weight=w)
            coef = clf.coef_.ravel().astype(np.float64)
            bias = float(clf.intercept_[0])
            if view == "text":
                head.text_coef, head.text_bias = coef, bias
            else:
                head.demo_coef, head.demo_bias = coef, bias
            info[view]["fitted"] = True
            info[view]["train_accuracy"] = round(float(clf.score(X, y)), 4)
        return head, info

    # -- thresholds under the FPR constraint ------------------------------------------------
    def choose(
        self,
        head: Head | None,
        attacks: Sequence[PromptRecord],
        calib: Sequence[PromptRecord],
    ) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        """Base thresholds and head threshold: max recall on `attacks` with the
        prompt-level FPR within `target_fpr` (upper confidence bound from `calib`)."""
        k = len(self.base.names)
        n_c = len(calib)
        if n_c == 0:
            raise ValueError("no clean calibration prompts")
        Sc = np.stack([r.base for r in calib]) if k else np.zeros((n_c, 0))
        Ec = np.array([r.base_error for r in calib])
        Hc = np.array([head.prompt_score(r.pf) if head is not None else -1.0 for r in calib])
        n_a = len(attacks)
        Sa = np.stack([r.base for r in attacks]) if (k and n_a) else np.zeros((n_a, k))
        Ea = np.array([r.base_error for r in attacks], dtype=bool)
        Ha = np.array([head.prompt_score(r.pf) if head is not None else -1.0 for r in attacks])
        grids = [TAU_GRID if self.tune_base else (0.0,)] * k
        allowed = allowed_false_positives(n_c, self.target_fpr, self.confidence)
        best: tuple[Any, ...] | None = None
        base0 = Ec | (np.any(Sc >= 0.0, axis=1) if k else np.zeros(n_c, bool))
        for taus in itertools.product(*grids):
            tau = np.asarray(taus, dtype=np.float64)
            base_c = Ec | (np.any(Sc >= np.maximum(tau, 0.0), axis=1) if k else np.zeros(n_c, bool))
            left = allowed - (int(base_c.sum()) if self.tune_base else 0)
            if left < 0:
                continue
            rest = np.sort(Hc[~base_c])[::-1]
            if head is None or len(rest) == 0:
                t = math.inf if head is None else 0.0
            elif left >= len(rest):
                t = 0.0
            else:
                t = float(np.nextafter(rest[left], 1.0))
                t = max(t, 1e-6)
            base_a = Ea | (np.any(Sa >= np.maximum(tau, 0.0), axis=1) if k and n_a else np.zeros(n_a, bool))
            hit = base_a | (Ha >= t) if n_a else base_a
            recall = float(hit.mean()) if n_a else 0.0
            fpr = float((base_c | (Hc >= t)).mean())
            change = sum(TAU_GRID.index(x) for x in taus)
            cand = (recall, -change, -fpr, tau, t, fpr)
            if best is None or cand[:3] > best[:3]:
                best = cand
        info: dict[str, Any] = {"allowed_false_positives": allowed, "calibration_prompts": n_c, "attack_prompts": n_a,
                                "mode": "total" if self.tune_base else "added",
                                "base_fpr_policy_thresholds": float(base0.mean())}
        if best is None:
            # even the strictest base thresholds exceed the budget: least-FPR setting, head off
            tau = np.full(k, TAU_GRID[-1] if self.tune_base else 0.0)
            base_c = Ec | (np.any(Sc >= np.maximum(tau, 0.0), axis=1) if k else np.zeros(n_c, bool))
            info.update(feasible=False, calibration_fpr=float(base_c.mean()), recall=None)
            return tau, math.inf, 1.0, info
        recall, _, _, tau, t, fpr = best
        high = float(min(1.0, max(Hc.max(initial=0.0) + 1e-6, t + 1e-6))) if head is not None else 1.0
        base_c = Ec | (np.any(Sc >= np.maximum(tau, 0.0), axis=1) if k else np.zeros(n_c, bool))
        info.update(feasible=True, recall=recall, calibration_fpr=fpr, added_fpr=float((~base_c & (Hc >= t)).mean()),
                    base_thresholds={n: float(x) for n, x in zip(self.base.names, tau)}, head_threshold=t)
        return tau, t, high, info

    def fpr(self, state: DetectorState, clean: Sequence[PromptRecord]) -> float:
        return sum(state.flagged_record(r) for r in clean) / max(1, len(clean))

    def recall(self, state: DetectorState, attacks: Sequence[PromptRecord]) -> float:
        return sum(state.flagged_record(r) for r in attacks) / max(1, len(attacks))


def wilson_upper(k: int, n: int, confidence: float) -> float:
    """One-sided Wilson score upper bound of a binomial proportion."""
    if n <= 0:
        return 1.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence)
    p = k / n
    den = 1 + z * z / n
    centre = p + z * z / (2 * n)
    rad = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + rad) / den)


def allowed_false_positives(n: int, target: float, confidence: float) -> int:
    """The most calibration false positives whose upper bound stays within `target`
    (-1 when even zero does not: the calibration set is too small for the target)."""
    k = -1
    while k + 1 <= n and wilson_upper(k + 1, n, confidence) <= target:
        k += 1
    return k if wilson_upper(0, n, confidence) <= target else -1


def head_raw_to_score(state: DetectorState, raw: float) -> float:
    return calibrate(raw, state.threshold, state.high)
