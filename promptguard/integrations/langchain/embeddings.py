"""LangChain `Embeddings` over the bundled local model, for RAG chains."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

__all__ = ["LocalEmbeddings"]


class LocalEmbeddings(Embeddings):
    """LangChain `Embeddings` over the bundled all-MiniLM-L6-v2 (offline, shared model).

    Uses promptguard's shared embedder (one model load per process, cached by text);
    falls back to sentence-transformers directly when that module is unavailable.
    """

    def __init__(self, model: str | Path | None = None) -> None:
        self._model = model
        self._fn: Callable[[list[str]], Any] | None = None
        self._lock = threading.Lock()

    def _encoder(self) -> Callable[[list[str]], Any]:
        with self._lock:
            if self._fn is None:
                try:
                    from ...embeddings import get_embedder
                except ImportError:
                    from sentence_transformers import SentenceTransformer

                    from ...models import embedding_model_path

                    st = SentenceTransformer(str(self._model or embedding_model_path()), device="cpu")
                    self._fn = lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
                else:
                    emb = get_embedder(self._model)
                    self._fn = emb.embed
            return self._fn

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return [list(map(float, v)) for v in self._encoder()(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

