"""In-process llama.cpp with the bundled SmolLM2-135M GGUF (real model)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from promptguard.backends import BackendError, BackendUnavailable, CompletionRequest, create_backend
from promptguard.backends.llamacpp import LlamaCppBackend

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (pip install '.[local]')")


def test_missing_model_file_is_unavailable(tmp_path):
    b = LlamaCppBackend(tmp_path / "nope.gguf")
    with pytest.raises(BackendUnavailable):
        asyncio.run(b.complete(CompletionRequest(prompt="x", max_tokens=2)))


@pytest.mark.slow
@needs_llama
async def test_chat_prompt_determinism_and_serialised_concurrency():
    b = create_backend("llamacpp", n_ctx=1024, n_threads=2)
    chat = CompletionRequest(messages=({"role": "user", "content": "Name a colour."},), max_tokens=6)
    prompt = CompletionRequest(prompt="Question: What is 3 + 4?\nAnswer:", max_tokens=8, stop=("\n",))
    a, p = await b.complete(chat), await b.complete(prompt)
    assert a.text.strip() and a.usage["completion_tokens"] <= 8 and a.backend.startswith("llamacpp:")
    assert "\n" not in p.text and p.finish_reason in ("stop", "length")
    # concurrent calls on one shared model are serialised, and greedy decoding repeats itself
    outs = await asyncio.gather(*(b.complete(chat) for _ in range(2)))
    assert {o.text for o in outs} == {a.text}
    # a prompt beyond the context is a clear BackendError, not a crash
    with pytest.raises(BackendError):
        await b.complete(CompletionRequest(prompt="word " * 3000, max_tokens=2))
