"""In-process vLLM (`vllm.LLM`) for batch audits of a prompt library on a GPU machine.

Optional: `pip install 'promptguard[vllm]'` (a CUDA build). In production, vLLM is
more often the *upstream* (`vllm serve` speaks the OpenAI API, use
`OpenAIHTTPBackend`); this adapter is for offline batch work where one process owns
the GPU. `vllm` is imported when the first model is built, never at import time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Sequence

from .base import BackendError, BackendUnavailable, Completion, CompletionRequest

__all__ = ["VLLMBackend"]

_ENGINES: dict[tuple, Any] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(model: str, engine_kwargs: dict[str, Any]) -> Any:
    try:
        import vllm
    except ImportError:
        raise BackendUnavailable(
            "vLLM is not installed (pip install 'promptguard[vllm]'; it needs a CUDA GPU)"
        ) from None
    key = (model, tuple(sorted((k, repr(v)) for k, v in engine_kwargs.items())))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            try:
                _ENGINES[key] = vllm.LLM(model=model, **engine_kwargs)
            except Exception as e:  # noqa: BLE001 - no GPU, bad model, OOM
                raise BackendUnavailable(f"vLLM cannot load {model}: {type(e).__name__}: {e}") from e
        return _ENGINES[key]


class VLLMBackend:
    deterministic = True  # seeded sampling; greedy at temperature 0

    def __init__(self, model: str, *, llm: Any = None, sampling_params_cls: Any = None,
                 **engine_kwargs: Any):
        """`llm` / `sampling_params_cls` inject an engine (tests of our control flow)."""
        self.model = model
        self.name = f"vllm:{model}"
        self._llm = llm
        self._sp_cls = sampling_params_cls
        self._engine_kwargs = engine_kwargs
        self._lock = threading.Lock()  # one generate() at a time; vLLM batches inside it

    def _get(self) -> tuple[Any, Any]:
        if self._llm is None:
            self._llm = _engine(self.model, self._engine_kwargs)
        if self._sp_cls is None:
            from vllm import SamplingParams

            self._sp_cls = SamplingParams
        return self._llm, self._sp_cls

    def _params(self, sp_cls: Any, r: CompletionRequest) -> Any:
        kw: dict[str, Any] = {"max_tokens": r.max_tokens, "temperature": r.temperature}
        if r.seed is not None:
            kw["seed"] = r.seed
        if r.stop:
            kw["stop"] = list(r.stop)
        if r.top_p is not None:
            kw["top_p"] = r.top_p
        return sp_cls(**kw)

    def complete_many_sync(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        """Generate for many requests in as few engine calls as possible (chat and prompt
        requests are batched separately), keeping the input order."""
        llm, sp_cls = self._get()
        out: list[Completion | None] = [None] * len(requests)
        chat = [i for i, r in enumerate(requests) if r.is_chat]
        plain = [i for i, r in enumerate(requests) if not r.is_chat]
        t0 = time.perf_counter()
        with self._lock:
            try:
                if chat:
                    res = llm.chat([requests[i].as_messages() for i in chat],
                                   [self._params(sp_cls, requests[i]) for i in chat], use_tqdm=False)
                    self._fill(out, chat, res, t0)
                if plain:
                    res = llm.generate([requests[i].prompt for i in plain],
                                       [self._params(sp_cls, requests[i]) for i in plain], use_tqdm=False)
                    self._fill(out, plain, res, t0)
            except BackendError:
                raise
            except Exception as e:  # noqa: BLE001
                raise BackendError(f"vLLM generation failed: {type(e).__name__}: {e}") from e
        return [c for c in out if c is not None]

    def _fill(self, out: list, idx: list[int], results: Sequence[Any], t0: float) -> None:
        if len(results) != len(idx):
            raise BackendError(f"vLLM returned {len(results)} outputs for {len(idx)} requests")
        for i, res in zip(idx, results):
            if not res.outputs:
                raise BackendError("vLLM returned no output")
            o = res.outputs[0]
            n_in = len(res.prompt_token_ids or [])
            n_out = len(o.token_ids or [])
            out[i] = Completion(
                text=o.text or "",
                finish_reason=o.finish_reason,
                model=self.model,
                usage={"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
                latency_s=time.perf_counter() - t0,
                backend=self.name,
                raw=res,
            )

    async def complete(self, request: CompletionRequest) -> Completion:
        return (await asyncio.to_thread(self.complete_many_sync, [request]))[0]

    async def complete_many(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        return await asyncio.to_thread(self.complete_many_sync, list(requests))

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"VLLMBackend({self.model!r})"
