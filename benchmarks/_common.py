"""Helpers the benchmarks share: the labelled dev set and cached window embeddings.

Not part of the package. Embeddings of the dev set are cached under
benchmarks/out/cache/ (keyed by model, window settings and data hash) so that a
second run of a benchmark does not re-embed 2,741 texts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SHARED = Path(os.environ.get("PROMPTGUARD_SHARED", ROOT.parent / "shared"))
DEV = SHARED / "data" / "injection" / "dev.jsonl"

sys.path.insert(0, str(ROOT))


def load_dev(path: Path = DEV) -> list[dict]:
    if not path.is_file():
        sys.exit(f"dev set not found at {path} (it lives in ../shared beside the repo); nothing to measure")
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def window_embeddings(texts: list[str], embedder, tag: str = "") -> tuple[list[list], list[np.ndarray]]:
    """Per text: its windows and their vectors, cached on disk."""
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    key = f"{embedder.name}-{embedder.window_tokens}-{embedder.overlap_tokens}-{h.hexdigest()[:16]}{tag}"
    key = key.replace("/", "_").replace(":", "_")
    cache = OUT / "cache" / f"{key}.npz"
    wins = [embedder.windows(t) for t in texts]
    if cache.is_file():
        z = np.load(cache)
        flat, lens = z["vecs"], z["lens"]
        if lens.tolist() == [len(w) for w in wins]:
            out, i = [], 0
            for n in lens:
                out.append(flat[i : i + n])
                i += n
            return wins, out
    flat_texts = [w.text for ws in wins for w in ws]
    vecs = embedder.embed(flat_texts) if flat_texts else np.zeros((0, 384), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vecs=vecs, lens=np.array([len(w) for w in wins]))
    out, i = [], 0
    for ws in wins:
        out.append(vecs[i : i + len(ws)])
        i += len(ws)
    return wins, out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of k successes in n: small sets get an
    interval, not only a rate."""
    if not n:
        return (0.0, 0.0)
    ph = k / n
    d = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / d
    h = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))
