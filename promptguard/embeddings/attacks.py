"""The known-attack index: curated attack exemplars embedded into a faiss index.

The exemplars ship in `promptguard/data/attacks/exemplars.jsonl` (one JSON object a
line: id, text, category, lang, source, license; see PROVENANCE.md there). The
embedded index ships beside them (`index.faiss` + `index.json`) for the default
model; it is rebuilt in memory when the exemplars or the model differ from what
it was built with (a few seconds for ~200 exemplars).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import Embedder
from .knn import load_index, make_index, save_index, search

__all__ = ["AttackIndex", "Exemplar", "ExemplarError", "default_exemplars_path", "load_exemplars"]

INDEX_VERSION = 1


class ExemplarError(ValueError):
    """An exemplar file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Exemplar:
    id: str
    text: str
    category: str
    lang: str = "en"
    source: str = ""


def default_exemplars_path() -> Path:
    return Path(str(resources.files("promptguard") / "data" / "attacks" / "exemplars.jsonl"))


def load_exemplars(path: str | Path | None = None) -> list[Exemplar]:
    p = Path(path) if path is not None else default_exemplars_path()
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ExemplarError(f"cannot read attack exemplars {p}: {e.strerror or e}") from None
    out: list[Exemplar] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ex = Exemplar(
                id=str(row["id"]), text=str(row["text"]), category=str(row.get("category", "attack")),
                lang=str(row.get("lang", "en")), source=str(row.get("source", "")),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ExemplarError(f"{p}:{n}: not an exemplar row ({type(e).__name__}: {e})") from None
        if not ex.text.strip():
            raise ExemplarError(f"{p}:{n}: exemplar {ex.id!r} has empty text")
        if ex.id in seen:
            raise ExemplarError(f"{p}:{n}: duplicate exemplar id {ex.id!r}")
        seen.add(ex.id)
        out.append(ex)
    if not out:
        raise ExemplarError(f"{p}: no attack exemplars")
    return out


def _digest(exemplars: Sequence[Exemplar]) -> str:
    h = hashlib.sha256()
    for e in exemplars:
        h.update(e.id.encode() + b"\0" + e.text.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


class AttackIndex:
    """Nearest known attacks of a window vector."""

    def __init__(self, exemplars: Sequence[Exemplar], vectors: np.ndarray, index: Any = None):
        self.exemplars = list(exemplars)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = index if index is not None else make_index(self.vectors, "flat")

    def __len__(self) -> int:
        return len(self.exemplars)

    @classmethod
    def build(cls, embedder: Embedder, exemplars: Sequence[Exemplar]) -> AttackIndex:
        # Exemplars are short; the whole text is embedded (the model truncates at 256 tokens).
        return cls(exemplars, embedder.embed([e.text for e in exemplars]))

    def save(self, directory: str | Path, embedder: Embedder) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_index(self.index, d / "index.faiss")
        meta = {
            "version": INDEX_VERSION,
            "model": embedder.name,
            "exemplars_sha256": _digest(self.exemplars),
            "ids": [e.id for e in self.exemplars],
        }
        (d / "index.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, embedder: Embedder, path: str | Path | None = None) -> AttackIndex:
        """The index for the exemplars at `path` (the packaged ones by default):
        read from the saved index beside them when it matches, else embedded now."""
        p = Path(path) if path is not None else default_exemplars_path()
        exemplars = load_exemplars(p)
        key = (str(p.resolve()), embedder.name, _digest(exemplars))
        with _LOCK:
            cached = _CACHE.get(key)
            if cached is not None:
                return cached
            idx = cls._from_saved(p.parent, exemplars, embedder) or cls.build(embedder, exemplars)
            _CACHE[key] = idx
            return idx

    @classmethod
    def _from_saved(cls, d: Path, exemplars: list[Exemplar], embedder: Embedder) -> AttackIndex | None:
        meta_p, index_p = d / "index.json", d / "index.faiss"
        if not (meta_p.is_file() and index_p.is_file()):
            return None
        try:
            meta = json.loads(meta_p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            meta.get("version") != INDEX_VERSION
            or meta.get("model") != embedder.name
            or meta.get("exemplars_sha256") != _digest(exemplars)
        ):
            return None
        index = load_index(index_p)
        if index.ntotal != len(exemplars):
            return None
        vectors = index.reconstruct_n(0, index.ntotal)
        return cls(exemplars, vectors, index)

    def nearest(self, vectors: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, exemplar positions) of the k nearest exemplars of each vector."""
        return search(self.index, vectors, k)


_CACHE: dict[tuple, AttackIndex] = {}
_LOCK = threading.Lock()
