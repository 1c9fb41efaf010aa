"""Local Hugging Face transformers model (`AutoModelForCausalLM`) for models on disk.

`path` is a model directory, or a `.gguf` file (transformers de-quantises it with
the `gguf` package). `adapter` is an optional PEFT (LoRA) adapter directory laid
over the base model. Nothing is downloaded: loading is `local_files_only`.

Models are loaded once per process and shared; generation blocks, so it runs in a
worker thread, one call at a time per model. Temperature 0 decodes greedily
(deterministic); otherwise it samples after seeding torch with `seed`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from .base import BackendError, BackendTimeout, BackendUnavailable, Completion, CompletionRequest

__all__ = ["TransformersBackend", "load_transformers"]

_MODELS: dict[tuple, tuple[Any, Any, threading.Lock]] = {}
_MODELS_LOCK = threading.Lock()


def load_transformers(path: str | Path, adapter: str | Path | None = None,
                      dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any, threading.Lock]:
    """(model, tokenizer, lock) for `path` (+ `adapter`), loaded once and shared."""
    path = Path(path)
    if not path.exists():
        raise BackendUnavailable(f"model not found: {path}")
    key = (str(path.resolve()), str(adapter) if adapter else None, dtype, device)
    with _MODELS_LOCK:
        hit = _MODELS.get(key)
        if hit is not None:
            return hit
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise BackendUnavailable("transformers/torch are not installed") from None
        kw: dict[str, Any] = {"local_files_only": True}
        where: Path = path
        if path.is_file():
            if path.suffix != ".gguf":
                raise BackendUnavailable(f"{path}: a model file must be .gguf (or give a directory)")
            kw["gguf_file"] = path.name
            where = path.parent
        try:
            tok = AutoTokenizer.from_pretrained(where, **kw)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
            if adapter:
                try:
                    from peft import PeftModel
                except ImportError:
                    raise BackendUnavailable("peft is not installed (needed for an adapter)") from None
                model = PeftModel.from_pretrained(model, str(adapter))
            model.to(device)
            model.eval()
        except BackendUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - config, weights or tokenizer trouble
            raise BackendUnavailable(f"cannot load {path}: {type(e).__name__}: {e}") from e
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        hit = (model, tok, threading.Lock())
        _MODELS[key] = hit
        return hit


class TransformersBackend:
    deterministic = True

    def __init__(self, path: str | Path, *, adapter: str | Path | None = None,
                 dtype: str = "float32", device: str = "cpu", timeout: float | None = None,
                 model: Any = None, tokenizer: Any = None):
        """`model`/`tokenizer` may be given already loaded (e.g. a fresh PEFT model)."""
        self.path = Path(path)
        self.adapter = adapter
        self.dtype = dtype
        self.device = device
        self.timeout = timeout
        self.name = f"transformers:{self.path.name}" + (f"+{Path(adapter).name}" if adapter else "")
        self._given = (model, tokenizer, threading.Lock()) if model is not None else None

    def _loaded(self) -> tuple[Any, Any, threading.Lock]:
        if self._given is not None:
            return self._given
        return load_transformers(self.path, self.adapter, self.dtype, self.device)

    def render(self, request: CompletionRequest) -> str:
        """The exact text the model sees (chat template for messages)."""
        _, tok, _ = self._loaded()
        if request.is_chat and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(request.as_messages(), tokenize=False,
                                           add_generation_prompt=True)
        return request.as_prompt()

    def _run(self, request: CompletionRequest) -> Completion:
        import torch

        model, tok, lock = self._loaded()
        t0 = time.perf_counter()
        with lock:
            try:
                text_in = self.render(request)
                enc = tok(text_in, return_tensors="pt", add_special_tokens=not request.is_chat)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                gen: dict[str, Any] = {"max_new_tokens": request.max_tokens,
                                       "pad_token_id": tok.pad_token_id}
                if request.temperature > 0:
                    torch.manual_seed(request.seed if request.seed is not None else 0)
                    gen.update(do_sample=True, temperature=request.temperature)
                    if request.top_p is not None:
                        gen["top_p"] = request.top_p
                else:
                    gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
                with torch.no_grad():
                    out = model.generate(**enc, **gen)
                n_in = enc["input_ids"].shape[1]
                new = out[0][n_in:]
                text = tok.decode(new, skip_special_tokens=True)
            except Exception as e:  # noqa: BLE001
                raise BackendError(f"transformers generation failed: {type(e).__name__}: {e}") from e
        finish = "length" if len(new) >= request.max_tokens else "stop"
        for s in request.stop:
            k = text.find(s)
            if k >= 0:
                text, finish = text[:k], "stop"
        return Completion(
            text=text,
            finish_reason=finish,
            model=self.path.name,
            usage={"prompt_tokens": int(n_in), "completion_tokens": int(len(new)),
                   "total_tokens": int(n_in + len(new))},
            latency_s=time.perf_counter() - t0,
            backend=self.name,
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        fut = asyncio.to_thread(self._run, request)
        if self.timeout:
            try:
                return await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                raise BackendTimeout(f"{self.name}: no answer in {self.timeout:.1f}s") from None
        return await fut

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"TransformersBackend({str(self.path)!r}, adapter={self.adapter!r})"
