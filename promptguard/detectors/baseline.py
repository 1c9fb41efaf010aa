"""The `baseline` detector: flags segments far from an application's normal ones.

A baseline directory comes from `promptguard baseline build` (see
`promptguard.embeddings.baseline`). A segment is scored by the mean cosine
distance of its windows to their k nearest normal windows of the same segment
kind (its worst window counts); 0.5 is the threshold calibrated to the target
false-positive rate. Kinds the baseline has no index for are not scored.

Policy::

    detectors:
      baseline:
        path: baselines/my-app     # relative to the policy file (or the working directory)
        min_score: 0.5             # findings below this are not reported

`promptguard scan --baseline DIR` sets `path` for one run; the proxy and the
callback read it from their policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..findings import Finding
from ..segments import Segment
from .base import DetectorError

__all__ = ["BaselineDetector"]


class BaselineDetector:
    name = "baseline"

    def __init__(self, path: str | Path, *, min_score: float = 0.5, model: str | None = None) -> None:
        from ..embeddings import EmbeddingError, get_embedder
        from ..embeddings.baseline import Baseline, BaselineError

        try:
            # Read the metadata first so that a bad directory fails before the model loads.
            probe = Baseline.load(path)
            self.embedder = get_embedder(
                model, window_tokens=probe.window_tokens, overlap_tokens=probe.overlap_tokens
            )
            _ = self.embedder.model  # load now, so that a broken model fails at start-up
            if probe.model != self.embedder.name:
                raise BaselineError(
                    f"{path} was built with embedding model {probe.model!r}, not {self.embedder.name!r}: rebuild it"
                )
        except (BaselineError, EmbeddingError) as e:
            raise DetectorError(f"baseline: {e}") from None
        self.baseline = probe
        self.path = Path(path)
        self.min_score = float(min_score)

    @classmethod
    def from_config(cls, options: Mapping[str, Any], base_dir: Path) -> BaselineDetector:
        opts = dict(options)
        path = opts.pop("path", None)
        if not path:
            raise DetectorError("baseline: option `path` (a directory from `promptguard baseline build`) is required")
        p = Path(str(path)).expanduser()
        if not p.is_absolute():
            cands = [base_dir / p, Path.cwd() / p]
            p = next((c for c in cands if c.exists()), cands[0])
        unknown = sorted(set(opts) - {"min_score", "model"})
        if unknown:
            raise DetectorError(f"baseline: unknown option(s) {', '.join(unknown)}; known: path, min_score, model")
        return cls(p, **opts)

    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        from ..embeddings.baseline import distance_score

        todo = [s for s in segments if s.kind.value in self.baseline.kinds and s.text.strip()]
        if not todo:
            return []
        wins = [self.embedder.windows(s.text) for s in todo]
        vecs = self.embedder.embed([w.text for ws in wins for w in ws])
        findings: list[Finding] = []
        i = 0
        for seg, ws in zip(todo, wins):
            v = vecs[i : i + len(ws)]
            i += len(ws)
            kb = self.baseline.kinds[seg.kind.value]
            d = kb.window_distances(v, self.baseline.k)
            b = int(np.argmax(d))
            score = float(distance_score(float(d[b]), kb.threshold))
            if score < self.min_score:
                continue
            span = (ws[b].start, ws[b].end) if len(ws) > 1 else (0, len(seg.text))
            findings.append(Finding.on(
                seg, detector=self.name, rule="far-from-baseline", score=score, span=span,
                message=(
                    f"unlike this application's normal {seg.kind.value} segments: mean cosine distance "
                    f"{d[b]:.3f} to the {self.baseline.k} nearest (threshold {kb.threshold:.3f} "
                    f"at {self.baseline.target_fpr:.1%} false positives)"
                ),
                details={
                    "distance": round(float(d[b]), 4), "threshold": round(kb.threshold, 4),
                    "k": self.baseline.k, "metric": "mean cosine distance to k nearest normal windows",
                    "baseline": str(self.path), "baseline_segments": kb.segments,
                },
            ))
        return findings
