"""Fitting the three logistic models of the demonstrations detector (offline).

Used by ``benchmarks/fit_demonstrations.py`` (the packaged ``fitted`` weights) and by
the hardening loop (``promptguard harden``), which refits the weights a policy uses
on the poisoned prompts its generator found, starting from and regularised towards
the weights in use (a small move, not a new model).

Each signal's weight is held to the sign its meaning gives it (evidence of a
backdoor can only raise the score, an honest re-check or a stop-word span only
lower it): a monotone logistic model, so that quirks of the training prompts
cannot flip a signal. Features not listed in `NEGATIVE` / `FREE` are non-negative.

Needs scipy (a dependency of scikit-learn); nothing here runs at serve time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...segments import Segment
from .analysis import demo_features, stage_candidates, stage_steps
from .scoring import DEMO_FEATURES, PRINCIPLED, STEP_FEATURES, TRIGGER_FEATURES, Weights, logistic
from .structure import Demo, demos_of

__all__ = ["NEGATIVE", "FREE", "LabelledPrompt", "fit_logistic", "fit_weights", "labelled", "save_weights"]

NEGATIVE = {"honest_check", "stop_frac", "single", "all_demos"}
FREE = {"df_frac", "prev_concluded", "skeleton_share"}


@dataclass
class LabelledPrompt:
    """One prompt's demonstrations with the ground truth the models learn."""

    demos: list[Demo]
    poisoned: set[int]  # positions (0-based, in `demos`) of the poisoned demonstrations
    trigger: str | None = None
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)


def labelled(segments: Sequence[Segment], poisoned: Sequence[int], trigger: str | None, n_demos: int | None = None,
             weight: float = 1.0, meta: dict[str, Any] | None = None) -> LabelledPrompt | None:
    """The prompt's parsed demonstrations with their labels, or None when the parser
    sees another number of demonstrations than the ground truth (labels would shift)."""
    demos = demos_of(list(segments))
    if not demos or (n_demos is not None and len(demos) != n_demos):
        return None
    return LabelledPrompt(demos, set(poisoned), trigger, weight, dict(meta or {}))


def fit_logistic(X, y, names: Sequence[str], *, l2: float = 1.0, clean_weight: float = 1.0,
                 sample_weight: Sequence[float] | None = None, prior: Mapping[str, float] | None = None
                 ) -> tuple[dict[str, float], dict[str, Any]]:
    """L2-regularised logistic regression with sign constraints (scipy L-BFGS-B).

    The penalty pulls the weights towards `prior` (zero when None), so a refit from
    weights in use moves only as far as the data asks."""
    import numpy as np
    from scipy.optimize import minimize
    from sklearn.metrics import roc_auc_score

    X = np.asarray(X, dtype=float).reshape(len(y), len(names))
    y = np.asarray(y, dtype=float)
    sw = np.where(y > 0, 1.0, clean_weight)
    if sample_weight is not None:
        sw = sw * np.asarray(sample_weight, dtype=float)
    n, d = X.shape
    w0 = np.array([float((prior or {}).get(k, 0.0)) for k in names])
    b0 = float((prior or {}).get("bias", 0.0))
    bounds = [(None, None)]
    for k in names:
        bounds.append((None, 0.0) if k in NEGATIVE else (None, None) if k in FREE else (0.0, None))
    # the prior itself must lie inside the bounds to be a sensible start
    w0 = np.array([min(max(v, lo if lo is not None else -np.inf), hi if hi is not None else np.inf)
                   for v, (lo, hi) in zip(w0, bounds[1:])])
    norm = float(n)

    def loss(theta):
        b, w = theta[0], theta[1:]
        z = X @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        ll = sw * (np.logaddexp(0, z) - y * z)
        g = sw * (p - y)
        dw = w - w0
        f = ll.sum() / norm + 0.5 * l2 * (dw @ dw) / norm
        grad = np.concatenate([[g.sum() / norm], X.T @ g / norm + l2 * dw / norm])
        return f, grad

    res = minimize(loss, np.concatenate([[b0], w0]), jac=True, method="L-BFGS-B", bounds=bounds)
    theta = res.x
    w = {"bias": float(theta[0])}
    w.update({k: float(v) for k, v in zip(names, theta[1:])})
    z = X @ theta[1:] + theta[0]
    auc = float(roc_auc_score(y, z)) if len(set(y.tolist())) > 1 else None
    return w, {"n": int(n), "positives": int(y.sum()), "train_auc": auc, "converged": bool(res.success)}


def fit_weights(prompts: Sequence[LabelledPrompt], *, prior: Weights | None = None, l2: float = 1.0,
                clean_weight: float = 2.0) -> tuple[Weights, dict[str, Any]]:
    """Fit, in order, the step model (label: the demonstration is poisoned), the trigger
    model (label: the candidate is the inserted trigger) and the demonstration model.

    With `prior`, each model starts from and is regularised towards the prior's weights."""
    base = prior or PRINCIPLED
    weights: Weights = {"step": dict(base["step"]), "trigger": dict(base["trigger"]), "demo": dict(base["demo"])}
    report: dict[str, Any] = {}
    # 1. step model
    X, y, sw, cache = [], [], [], []
    for p in prompts:
        sigs, feats, _ = stage_steps(p.demos, weights)
        cache.append((sigs, feats))
        for i, f in enumerate(feats):
            X.append([f.get(k, 0.0) for k in STEP_FEATURES])
            y.append(1 if i in p.poisoned else 0)
            sw.append(p.weight)
    weights["step"], report["step"] = fit_logistic(X, y, STEP_FEATURES, l2=l2, clean_weight=clean_weight,
                                                   sample_weight=sw, prior=prior["step"] if prior else None)
    # 2. trigger model
    X, y, sw = [], [], []
    cand_cache = []
    for p, (sigs, feats) in zip(prompts, cache):
        step_p = [logistic(weights["step"], f) if d.steps else 0.0 for d, f in zip(p.demos, feats)]
        cands = stage_candidates(p.demos, sigs, step_p, base["trigger"])
        cand_cache.append((step_p, cands))
        trig = (p.trigger or "").strip()
        for c, f in cands:
            X.append([f.get(k, 0.0) for k in TRIGGER_FEATURES])
            y.append(1 if trig and c.text.strip() == trig else 0)
            sw.append(p.weight)
    weights["trigger"], report["trigger"] = fit_logistic(X, y, TRIGGER_FEATURES, l2=l2, clean_weight=clean_weight,
                                                         sample_weight=sw, prior=prior["trigger"] if prior else None)
    # 3. demonstration model
    X, y, sw = [], [], []
    for p, (step_p, cands) in zip(prompts, cand_cache):
        scored = sorted(((logistic(weights["trigger"], f), c, f) for c, f in cands), key=lambda x: -x[0])
        for i, x in enumerate(demo_features(len(p.demos), step_p, scored)):
            X.append([x.get(k, 0.0) for k in DEMO_FEATURES])
            y.append(1 if i in p.poisoned else 0)
            sw.append(p.weight)
    weights["demo"], report["demo"] = fit_logistic(X, y, DEMO_FEATURES, l2=l2, clean_weight=clean_weight,
                                                   sample_weight=sw, prior=prior["demo"] if prior else None)
    return weights, report


def save_weights(weights: Weights, path: Path, *, about: str, report: Mapping[str, Any] | None = None,
                 **meta: Any) -> str:
    """Write a weights file the detector reads (``weights: <path>`` or ``fitted``);
    returns the sha256 of what was written."""
    out = {"about": about, **meta, "report": dict(report or {}),
           "weights": {k: {n: round(v, 4) for n, v in w.items()} for k, w in weights.items()}}
    text = json.dumps(out, indent=1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()
