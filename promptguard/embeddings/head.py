"""A learned head over window embeddings: logistic regression, trained as
multiple-instance learning.

A labelled text is a bag of windows; an attack text needs only one attacking
window (an injection inserted in the middle of an e-mail leaves the other
windows clean). Training starts with every window of an attack text as a
positive, then, for a few rounds, keeps as positives only each attack text's
highest-scoring windows and refits. A text's score is the max over its windows,
so the finding can point at the window (its character span) that scored.

Features of a window: its embedding, plus its similarity to the nearest known
attack exemplars (top-1 and mean of top-k) when the head was trained with them.

Weights are a small .npz (a few KB): standardisation, coefficients, intercept,
and a Platt calibration of the plain similarity score (used when no head is
configured), with a JSON `meta` saying what the head was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Head", "HeadError", "default_head_path", "fit_platt", "train_head", "window_features"]

HEAD_VERSION = 1
FEATURES = ("emb", "emb+sim")


class HeadError(ValueError):
    """A head file is missing, malformed or made for another model."""


def default_head_path() -> Path:
    return Path(str(resources.files("promptguard") / "data" / "heads" / "default.npz"))


def window_features(vecs: np.ndarray, sims: np.ndarray | None, features: str) -> np.ndarray:
    """(n_windows, n_features): embedding [+ top-1 and mean top-k attack similarity]."""
    if features == "emb":
        return np.asarray(vecs, dtype=np.float32)
    if features == "emb+sim":
        if sims is None:
            raise HeadError("this head needs attack-similarity features")
        sims = np.asarray(sims, dtype=np.float32)
        extra = np.stack([sims[:, 0], sims.mean(axis=1)], axis=1) if len(sims) else np.zeros((0, 2), np.float32)
        return np.hstack([np.asarray(vecs, dtype=np.float32), extra])
    raise HeadError(f"unknown feature set {features!r} (one of {', '.join(FEATURES)})")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) with P(attack | s) = sigmoid(a * s + b), fitted by logistic regression."""
    from sklearn.linear_model import LogisticRegression

    scores = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        raise HeadError("calibration needs both attack and benign examples")
    lr = LogisticRegression(C=100.0, max_iter=1000).fit(scores, labels)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


@dataclass
class Head:
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    features: str = "emb+sim"
    k: int = 3
    model: str = ""
    window_tokens: int = 128
    overlap_tokens: int = 32
    platt: tuple[float, float] = (10.0, -6.0)
    # Platt scaling of the raw decision value, fitted on out-of-fold scores of the
    # training data: P(attack) = sigmoid(a * z + b). (1, 0) = uncalibrated.
    calibration: tuple[float, float] = (1.0, 0.0)
    meta: dict[str, Any] = field(default_factory=dict)

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def window_decisions(self, vecs: np.ndarray, sims: np.ndarray | None) -> np.ndarray:
        """Raw (uncalibrated) decision value of each window."""
        if len(vecs) == 0:
            return np.zeros(0, np.float64)
        return self.decision(window_features(vecs, sims, self.features))

    def predict_windows(self, vecs: np.ndarray, sims: np.ndarray | None) -> np.ndarray:
        """Calibrated P(attack) of each window."""
        a, b = self.calibration
        return _sigmoid(a * self.window_decisions(vecs, sims) + b).astype(np.float32)

    def similarity_probability(self, top1: np.ndarray) -> np.ndarray:
        a, b = self.platt
        return _sigmoid(a * np.asarray(top1, dtype=np.float64) + b).astype(np.float32)

    # -- persistence ---------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "version": HEAD_VERSION, "features": self.features, "k": self.k, "model": self.model,
            "window_tokens": self.window_tokens, "overlap_tokens": self.overlap_tokens,
            "platt": list(self.platt), "calibration": list(self.calibration), "meta": self.meta,
        }
        with open(path, "wb") as f:
            np.savez_compressed(
                f, coef=self.coef.astype(np.float32), intercept=np.float32(self.intercept),
                mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                header=np.array(json.dumps(header)),
            )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Head:
        p = Path(path) if path is not None else default_head_path()
        try:
            with np.load(p, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                coef, intercept = z["coef"], float(z["intercept"])
                mean, scale = z["mean"], z["scale"]
        except FileNotFoundError:
            raise HeadError(f"head weights not found: {p}") from None
        except (OSError, ValueError, KeyError) as e:
            raise HeadError(f"{p} is not a promptguard head ({type(e).__name__}: {e})") from None
        if header.get("version") != HEAD_VERSION:
            raise HeadError(
                f"{p} is head format version {header.get('version')}; this promptguard reads "
                f"version {HEAD_VERSION}: retrain it with `promptguard train head`"
            )
        if not (coef.shape == mean.shape == scale.shape) or coef.ndim != 1:
            raise HeadError(f"{p}: inconsistent weight shapes {coef.shape}, {mean.shape}, {scale.shape}")
        return cls(
            coef=coef, intercept=intercept, mean=mean, scale=scale, features=header["features"],
            k=int(header.get("k", 3)), model=header.get("model", ""),
            window_tokens=int(header.get("window_tokens", 128)),
            overlap_tokens=int(header.get("overlap_tokens", 32)),
            platt=tuple(header.get("platt", (10.0, -6.0))),
            calibration=tuple(header.get("calibration", (1.0, 0.0))), meta=header.get("meta", {}),
        )


def train_head(
    window_vecs: Sequence[np.ndarray],
    window_sims: Sequence[np.ndarray] | None,
    labels: Sequence[int],
    *,
    features: str = "emb+sim",
    C: float = 1.0,
    rounds: int = 3,
    top_windows: int = 1,
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Head:
    """Fit a multiple-instance logistic-regression head.

    window_vecs[i]: (n_i, d) window embeddings of text i; window_sims[i]: (n_i, k)
    similarities of those windows to the nearest attack exemplars; labels[i] in {0, 1}.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=np.int64)
    if len(window_vecs) != len(labels):
        raise HeadError("one label per text is needed")
    if set(np.unique(labels).tolist()) != {0, 1}:
        raise HeadError("training needs both attack (1) and benign (0) texts")
    sims = list(window_sims) if window_sims is not None else [None] * len(labels)
    feats = [window_features(v, s, features) for v, s in zip(window_vecs, sims)]
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = [i for i, f in enumerate(feats) if len(f)]
    neg = np.vstack([feats[i] for i in keep if labels[i] == 0])
    neg_w = np.concatenate([np.full(len(feats[i]), w[i]) for i in keep if labels[i] == 0])
    pos_bags = [feats[i] for i in keep if labels[i] == 1]
    pos_w = [w[i] for i in keep if labels[i] == 1]
    if not len(neg) or not pos_bags:
        raise HeadError("no windows to train on")
    allx = np.vstack([neg] + pos_bags)
    mean = allx.mean(axis=0)
    scale = allx.std(axis=0) + 1e-6

    def fit(bags: list[np.ndarray]) -> Any:
        pos = np.vstack(bags)
        pw = np.concatenate([np.full(len(b), bw) for b, bw in zip(bags, pos_w)])
        x = (np.vstack([neg, pos]) - mean) / scale
        y = np.concatenate([np.zeros(len(neg)), np.ones(len(pos))])
        sw = np.concatenate([neg_w / neg_w.sum(), pw / pw.sum()]) * len(y) / 2  # balanced classes
        return LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x, y, sample_weight=sw)

    lr = fit(pos_bags)
    for _ in range(max(0, rounds)):
        chosen = []
        for bag in pos_bags:
            if len(bag) <= top_windows:
                chosen.append(bag)
                continue
            z = lr.decision_function((bag - mean) / scale)
            chosen.append(bag[np.argsort(-z)[:top_windows]])
        lr = fit(chosen)
    return Head(
        coef=lr.coef_[0].astype(np.float32), intercept=float(lr.intercept_[0]),
        mean=mean.astype(np.float32), scale=scale.astype(np.float32), features=features,
        k=int(window_sims[0].shape[1]) if window_sims is not None and len(window_sims) else 3,
    )


def bag_scores(
    head: Head, window_vecs: Sequence[np.ndarray], window_sims: Sequence[np.ndarray] | None, *, raw: bool = False
) -> np.ndarray:
    """Max window probability of each text (0 for a text with no windows); with
    `raw`, the max raw decision value instead (-inf for no windows)."""
    sims = list(window_sims) if window_sims is not None else [None] * len(window_vecs)
    f = head.window_decisions if raw else head.predict_windows
    empty = -np.inf if raw else 0.0
    return np.array([float(f(v, s).max()) if len(v) else empty for v, s in zip(window_vecs, sims)])


__all__ += ["bag_scores"]
