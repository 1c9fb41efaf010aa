"""faiss helpers on random unit vectors (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from promptguard.embeddings import knn


def _unit(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_index_type_is_chosen_by_size(monkeypatch):
    monkeypatch.setattr(knn, "FLAT_MAX", 100)
    assert knn.index_type(knn.make_index(_unit(99))) == "flat"
    assert knn.index_type(knn.make_index(_unit(100))) == "hnsw"
    with pytest.raises(ValueError, match="unknown index kind"):
        knn.make_index(_unit(3), "ivf-magic")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_finds_itself_and_survives_save_load(tmp_path, kind):
    v = _unit(300)
    index = knn.make_index(v, kind)
    sims, ids = knn.search(index, v[:10], 3)
    assert ids[:, 0].tolist() == list(range(10))
    assert np.allclose(sims[:, 0], 1.0, atol=1e-4)
    knn.save_index(index, tmp_path / "i.faiss")
    again = knn.load_index(tmp_path / "i.faiss")
    assert knn.index_type(again) == kind and again.ntotal == 300
    _s2, i2 = knn.search(again, v[:10], 3)
    assert np.array_equal(i2, ids)


def test_k_is_clipped_to_the_index_size():
    index = knn.make_index(_unit(2))
    sims, _ids = knn.search(index, _unit(4, seed=1), 5)
    assert sims.shape == (4, 2)
    assert knn.search(index, np.zeros((0, 16), np.float32), 3)[0].shape == (0, 2)
