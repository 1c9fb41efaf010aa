"""The Detector agent: retrain the trainable parts under a false-positive constraint.

What it trains, each round:

- the hardened head (two logistic models over `features`), refit from scratch on
  every successful evasion so far (replayed across rounds so it does not forget),
  their clean twins (same items, same document, no poison: hard negatives) and
  clean prompts sampled from the attack space's domains and carriers;
- the operating thresholds: one per base detector (the policy's own, or stricter:
  0.6 ... 0.99, or off) and the head's. They are chosen jointly on *held* clean
  calibration prompts so that the prompt-level false-positive rate of the whole
  detector (base detectors OR head) stays within `target_fpr × margin`, maximising
  recall on the attacks generated so far (never on the fixed validation set).

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
        margin: float = 0.8,
        tune_base: bool = True,
        C: float = 1.0,
        feature_cache: int = 20_000,
    ) -> None:
        if not 0.0 < target_fpr < 1.0:
            raise ValueError("target_fpr must be within (0, 1)")
        self.base = base
        self.fz = featurizer
        self.target_fpr = float(target_fpr)
        self.margin = float(margin)
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
        is_attack: bool = False,
        weight: float = 1.0,
        meta: dict[str, Any] | None = None,
    ) -> PromptRecord:
        key = prompt_key(segments)
        # base first: the demonstrations detector's analysis is then cached for the features
        base, err = self.base.scores(segments, key)
        pf = self.features(segments, key)
        labels = labels or {}
        tl = [labels.get(k, 0) for k in pf.text_keys]
        # a poisoned demonstration is not an injection: keep it out of the text view
        tl = [None if (k[0] is SegmentKind.DEMONSTRATION and labels.get(k) == 1) else v
              for k, v in zip(pf.text_keys, tl)]
        dl = [labels.get(k, 0) for k in pf.demo_keys]
        return PromptRecord(key, is_attack, pf, tl, dl, base, err, weight, dict(meta or {}))

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
        prompt-level FPR on `calib` at most `target_fpr * margin`."""
        k = len(self.base.names)
        budget_rate = self.target_fpr * self.margin
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
        allowed = int(math.floor(budget_rate * n_c + 1e-9))
        best: tuple[Any, ...] | None = None
        for taus in itertools.product(*grids):
            tau = np.asarray(taus, dtype=np.float64)
            base_c = Ec | (np.any(Sc >= np.maximum(tau, 0.0), axis=1) if k else np.zeros(n_c, bool))
            left = allowed - int(base_c.sum())
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
        info: dict[str, Any] = {"budget_fpr": budget_rate, "calibration_prompts": n_c, "attack_prompts": n_a}
        if best is None:
            # even the strictest base thresholds exceed the budget: least-FPR setting, head off
            tau = np.full(k, TAU_GRID[-1] if self.tune_base else 0.0)
            base_c = Ec | (np.any(Sc >= np.maximum(tau, 0.0), axis=1) if k else np.zeros(n_c, bool))
            info.update(feasible=False, calibration_fpr=float(base_c.mean()), recall=None)
            return tau, math.inf, 1.0, info
        recall, _, _, tau, t, fpr = best
        high = float(min(1.0, max(Hc.max(initial=0.0) + 1e-6, t + 1e-6))) if head is not None else 1.0
        info.update(feasible=True, recall=recall, calibration_fpr=fpr,
                    base_thresholds={n: float(x) for n, x in zip(self.base.names, tau)}, head_threshold=t)
        return tau, t, high, info

    def fpr(self, state: DetectorState, clean: Sequence[PromptRecord]) -> float:
        return sum(state.flagged_record(r) for r in clean) / max(1, len(clean))

    def recall(self, state: DetectorState, attacks: Sequence[PromptRecord]) -> float:
        return sum(state.flagged_record(r) for r in attacks) / max(1, len(attacks))


def head_raw_to_score(state: DetectorState, raw: float) -> float:
    return calibrate(raw, state.threshold, state.high)
