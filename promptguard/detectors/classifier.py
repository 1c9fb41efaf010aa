"""The `classifier` detector: a fine-tuned all-MiniLM-L6-v2 that reads every
segment as kind-prefixed token windows and says how likely each holds a prompt
injection (docs/classifier.md).

- One batched ONNX Runtime pass per request (all windows of all segments), shared
  with concurrent requests; no torch at inference.
- The score is calibrated per segment kind: 0.5 at the kind's flag threshold and
  0.85 at its act threshold, both set on clean data of that kind when the model
  was trained (clean few-shot and CoT demonstrations for `demonstration` and
  `example`, clean documents for `context`, ...). So the policy's thresholds mean
  the same thing for every kind.
- Obfuscated text (leetspeak, ROT13, base64, reversed, spaced-out letters,
  homoglyphs, zero-width characters) is also scored as the plain text it stands
  for; the finding says which reading fired.
- A finding carries the best window's span; in retrieved context, examples and
  demonstrations it narrows that window to the sentences that score high on their
  own (so sanitize cuts the planted sentence, not the document), and it names the
  nearest known attack (packaged exemplars) as evidence.

Policy options (all optional)::

    detectors:
      classifier:
        model: default      # default (packaged) | a folder written by `promptguard train classifier`
        kinds: [instruction, example, demonstration, context, query]
        min_score: 0.3      # findings below this (calibrated scale) are not reported
        views: true         # score normalised readings of obfuscated text too
        max_windows: 512    # per segment; beyond it the rest is not read (and said so)
        threads: null       # ONNX Runtime threads (default: min(2, cores))
        evidence: true      # name the nearest known attack
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..findings import Finding, Severity
from ..sanitize import Edit
from ..segments import Segment, SegmentKind
from .base import DetectorError

__all__ = ["ClassifierDetector", "REPLACEMENT"]

REPLACEMENT = "[removed by promptguard: suspected prompt injection]"
_DEFAULT_KINDS = [k for k in SegmentKind if k is not SegmentKind.ANSWER]
# Kinds whose flagged text can be cut out; an attacking instruction or query is the
# request itself, so it is blocked instead.
_SANITIZABLE = {SegmentKind.CONTEXT, SegmentKind.EXAMPLE, SegmentKind.DEMONSTRATION}
_KNOWN = {"model", "kinds", "min_score", "views", "max_windows", "threads", "evidence"}


class ClassifierDetector:
    name = "classifier"

    def __init__(
        self,
        *,
        model: str | Path | None = None,
        kinds: Sequence[SegmentKind | str] | None = None,
        min_score: float = 0.3,
        views: bool = True,
        max_windows: int = 512,
        threads: int | None = None,
        evidence: bool = True,
    ) -> None:
        from ..classifier.runtime import Classifier, ClassifierError, load_classifier

        try:
            path = None if model in (None, "default") else Path(model)
            clf = load_classifier(path, threads=threads, views=bool(views))
        except ClassifierError as e:
            raise DetectorError(str(e)) from None
        if max_windows != clf.max_windows:
            clf = Classifier(clf.path, threads=threads, views=bool(views), max_windows=max_windows)
        self.clf = clf
        try:
            self.kinds = {SegmentKind(k) for k in (kinds or _DEFAULT_KINDS)}
        except ValueError as e:
            raise DetectorError(f"classifier: {e}") from None
        self.kinds.discard(SegmentKind.ANSWER)
        self.min_score = float(min_score)
        self.evidence = bool(evidence)
        self._exemplars: tuple[list[Any], np.ndarray] | None = None
        self._ex_lock = threading.Lock()

    @classmethod
    def from_config(cls, options: Mapping[str, Any], base_dir: Path) -> "ClassifierDetector":
        opts = dict(options)
        unknown = sorted(set(opts) - _KNOWN)
        if unknown:
            raise DetectorError(f"classifier: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}")
        m = opts.get("model")
        if isinstance(m, str) and m != "default":
            p = Path(m).expanduser()
            if not p.is_absolute():
                p = base_dir / p if (base_dir / p).exists() else Path.cwd() / p
            opts["model"] = p
        return cls(**opts)

    # -- detecting ---------------------------------------------------------------------------
    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        todo = [s for s in segments if s.kind in self.kinds and s.text.strip()]
        if not todo:
            return []
        scores = self.clf.score([(s.text, s.kind.value) for s in todo])
        findings: list[Finding] = []
        for seg, r in zip(todo, scores):
            if r.truncated:
                findings.append(Finding.on(
                    seg, detector=self.name, rule="too-long", score=0.4, severity=Severity.LOW,
                    message=f"only the first {self.clf.max_windows} windows were read",
                ))
            if r.score >= self.min_score:
                findings.append(self._finding(seg, r))
        return findings

    async def adetect(self, segments: Sequence[Segment]) -> list[Finding]:
        # the forward pass releases the GIL; concurrent requests share batches (runtime._Batcher)
        return await asyncio.to_thread(self.detect, segments)

    def _finding(self, seg: Segment, r: Any) -> Finding:
        kind = seg.kind.value
        cal = self.clf.calibration.get(kind, {})
        span = r.span or (0, len(seg.text))
        details: dict[str, Any] = {
            "probability": round(r.probability, 4),
            "view": r.view,
            "windows": r.windows,
            "thresholds": {"flag": round(float(cal.get("flag", 0.5)), 4), "act": round(float(cal.get("act", 0.85)), 4)},
        }
        sentences: list[list[int]] = []
        if seg.kind in _SANITIZABLE and r.score >= 0.5 and r.view == "text":
            flag = float(cal.get("flag", 0.5))
            for a, b in (r.hot or [span])[:8]:
                for s, e, p in self.clf.sentences(seg.text, kind, a, b):
                    if p >= flag:
                        sentences.append([s, e])
            if sentences:
                sentences = [list(x) for x in sorted({tuple(x) for x in sentences})]
                details["sentences"] = sentences
                span = (sentences[0][0], sentences[0][1]) if len(sentences) == 1 else span
        if r.windows > 1 or sentences:
            details["window"] = list(r.span or span)
            details["hot_windows"] = [list(h) for h in r.hot[:20]]
        if self.evidence and r.embedding is not None:
            near = self._nearest(r.embedding)
            if near is not None:
                details["nearest_attack"] = near
        how = "" if r.view == "text" else f" (read as {r.view})"
        msg = f"the injection classifier scores this {kind}{how} {r.probability:.2f} (calibrated {r.score:.2f})"
        if "nearest_attack" in details:
            na = details["nearest_attack"]
            msg += f"; nearest known attack {na['id']} ({na['category']})"
        return Finding.on(seg, detector=self.name, rule="injection", score=r.score, message=msg,
                          span=(int(span[0]), int(span[1])), details=details)

    def _nearest(self, emb: np.ndarray) -> dict[str, Any] | None:
        with self._ex_lock:
            if self._exemplars is None:
                from ..embeddings.attacks import ExemplarError, load_exemplars

                try:
                    ex = [e for e in load_exemplars() if e.category != "harmful"]
                except ExemplarError:
                    ex = []
                if ex:
                    res = self.clf.score([(e.text, "query") for e in ex], calibrated=False)
                    mat = np.stack([x.embedding for x in res]).astype(np.float32)
                else:
                    mat = np.zeros((0, len(emb)), np.float32)
                self._exemplars = (ex, mat)
            ex, mat = self._exemplars
        if not ex:
            return None
        sims = mat @ emb.astype(np.float32)
        j = int(np.argmax(sims))
        return {"id": ex[j].id, "category": ex[j].category, "lang": ex[j].lang, "text": ex[j].text[:200],
                "similarity": round(float(sims[j]), 4)}

    # -- repair --------------------------------------------------------------------------------
    def sanitize(self, segments: Sequence[Segment], findings: Sequence[Finding]) -> list[Edit] | None:
        """Cut the flagged sentences (or windows, widened to sentences) out of context,
        example and demonstration segments; None (block) for an instruction or query."""
        from .embeddings import _merge, _to_sentences

        by_key = {(s.prompt, s.kind, s.index): s for s in segments}
        edits: list[Edit] = []
        for f in findings:
            if f.rule == "too-long":
                continue
            seg = by_key.get((f.prompt, f.segment_kind, f.segment_index))
            if seg is None or seg.kind not in _SANITIZABLE:
                return None
            spans = f.details.get("sentences")
            if not spans:
                spans = f.details.get("hot_windows") or [list(f.span or (0, len(seg.text)))]
                spans = [_to_sentences(seg.text, a, b) for a, b in spans]
            for start, end in _merge(spans):
                if start <= 0 and end >= len(seg.text):
                    edits.append(Edit(seg, reason="suspected prompt injection (classifier)"))
                else:
                    edits.append(Edit(seg, start, end, REPLACEMENT, reason="suspected prompt injection (classifier)"))
        return edits
