"""Inference: the int8 ONNX classifier under ONNX Runtime, no torch.

`Classifier.score([(text, kind), ...])` cuts every text into kind-prefixed token
windows (plus normalised views of obfuscated text), runs all windows of the call
in length-sorted batches through one session, and returns per text the best
window's probability, its span, and the score calibrated for the segment kind.

Concurrent callers (the proxy's worker threads) are batched together: the first
caller to find the model idle runs every window queued by then in one pass, the
others wait for their results, so N concurrent short requests cost about one
forward pass, not N. Window results are cached (LRU by token ids), so a system
prompt or a few-shot block that repeats across requests is computed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..limits import checkpoint
from .text import KINDS, View, Window, WindowTokenizer, pad_batch, views

__all__ = ["Classifier", "ClassifierError", "SegmentScore", "load_classifier", "default_model_dir"]

_FORMAT = 1


class ClassifierError(RuntimeError):
    """The classifier's files are missing, of another format, or unreadable."""


def default_model_dir() -> Path:
    env = os.environ.get("PROMPTGUARD_CLASSIFIER")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data" / "classifier"


@dataclass
class SegmentScore:
    probability: float  # the model's P(injection) for the best window (max over windows and views)
    score: float  # calibrated for the segment kind: 0.5 at its flag threshold, 0.85 at its act threshold
    span: tuple[int, int] | None = None  # the best window, as characters of the text
    view: str = "text"  # "text", or the normalised view that scored highest (leetspeak, rot13, ...)
    windows: int = 0
    truncated: bool = False
    hot: list[tuple[int, int]] = field(default_factory=list)  # windows at or above the flag threshold
    embedding: np.ndarray | None = None  # the best window's embedding (nearest-attack evidence)
    sentence: tuple[int, int] | None = None  # set when one sentence read alone scored higher than its window


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[bytes, tuple[float, np.ndarray]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, k: bytes):
        with self.lock:
            v = self.data.get(k)
            if v is not None:
                self.data.move_to_end(k)
            return v

    def put(self, k: bytes, v) -> None:
        if not self.size:
            return
        with self.lock:
            self.data[k] = v
            self.data.move_to_end(k)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


class _Batcher:
    """Merges concurrent `run` calls into shared forward passes (leader/follower:
    no extra thread, no added wait for a lone caller)."""

    def __init__(self, forward) -> None:
        self.forward = forward
        self.lock = threading.Lock()
        self.pending: list[tuple[list[Window], dict]] = []
        self.busy = False

    def run(self, windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
        slot: dict = {"done": threading.Event()}
        with self.lock:
            self.pending.append((windows, slot))
            lead = not self.busy
            if lead:
                self.busy = True
        if not lead:
            slot["done"].wait()
            if "error" in slot:
                raise slot["error"]
            return slot["out"]
        while True:
            with self.lock:
                work, self.pending = self.pending, []
                if not work:
                    self.busy = False
                    break
            flat = [w for ws, _ in work for w in ws]
            try:
                logits, embs = self.forward(flat)
                i = 0
                for ws, s in work:
                    s["out"] = (logits[i : i + len(ws)], embs[i : i + len(ws)])
                    i += len(ws)
            except BaseException as e:  # noqa: BLE001 - handed to every waiting caller
                for _, s in work:
                    s["error"] = e
            for _, s in work:
                s["done"].set()
        if "error" in slot:
            raise slot["error"]
        return slot["out"]


class Classifier:
    """The fine-tuned classifier: tokenizer, ONNX session, calibration per kind."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, threads: int | None = None, views: bool = True,
                 max_windows: int = 512, cache_size: int = 16384,
                 refine_at: float = 0.2) -> None:
        self.path = Path(path) if path is not None else default_model_dir()
        meta_path = self.path / "classifier.json"
        model_path = self.path / "model.int8.onnx"
        tok_path = self.path / "tokenizer.json"
        for p in (meta_path, model_path, tok_path):
            if not p.is_file():
                raise ClassifierError(f"classifier file missing: {p} (train one with `promptguard train classifier`)")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ClassifierError(f"cannot read {meta_path}: {e}") from None
        if self.meta.get("format") != _FORMAT:
            raise ClassifierError(f"{meta_path} has format {self.meta.get('format')!r}, this promptguard reads {_FORMAT}: "
                                  "retrain with `promptguard train classifier`")
        cfg = self.meta.get("config", {})
        self.tok = WindowTokenizer(tok_path, window_tokens=int(cfg.get("window_tokens", 128)),
                                   overlap_tokens=int(cfg.get("overlap_tokens", 32)))
        self.calibration: dict[str, dict[str, float]] = self.meta.get("calibration") or {}
        self.use_views = views
        self.max_windows = max(1, int(max_windows))
        self.threads = int(threads or min(2, os.cpu_count() or 1))
        self._cache = _LRU(cache_size)
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - a dependency
            raise ClassifierError(f"onnxruntime is not installed: {e}") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise ClassifierError(f"cannot load {model_path}: {type(e).__name__}: {e}") from None
        self._batcher = _Batcher(self._forward)
        self.forward_passes = 0  # model calls, each over every window queued at that moment
        # windows at or above this raw probability are also read sentence by sentence
        self.refine_at = float(refine_at)
        # new windows per forward call before `limits.checkpoint()` is consulted again
        self.checkpoint_windows = 64

    # -- the model ---------------------------------------------------------------------------
    def _forward(self, windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
        """Every window through the session on its own, unpadded.

        Why not padded batches: the int8 graph quantizes its activations dynamically,
        with one scale per tensor, so in a padded batch a window's score moved with its
        batch-mates and its padding (by up to 0.9 in probability on corpus rows); a
        request's decision must not depend on what else the proxy was reading. One
        window per run is also faster here (no padding work): 411 corpus windows in
        4.0 s against 7.4 s in batches of <= 8192 tokens, 1 thread
        (docs/classifier.md, "Inference"). Concurrent callers still share the call
        (`_Batcher`), which saves the hand-offs."""
        n = len(windows)
        logits = np.zeros(n, dtype=np.float32)
        embs: np.ndarray | None = None
        self.forward_passes += 1
        for i, w in enumerate(windows):
            ids, mask = pad_batch([w], self.tok.pad)
            lo, em = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            if embs is None:
                embs = np.zeros((n, em.shape[1]), dtype=np.float32)
            logits[i] = float(lo.reshape(-1)[0])
            embs[i] = em[0]
        return logits, (embs if embs is not None else np.zeros((0, 384), np.float32))

    def window_logits(self, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
        """Logits and embeddings of windows, from the cache or one batched pass."""
        keys = [hashlib.blake2b(np.asarray(w.ids, dtype=np.int32).tobytes(), digest_size=16).digest() for w in windows]
        out_l = np.zeros(len(windows), dtype=np.float32)
        out_e: list[np.ndarray | None] = [None] * len(windows)
        todo: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            v = self._cache.get(k)
            if v is not None:
                out_l[i], out_e[i] = v
            else:
                todo.setdefault(k, []).append(i)
        if todo:
            firsts = [idx[0] for idx in todo.values()]
            if len(firsts) <= self.checkpoint_windows:
                lo, em = self._batcher.run([windows[i] for i in firsts])
            else:
                # long work in pieces: between them a check whose deadline passed, or
                # whose client left, stops here (limits.checkpoint raises Stopped)
                parts = []
                for a in range(0, len(firsts), self.checkpoint_windows):
                    checkpoint()
                    parts.append(self._batcher.run([windows[i] for i in firsts[a : a + self.checkpoint_windows]]))
                lo = np.concatenate([p[0] for p in parts])
                em = np.concatenate([p[1] for p in parts])
            for (k, idx), logit, e in zip(todo.items(), lo, em):
                self._cache.put(k, (float(logit), e))
                for i in idx:
                    out_l[i], out_e[i] = logit, e
        dim = next((e.shape[0] for e in out_e if e is not None), 384)
        embs = np.stack([e if e is not None else np.zeros(dim, np.float32) for e in out_e]) if out_e else np.zeros((0, dim), np.float32)
        return out_l, embs

    # -- scores ------------------------------------------------------------------------------
    def calibrated(self, probability: float, kind: str) -> float:
        """Map a raw probability onto the kind's scale: 0.5 at its flag threshold,
        0.85 at its act threshold (piecewise linear, monotone)."""
        c = self.calibration.get(kind)
        if not c:
            return float(probability)
        f, a = float(c["flag"]), float(c["act"])
        p = float(probability)
        if p < f:
            return 0.5 * p / f if f > 0 else 0.5
        if p < a:
            return 0.5 + 0.35 * (p - f) / max(a - f, 1e-9)
        return min(1.0, 0.85 + 0.15 * (p - a) / max(1.0 - a, 1e-9))

    def score(self, items: Sequence[tuple[str, str]], *, calibrated: bool = True) -> list[SegmentScore]:
        """One `SegmentScore` per (text, kind); every window of the call in one batched run."""
        plan: list[tuple[int, View | None, list[Window], bool]] = []
        flat: list[Window] = []
        for t, (text, kind) in enumerate(items):
            if kind not in KINDS:
                raise ClassifierError(f"unknown segment kind {kind!r}; known: {', '.join(KINDS)}")
            if not isinstance(text, str):
                raise ClassifierError(f"text must be a string, not {type(text).__name__}")
            wins = self.tok.windows(text, kind)
            trunc = len(wins) > self.max_windows or len(text) > self.tok.max_chars
            wins = wins[: self.max_windows]
            plan.append((t, None, wins, trunc))
            flat.extend(wins)
            if self.use_views and wins:
                for v in views(text):
                    vw = self.tok.windows(v.text, kind)[: max(1, self.max_windows // 4)]
                    plan.append((t, v, vw, False))
                    flat.extend(vw)
        logits, embs = self.window_logits(flat) if flat else (np.zeros(0), np.zeros((0, 384)))
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -40, 40)))
        out = [SegmentScore(0.0, 0.0) for _ in items]
        # (item, view, window start, window end) to read sentence by sentence
        refine: list[tuple[int, View | None, int, int]] = []
        i = 0
        for t, view, wins, trunc in plan:
            n = len(wins)
            p = probs[i : i + n]
            res = out[t]
            if view is None:
                res.windows, res.truncated = n, trunc
            refine.extend((t, view, w.start, w.end) for w, q in zip(wins, p) if q >= self.refine_at)
            if n:
                spans = [(w.start, w.end) if view is None else view.span(w.start, w.end) for w in wins]
                self._update(res, items[t][1], p, spans, embs[i : i + n], "text" if view is None else view.name)
            i += n
        if refine:
            self._refine(items, out, refine)
        for t, res in enumerate(out):
            res.score = self.calibrated(res.probability, items[t][1]) if calibrated else res.probability
            res.hot = sorted(set(res.hot))
        return out

    def _update(self, res: SegmentScore, kind: str, p: np.ndarray, spans: list[tuple[int, int]], embs: np.ndarray,
                view: str) -> None:
        flag = float(self.calibration.get(kind, {}).get("flag", 0.5))
        res.hot.extend(sp for sp, q in zip(spans, p) if q >= flag)
        b = int(np.argmax(p))
        if float(p[b]) > res.probability or res.span is None:
            res.probability = float(p[b])
            res.span = spans[b]
            res.view = view
            res.embedding = embs[b]

    def _refine(self, items: Sequence[tuple[str, str]], out: list[SegmentScore],
                todo: list[tuple[int, View | None, int, int]]) -> None:
        """Second pass over suspicious windows: each of their sentences alone, so that
        prose padded around a payload cannot dilute it (the segment keeps the max). A
        window of a view (leetspeak, ROT13, ...) is split in the view's own text, so a
        decoded payload padded with prose is read alone too."""
        plan: list[tuple[int, View | None, list[tuple[int, int]]]] = []
        flat: list[Window] = []
        seen: set[tuple[int, str, int, int]] = set()
        for t, view, a, b in todo[: 8 * len(items) + 32]:
            text, kind = items[t]
            src = text if view is None else view.text
            vname = "text" if view is None else view.name
            spans = [sp for sp in split_sentences(src, a, b) if (t, vname) + sp not in seen]
            if len(spans) < 2:
                continue
            seen.update((t, vname) + sp for sp in spans)
            for sa, sb in spans[:24]:
                w = self.tok.windows(src[sa:sb], kind)[:1]
                if w:
                    s0, e0 = sa + w[0].start, sa + w[0].end
                    flat.append(Window(w[0].ids, s0, e0))
                    plan.append((t, view, [(s0, e0) if view is None else view.span(s0, e0)]))
        if not flat:
            return
        logits, embs = self.window_logits(flat)
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -40, 40)))
        for j, (t, view, spans) in enumerate(plan):
            res = out[t]
            before = res.probability
            vname = "text" if view is None else view.name
            self._update(res, items[t][1], probs[j : j + 1], spans, embs[j : j + 1], vname)
            if res.probability > before:
                res.sentence = spans[0]

    def sentences(self, text: str, kind: str, start: int, end: int) -> list[tuple[int, int, float]]:
        """The sentences of text[start:end], each scored alone: (start, end, probability).
        Used to cut only the planted sentence out of a flagged document window."""
        spans = split_sentences(text, start, end)
        if len(spans) <= 1:
            return []
        res = self.score([(text[a:b], kind) for a, b in spans], calibrated=False)
        return [(a, b, r.probability) for (a, b), r in zip(spans, res)]


_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the sentences (and lines) of text[start:end], blank ones left out."""
    end = len(text) if end is None else end
    spans = []
    last = start
    for m in _SENTENCE_BREAK.finditer(text, start, end):
        if text[last : m.start()].strip():
            spans.append((last, m.start()))
        last = m.end()
    if text[last:end].strip():
        spans.append((last, end))
    return spans


_SHARED: dict[tuple[str, int, bool], Classifier] = {}
_LOCK = threading.Lock()


def load_classifier(path: str | os.PathLike[str] | None = None, *, threads: int | None = None, views: bool = True) -> Classifier:
    """The process-wide classifier for `path` (loaded once, shared by threads)."""
    p = Path(path) if path is not None else default_model_dir()
    key = (str(p.resolve()), int(threads or 0), bool(views))
    with _LOCK:
        c = _SHARED.get(key)
        if c is None:
            c = _SHARED[key] = Classifier(p, threads=threads, views=views)
        return c
