"""Training a head from labelled JSONL (`promptguard train head`).

A data file has one JSON object a line with `text` and `label` (1 = attack,
0 = benign); other fields are kept for reporting (`source`, `kind`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import Embedder
from .attacks import AttackIndex
from .head import Head, HeadError, bag_scores, fit_platt, train_head

__all__ = ["LabelledRow", "cross_validate", "embed_rows", "packaged_rows", "read_labelled", "train_from_rows"]


@dataclass(frozen=True)
class LabelledRow:
    text: str
    label: int
    source: str = ""
    kind: str = ""


def read_labelled(paths: Iterable[str | Path]) -> list[LabelledRow]:
    """Rows of labelled JSONL files; a bad line is an error naming file and line."""
    rows: list[LabelledRow] = []
    for path in paths:
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise HeadError(f"cannot read {p}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise HeadError(f"{p} is not UTF-8 text") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                label = int(obj["label"])
                text = obj["text"]
            except (ValueError, KeyError, TypeError) as e:
                raise HeadError(f"{p}:{n}: need a JSON object with `text` and `label` ({type(e).__name__}: {e})") from None
            if label not in (0, 1) or not isinstance(text, str):
                raise HeadError(f"{p}:{n}: `label` must be 0 or 1 and `text` a string")
            rows.append(LabelledRow(text, label, str(obj.get("source", p.stem)), str(obj.get("kind", ""))))
    return rows


def packaged_rows() -> list[LabelledRow]:
    """The packaged attack exemplars (label 1) and benign texts (label 0)."""
    from importlib import resources

    d = Path(str(resources.files("promptguard") / "data" / "attacks"))
    rows = []
    for name, label in (("exemplars.jsonl", 1), ("benign.jsonl", 0)):
        for line in (d / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                kind = obj.get("category") or obj.get("kind", "")
                rows.append(LabelledRow(obj["text"], label, "promptguard-" + name.split(".")[0], kind))
    return rows


def embed_rows(
    texts: Sequence[str], embedder: Embedder, index: AttackIndex, k: int = 3
) -> tuple[list[np.ndarray], list[np.ndarray], list[list]]:
    """Per text: window vectors, their similarities to the k nearest attacks, the windows."""
    wins = [embedder.windows(t) for t in texts]
    flat = [w.text for ws in wins for w in ws]
    vecs = embedder.embed(flat) if flat else np.zeros((0, 384), np.float32)
    sims, _ = index.nearest(vecs, k)
    out_v, out_s, i = [], [], 0
    for ws in wins:
        out_v.append(vecs[i : i + len(ws)])
        out_s.append(sims[i : i + len(ws)])
        i += len(ws)
    return out_v, out_s, wins


def train_from_rows(
    vecs: Sequence[np.ndarray],
    sims: Sequence[np.ndarray],
    labels: Sequence[int],
    embedder: Embedder,
    *,
    features: str = "emb+sim",
    C: float = 0.1,
    rounds: int = 3,
    calibration_folds: int = 5,
    meta: dict[str, Any] | None = None,
) -> Head:
    """A head (with its similarity calibration) from already embedded rows."""
    labels = np.asarray(labels)
    head = train_head(vecs, sims, labels, features=features, C=C, rounds=rounds)
    # Calibrate the raw decision on out-of-fold scores (in-sample scores are overconfident).
    folds = min(calibration_folds, int(min(labels.sum(), (1 - labels).sum())))
    if folds >= 2:
        oof = cross_validate(vecs, sims, labels, folds=folds, raw=True, features=features, C=C, rounds=rounds)
        ok = np.isfinite(oof)
        head.calibration = fit_platt(oof[ok], labels[ok])
    top1 = np.array([float(s[:, 0].max()) if len(s) else 0.0 for s in sims])
    head.platt = fit_platt(top1, labels)
    head.model = embedder.name
    head.window_tokens, head.overlap_tokens = embedder.window_tokens, embedder.overlap_tokens
    head.k = int(sims[0].shape[1]) if len(sims) else 3
    head.meta = {
        "trained": time.strftime("%Y-%m-%d"), "texts": len(labels), "attacks": int(labels.sum()),
        "C": C, "rounds": rounds, **(meta or {}),
    }
    return head


def cross_validate(
    vecs: Sequence[np.ndarray],
    sims: Sequence[np.ndarray],
    labels: Sequence[int],
    strata: Sequence[str] | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
    raw: bool = False,
    **train_kw: Any,
) -> np.ndarray:
    """Out-of-fold head scores (stratified k-fold); raw decision values with `raw`."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    strata = np.asarray(strata if strata is not None else labels)
    scores = np.zeros(len(labels))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), strata):
        h = train_head([vecs[i] for i in tr], [sims[i] for i in tr], labels[tr], **train_kw)
        scores[te] = bag_scores(h, [vecs[i] for i in te], [sims[i] for i in te], raw=raw)
    return scores
