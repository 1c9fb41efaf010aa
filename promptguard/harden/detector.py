"""The `hardened` detector: a learned head loaded from a versioned artifact.

An artifact is a directory written by `promptguard harden`:

- ``manifest.json``: format and version, feature version, id, creation time,
  parent artifact, round, the operating threshold chosen under the
  false-positive constraint, the base-detector thresholds chosen with it,
  metrics, and the sha256 of the weights;
- ``head.npz``: two logistic heads (text view, demonstration view).

Policy::

    detectors:
      hardened:
        path: hardened/        # the artifact directory, relative to the policy file
        report_at: 0.3         # findings below this calibrated score are not reported

Scores are calibrated so that the operating threshold maps to 0.5 (flag) and the
score above every clean calibration prompt maps to 0.85 (act), so the policy's
usual ``flag_at: 0.5`` / ``act_at: 0.85`` mean "at the FPR target" and "above
anything clean we saw". Findings: ``PG-HARD-DEMO`` (a demonstration that looks
poisoned) and ``PG-HARD-TEXT`` (an input segment that looks like an injection).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..detectors.base import DetectorError
from ..findings import Finding
from ..segments import Segment, SegmentKind
from .features import FEATURE_VERSION, Featurizer, PromptFeatures

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "Head", "HardenedDetector", "load_artifact", "calibrate"]

ARTIFACT_FORMAT = "promptguard-hardened"
ARTIFACT_VERSION = 1
RULE_DEMO = "PG-HARD-DEMO"
RULE_TEXT = "PG-HARD-TEXT"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def _dot(rows: Sequence[dict[int, float]], coef: np.ndarray, bias: float) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float64)
    for i, r in enumerate(rows):
        if r:
            idx = np.fromiter(r.keys(), dtype=np.int64, count=len(r))
            val = np.fromiter(r.values(), dtype=np.float64, count=len(r))
            out[i] = float(coef[idx] @ val) + bias
        else:
            out[i] = bias
    return _sigmoid(out)


@dataclass
class Head:
    """Two logistic heads over the `Featurizer`'s views."""

    text_coef: np.ndarray
    text_bias: float
    demo_coef: np.ndarray
    demo_bias: float

    @classmethod
    def empty(cls, fz: Featurizer) -> "Head":
        return cls(np.zeros(fz.text_dim, np.float32), -20.0, np.zeros(fz.demo_dim, np.float32), -20.0)

    def segment_scores(self, pf: PromptFeatures) -> dict[tuple[SegmentKind, int], tuple[float, str, tuple[int, int] | None]]:
        """Per segment: the highest raw probability, the view that gave it, and (text
        view) the window it came from."""
        out: dict[tuple[SegmentKind, int], tuple[float, str, tuple[int, int] | None]] = {}
        if pf.text_rows:
            spans = pf.text_spans or [None] * len(pf.text_rows)
            for k, p, sp in zip(pf.text_keys, _dot(pf.text_rows, self.text_coef, self.text_bias), spans):
                if p > out.get(k, (-1.0, "", None))[0]:
                    out[k] = (float(p), "text", sp)
        if pf.demo_rows:
            for k, p in zip(pf.demo_keys, _dot(pf.demo_rows, self.demo_coef, self.demo_bias)):
                if p > out.get(k, (-1.0, "", None))[0]:
                    out[k] = (float(p), "demo", None)
        return out

    def prompt_score(self, pf: PromptFeatures) -> float:
        s = self.segment_scores(pf)
        return max((v[0] for v in s.values()), default=0.0)

    def save(self, path: Path) -> str:
        np.savez_compressed(path, text_coef=self.text_coef.astype(np.float32), text_bias=np.float64(self.text_bias),
                            demo_coef=self.demo_coef.astype(np.float32), demo_bias=np.float64(self.demo_bias))
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: Path, fz: Featurizer) -> "Head":
        try:
            with np.load(path, allow_pickle=False) as z:
                h = cls(np.asarray(z["text_coef"], np.float64), float(z["text_bias"]),
                        np.asarray(z["demo_coef"], np.float64), float(z["demo_bias"]))
        except (OSError, KeyError, ValueError) as e:
            raise DetectorError(f"{path}: not a hardened head ({type(e).__name__}: {e})") from None
        if h.text_coef.shape != (fz.text_dim,) or h.demo_coef.shape != (fz.demo_dim,):
            raise DetectorError(f"{path}: weight shapes {h.text_coef.shape}/{h.demo_coef.shape} do not match the "
                                f"features ({fz.text_dim}/{fz.demo_dim})")
        return h


def calibrate(raw: float, threshold: float, high: float) -> float:
    """Piecewise-linear: [0, t] -> [0, 0.5], [t, high] -> [0.5, 0.85], [high, 1] -> [0.85, 1]."""
    t = min(max(threshold, 1e-9), 1.0)
    hi = min(max(high, t + 1e-9), 1.0)
    if raw < t:
        return 0.5 * raw / t
    if raw < hi:
        return 0.5 + 0.35 * (raw - t) / (hi - t)
    if hi >= 1.0:
        return 0.85
    return min(1.0, 0.85 + 0.15 * (raw - hi) / (1.0 - hi))


def load_artifact(directory: str | Path) -> tuple[dict[str, Any], Featurizer, Head]:
    """Read and check an artifact directory; errors are `DetectorError`s naming the file."""
    d = Path(directory)
    mpath = d / "manifest.json"
    if not mpath.is_file():
        raise DetectorError(f"hardened: {d} is not an artifact directory (no manifest.json)")
    try:
        meta = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DetectorError(f"hardened: {mpath}: unreadable ({e})") from None
    if meta.get("format") != ARTIFACT_FORMAT:
        raise DetectorError(f"hardened: {mpath}: not a {ARTIFACT_FORMAT} manifest")
    if meta.get("format_version") != ARTIFACT_VERSION:
        raise DetectorError(f"hardened: {mpath}: format version {meta.get('format_version')} "
                            f"(this promptguard reads {ARTIFACT_VERSION})")
    feats = meta.get("features") or {}
    if feats.get("feature_version") != FEATURE_VERSION:
        raise DetectorError(f"hardened: {mpath}: feature version {feats.get('feature_version')} "
                            f"(this promptguard computes {FEATURE_VERSION}); retrain with `promptguard harden`")
    fz = Featurizer(demo_signals=feats.get("demo_signals", []), use_demonstrations=bool(feats.get("use_demonstrations", True)))
    wpath = d / "head.npz"
    if not wpath.is_file():
        raise DetectorError(f"hardened: {wpath} is missing")
    digest = hashlib.sha256(wpath.read_bytes()).hexdigest()
    if meta.get("weights_sha256") and meta["weights_sha256"] != digest:
        raise DetectorError(f"hardened: {wpath} does not match its manifest (sha256 differs)")
    head = Head.load(wpath, fz)
    thr = meta.get("threshold") or {}
    if not isinstance(thr.get("raw"), (int, float)) or not 0.0 <= float(thr["raw"]) <= 1.0 + 1e-9:
        raise DetectorError(f"hardened: {mpath}: threshold.raw missing or out of range")
    return meta, fz, head


class HardenedDetector:
    """Findings from a hardened head (see the module doc)."""

    name = "hardened"

    def __init__(self, meta: dict[str, Any], featurizer: Featurizer, head: Head, report_at: float = 0.3,
                 path: str = "") -> None:
        self.meta = meta
        self.featurizer = featurizer
        self.head = head
        self.report_at = float(report_at)
        self.path = path
        thr = meta.get("threshold") or {}
        self.threshold = float(thr.get("raw", 1.0))
        self.high = float(thr.get("high", min(1.0, self.threshold + 0.1)))

    @classmethod
    def from_path(cls, directory: str | Path, report_at: float = 0.3) -> "HardenedDetector":
        meta, fz, head = load_artifact(directory)
        return cls(meta, fz, head, report_at, str(directory))

    @classmethod
    def from_config(cls, options: Mapping[str, Any], base_dir: Path | None = None) -> "HardenedDetector":
        opts = dict(options)
        known = {"path", "report_at", "target_fpr"}
        unknown = set(opts) - known
        if unknown:
            raise ValueError(f"hardened: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        if not opts.get("path"):
            raise ValueError("hardened: option 'path' (the artifact directory from `promptguard harden`) is required")
        p = Path(str(opts["path"])).expanduser()
        if not p.is_absolute():
            p = (base_dir or Path.cwd()) / p
        report_at = float(opts.get("report_at", 0.3))
        if not 0.0 <= report_at <= 1.0:
            raise ValueError("hardened: report_at must be within 0..1")
        return cls.from_path(p, report_at)

    def raw_scores(self, segments: Sequence[Segment]) -> dict[tuple[SegmentKind, int], tuple[float, str, tuple[int, int] | None]]:
        return self.head.segment_scores(self.featurizer.prompt(segments))

    def score(self, raw: float) -> float:
        return calibrate(raw, self.threshold, self.high)

    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        raw = self.raw_scores(segments)
        out: list[Finding] = []
        art = {"artifact": self.meta.get("id"), "round": self.meta.get("round")}
        for seg in segments:
            key = (seg.kind, seg.index)
            if key not in raw:
                continue
            p, view, span = raw[key]
            sc = self.score(p)
            if sc < self.report_at or math.isnan(sc):
                continue
            if view == "demo":
                rule, msg = RULE_DEMO, "hardened head: this demonstration looks poisoned (trigger / backdoor step)"
            else:
                rule, msg = RULE_TEXT, f"hardened head: this {seg.kind.value} looks like an injected instruction"
            span = span or (0, len(seg.text))
            out.append(Finding.on(seg, detector=self.name, rule=rule, score=sc, message=msg,
                                  span=span, evidence=seg.text[span[0]:span[1]][:200],
                                  details={"raw": round(p, 4), "view": view, **art}))
        return out
